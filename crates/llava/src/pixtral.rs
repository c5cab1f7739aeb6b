//! The Pixtral vision encoder (`vision_config`, `PixtralVisionConfig`) ↔ Fast-LLM's
//! `VisionEncoderConfig`: patch embeddings, a fixed sequence of non-causal attention blocks
//! with 2-D rotary embeddings, and its hidden size. The adapter is declared at the Llava root,
//! where the text hidden size it projects to is visible.

use std::sync::Arc;

use fastllm_core::config::{
    AttentionConfig, DecoderBlockConfig, FixedBlockSequenceConfig, Map, PatchEmbeddingsConfig, RotaryConfig, Value,
    VisionEncoderConfig,
};
use fastllm_core::dict::show;
use fastllm_core::hf::class::derived_head_dim;
use fastllm_core::rules;
use fastllm_core::values::{boolean, float, int, text};
use fastllm_core::{
    Claims, Covers, Decl, Fill, Fl, HfClass, HfKey, HfLayout, HfType, HfWrites, ImportContext, Problem, Section, Writes,
};
use fastllm_llama::sections;

use fastllm_core::field;
use fastllm_core::weights::{blocks, nested, nested_as, norm, patch_embeddings, vision_hidden};

/// Pixtral's RMS norm: epsilon fixed at 1e-5 (`PixtralVisionConfig` has no epsilon key).
pub fn normalization() -> Section {
    sections::normalization()
        .named("pixtral.normalization")
        .replace_constant("epsilon", float(1e-5))
        .replace_weight("weight", norm(vision_hidden))
}

/// Pixtral's gated MLP over `Hv`.
fn mlp() -> Section {
    (sections::mistral_mlp().named("pixtral.mlp")).replace_weight("layers", sections::mlp_weights(vision_hidden))
}

fn vision_head_size(hf: &Map, _: &ImportContext) -> Writes {
    derived_head_dim(hf)
        .map(|v| vec![("head_size".into(), v)])
        .map_err(|e| vec![Problem::at_hf("head_dim", e)])
}

fn rotary_export(fl: Fl, context: &fastllm_core::ExportContext) -> HfWrites {
    let rotary = &fl.config::<AttentionConfig>()?.rotary;
    let theta = match rotary {
        RotaryConfig::Default2d(rotary) => Value::Float(rotary.theta),
        other => {
            return Err(vec![Problem::at_fast_llm(
                "rotary.type",
                format!(
                    "vision rotary {} has no Pixtral form (only default_2d)",
                    show(&Value::Str(other.type_name().into()))
                ),
            )]);
        }
    };
    Ok(match context.layout {
        fastllm_core::HfLayout::V4 => vec![("rope_theta".to_string(), theta).into()],
        fastllm_core::HfLayout::V5 => {
            let parameters = Map::from([
                ("rope_theta".to_string(), theta),
                ("rope_type".to_string(), text("default")),
            ]);
            vec![("rope_parameters".to_string(), Value::Map(parameters)).into()]
        }
    })
}

fn rotary_import(hf: &Map, _: &ImportContext) -> Writes {
    let theta = match hf.get("rope_parameters") {
        Some(Value::Map(parameters)) => {
            match parameters.get("rope_type") {
                None => {}
                Some(Value::Str(t)) if t == "default" || t == "axial" => {}
                Some(other) => {
                    return Err(vec![Problem::at_hf(
                        "rope_parameters.rope_type",
                        format!(
                            "vision rope type {} is not representable (default or axial)",
                            show(other)
                        ),
                    )]);
                }
            }
            parameters.get("rope_theta").or_else(|| hf.get("rope_theta")).cloned()
        }
        _ => hf.get("rope_theta").cloned(),
    };
    let theta = match theta {
        Some(Value::Int(i)) => Value::Float(i as f64),
        Some(Value::Float(f)) => Value::Float(f),
        other => {
            return Err(vec![Problem::at_hf(
                "rope_theta",
                format!(
                    "must be a number, found {}",
                    other.map(|v| show(&v)).unwrap_or_else(|| "nothing".into())
                ),
            )]);
        }
    };
    let rotary = Map::from([("type".to_string(), text("default_2d")), ("theta".to_string(), theta)]);
    Ok(vec![("rotary".into(), Value::Map(rotary))])
}

/// Imports the Fast-LLM field `fl` as a copy of the HF key `hf` (null when absent), which another
/// declaration maps: Pixtral has one key for two fields (`num_attention_heads` for the heads and
/// the KV heads, `patch_size` for the patch height and width).
fn copied_from(fl: &'static [&'static str; 1], hf: &'static str) -> Decl {
    let [name] = *fl;
    Decl::import_only(fl, &[], Covers::Exact, move |dict, _| {
        Ok(vec![(name.into(), dict.get(hf).cloned().unwrap_or(Value::Null))])
    })
}

/// Pixtral's attention: non-causal, MHA (no `num_key_value_heads`), head size derived from the
/// vision hidden size, 2-D rotary.
pub fn attention() -> Section {
    sections::attention()
        .named("pixtral.attention")
        .replace_weight("layers", sections::attention_weights(vision_hidden))
        .replace_constant("add_linear_biases", boolean(false))
        .replace_constant("causal", boolean(false))
        .replace("head_groups", copied_from(&["head_groups"], "num_attention_heads"))
        .replace(
            "head_size",
            Decl::import_only(&["head_size"], &["head_dim"], Covers::Exact, vision_head_size),
        )
        .replace(
            "rotary",
            Decl::custom(
                Claims::subtree(
                    &["rotary"],
                    &[
                        "rope_theta",
                        "rope_parameters",
                        "rope_parameters.rope_theta",
                        "rope_parameters.rope_type",
                    ],
                ),
                rotary_export,
                rotary_import,
            ),
        )
        .validate(
            "mha",
            rules::equal_fields(
                field!(AttentionConfig.heads),
                field!(AttentionConfig.head_groups),
                "Pixtral has no grouped KV heads",
            ),
        )
}

/// A Pixtral block: Llama's table, its weights under `attention`, `feed_forward`,
/// `attention_norm` and `ffn_norm`.
fn block() -> Arc<Section> {
    let (mixer, mlp, norm) = (attention().build(), mlp().build(), normalization().build());
    sections::block(mixer.clone(), mlp.clone(), norm.clone())
        .named("pixtral.block")
        .replace_weight("mixer", nested(field!(DecoderBlockConfig.mixer), "attention", &mixer))
        .replace_weight("mlp", nested(field!(DecoderBlockConfig.mlp), "feed_forward", &mlp))
        .replace_weight(
            "norm_1",
            nested_as(
                field!(DecoderBlockConfig.normalization),
                "norm_1",
                "attention_norm",
                &norm,
            ),
        )
        .replace_weight(
            "norm_2",
            nested_as(field!(DecoderBlockConfig.normalization), "norm_2", "ffn_norm", &norm),
        )
        .build()
}

fn encoder(block: Arc<Section>) -> Section {
    Section::of::<FixedBlockSequenceConfig>("pixtral.encoder")
        .add("block", Decl::nested("block", block))
        .rename("num_blocks", "num_hidden_layers")
}

/// The patch embeddings. Weights: the conv kernel `patch_conv.weight` `[Hv, 3, ph, pw]` is
/// Fast-LLM's linear `patch_embeddings.weight` `[Hv, 3·ph·pw]` (same bytes, channel-major), no
/// bias (rejected below); then `ln_pre`.
fn embeddings(norm: Arc<Section>) -> Section {
    Section::of::<PatchEmbeddingsConfig>("pixtral.embeddings")
        .weight("patch_embeddings", patch_embeddings("patch_conv.weight"))
        .weight(
            "normalization",
            nested(field!(PatchEmbeddingsConfig.normalization), "ln_pre", &norm),
        )
        .rename("patch_height", "patch_size")
        .add("patch_width", copied_from(&["patch_width"], "patch_size"))
        .add("num_channels", Decl::const_export("num_channels", int(3)))
        .add("normalization", Decl::nested("normalization", norm))
        .ignore(&["patch_embeddings"])
        .validate("square_patches", rules::square_patches("Pixtral patches are square"))
        .validate(
            "patch_bias",
            rules::no_biases(&["patch_embeddings"], "Pixtral patches have no bias"),
        )
}

/// `image_size` must be 1024: the only size the exported config describes.
fn image_size(hf: &Map, _: &ImportContext) -> Writes {
    match hf.get("image_size") {
        None | Some(Value::Int(1024)) => Ok(vec![]),
        Some(other) => Err(vec![Problem::at_hf(
            "image_size",
            format!("must be 1024, found {}", show(other)),
        )]),
    }
}

/// The vision encoder section (relative to `vision_config`). Weights: the patch embeddings and
/// `ln_pre` flat under the HF prefix, the blocks under `transformer.layers`.
pub fn vision_model() -> Section {
    vision_model_of(embeddings(normalization().build()).build(), block())
}

fn vision_model_of(embeddings: Arc<Section>, block: Arc<Section>) -> Section {
    Section::of::<VisionEncoderConfig>("pixtral.vision_model")
        .weight(
            "embeddings",
            nested(field!(VisionEncoderConfig.embeddings), "", &embeddings),
        )
        .weight(
            "encoder",
            blocks(field!(VisionEncoderConfig.encoder), "transformer.layers", &block),
        )
        .add("embeddings", Decl::nested("embeddings", embeddings))
        .add("encoder", Decl::nested("encoder", encoder(block).build()))
        .same("hidden_size")
        .add("model_type", Decl::const_export("model_type", text("pixtral")))
        .add(
            "image_size",
            Decl::import_only(&[], &["image_size"], Covers::Exact, image_size),
        )
        .ignore(&["adapter"])
        .validate("head_size", |fl| {
            let vision = fl.config::<VisionEncoderConfig>()?;
            // Only a fixed encoder of attention blocks has one head size (others are refused by
            // their sections).
            let Some(attention) = vision.encoder.fixed_attention() else {
                return Ok(());
            };
            let size = i128::from(attention.heads) * i128::from(attention.head_size);
            let hidden = vision.hidden_size;
            if size == i128::from(hidden) {
                return Ok(());
            }
            Err(vec![Problem::at_fast_llm(
                "encoder.block.mixer.head_size",
                format!("heads × head_size = {size} differs from the vision hidden_size {hidden} (Pixtral derives it)"),
            )])
        })
}

/// `PixtralVisionConfig` (transformers 4.57 / 5.24 defaults).
pub fn vision_class() -> HfClass {
    HfClass::new(
        "PixtralVisionConfig",
        vec![
            HfKey::new("hidden_size", HfType::Int, int(1024)),
            HfKey::new("intermediate_size", HfType::Int, int(4096)),
            HfKey::new("num_hidden_layers", HfType::Int, int(24)),
            HfKey::new("num_attention_heads", HfType::Int, int(16)),
            HfKey::new("num_channels", HfType::Int, int(3)),
            HfKey::new("image_size", HfType::Int, int(1024)),
            HfKey::new("patch_size", HfType::Int, int(16)),
            HfKey::new("hidden_act", HfType::Str, text("gelu")),
            HfKey::new("attention_dropout", HfType::Float, float(0.0)),
            HfKey::new("rope_theta", HfType::Float, float(10000.0)).only_in(HfLayout::V4),
            // 5.24 standardizes it with the class's `default_theta` and `default_rope_type`: a
            // missing entry takes its default, and a `default` rope type is written `axial`.
            HfKey::new("rope_parameters", HfType::Dict, Value::Null)
                .only_in(HfLayout::V5)
                .written_as(Fill::Value(
                    Value::from_json_str(r#"{"rope_theta": 10000.0, "rope_type": "axial"}"#).expect("valid JSON"),
                ))
                .filling_entries()
                .rewriting_entry("rope_type", text("default"), text("axial")),
            // `head_dim` must be the derived value: check a present one against it.
            HfKey {
                absent: Fill::Keep,
                null: Fill::Keep,
                ..HfKey::new("head_dim", HfType::Int, Value::Null)
            }
            .written_as(Fill::Derive(derived_head_dim)),
            HfKey::metadata("initializer_range", float(0.02)),
        ],
    )
    .with_model_type("pixtral")
}

/// Chooses the vision class: `model_type` must be `pixtral` (absent means LlavaConfig's CLIP default).
pub fn choose_vision_class(vision: Option<&Map>) -> Result<HfClass, String> {
    match vision.and_then(|v| v.get("model_type")) {
        Some(Value::Str(t)) if t == "pixtral" => {
            let class = vision_class();
            if let Some(vision) = vision
                && let Some(head_dim) = vision.get("head_dim")
                && !matches!(head_dim, Value::Null)
            {
                let loaded = class.load(vision).0;
                let derived = derived_head_dim(&loaded).map_err(|e| format!("head_dim: {e}"))?;
                if &derived != head_dim {
                    return Err(format!(
                        "head_dim {} differs from hidden_size / num_attention_heads = {} (Pixtral derives it)",
                        show(head_dim),
                        show(&derived)
                    ));
                }
            }
            Ok(class)
        }
        Some(other) => Err(format!(
            "model_type {} is not representable (only pixtral vision encoders)",
            show(other)
        )),
        None => Err(
            "missing or without model_type: LlavaConfig would build a CLIP vision encoder, which is not representable"
                .into(),
        ),
    }
}
