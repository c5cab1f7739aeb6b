//! `apriel2` (multimodal): the apriel2_text root table mounted on `MultiModalBaseModelConfig`,
//! plus a required `vision_encoder` sub-dict and `image_token_index`.
//!
//! The vision encoder reuses the apriel2_text sections (typed RMS norm, MLP, block, fixed block
//! sequence). Its mirrors — `patch_size` (= `embeddings.patch_height`), `num_hidden_layers`
//! (= `encoder.num_blocks`), `num_channels` / `embeddings.input_channels` (= 3), rotary
//! `max_image_size` (= 1024) — are second declarations of the same Fast-LLM field (or constants),
//! so import rejects disagreeing values through the safe set.
//!
//! Custom pieces, and why they are not primitives:
//! - `rotary_patch_size` — `encoder.block.mixer.rotary.patch_size` mirrors `embeddings.patch_height`
//!   and is written only for a `pixtral_2d` rotary: a conditional, cross-section mirror.

use std::sync::Arc;

use fastllm_core::config::{
    AttentionConfig, DefaultRotaryConfig, Map, MlpConfig, MultiModalBaseModelConfig, PatchEmbeddingsConfig,
    Rotary2dConfig, RotaryConfig, Value, VisionEncoderConfig,
};
use fastllm_core::dict::{self, show};
use fastllm_core::rules;
use fastllm_core::values::{boolean, float, int};
use fastllm_core::weights::{
    self as weights, WeightContext, WeightDecl, blocks, linear, nested, norm, size_of, text_hidden, vision_hidden,
};
use fastllm_core::{Claims, Covers, Decl, Problem, Section, field};
use fastllm_llama::sections::{LINEAR_LAYERS, attention_weights, biases_follow, mlp_weights, plain_attention};

use crate::apriel2;

/// The HF key the vision encoder lives under.
const VISION: &str = "vision_encoder";

/// An absent mirror takes the value it mirrors (`path` under `vision_encoder`).
fn mirror_of(path: &'static str) -> impl Fn(&Map) -> Result<Value, String> + Send + Sync {
    move |root| {
        dict::get(root, &format!("{VISION}.{path}"))
            .cloned()
            .ok_or_else(|| format!("absent, and `{VISION}.{path}` it mirrors is absent too"))
    }
}

/// The vision rotary: `pixtral_2d` ↔ `default_2d` (with `max_image_size` 1024), `mistral_1d` ↔
/// `default`.
pub fn vision_rotary_sections() -> Vec<Arc<Section>> {
    let theta = || Decl::default("theta", "theta", |_| Ok(float(10000.0)));
    vec![
        Section::of::<Rotary2dConfig>("apriel2.vision_rotary_2d")
            .hf_type("pixtral_2d")
            .add("theta", theta())
            .add("max_image_size", Decl::const_export("max_image_size", int(1024)))
            .build(),
        Section::of::<DefaultRotaryConfig>("apriel2.vision_rotary_1d")
            .hf_type("mistral_1d")
            .add("theta", theta())
            .build(),
    ]
}

/// The typed RMS norm over the vision encoder's hidden size.
fn vision_normalization() -> Section {
    apriel2::normalization().replace_weight("weight", norm(vision_hidden))
}

/// Vision attention (`type: attention`): sizes, shared bias flag, causality, typed rotary.
pub fn vision_attention() -> Section {
    let section = Section::of::<AttentionConfig>("apriel2.vision_attention")
        .hf_type("attention")
        .same("heads")
        .same("head_groups")
        .same("head_size")
        .same("add_linear_biases")
        .same("causal")
        .add(
            "cross_document_attention",
            Decl::const_export("cross_document_attention", boolean(false)),
        )
        .add("rotary", apriel2::rotary(vision_rotary_sections()))
        .add("linear_layers", Decl::ignored(LINEAR_LAYERS))
        .constant("softmax_scale_power", float(0.5));
    plain_attention(section, "the vision attention has no window").weight("layers", attention_weights(vision_hidden))
}

/// The vision MLP: apriel2_text's MLP without per-layer biases, over the vision hidden size.
pub fn vision_mlp() -> Section {
    apriel2::mlp()
        .named("apriel2.vision_mlp")
        .remove("layer_1.bias.enabled")
        .remove("layer_2.bias.enabled")
        .validate("layer_biases", biases_follow(&["layer_1", "layer_2"]))
        .replace_weight("layers", mlp_weights(vision_hidden))
}

/// The vision adapter: the vision MLP's table, its weights `layer_1` ↔ `linear_1`, `layer_2` ↔
/// `linear_2`ᵀ (to the text hidden size); biases follow `add_linear_biases` (the config rejects
/// per-layer overrides).
pub fn adapter() -> Section {
    let size = size_of(field!(MlpConfig.intermediate_size));
    let layer_1 = move |c: &WeightContext| {
        if c.holds(field!(MlpConfig.gated)) {
            size(c).saturating_mul(2)
        } else {
            size(c)
        }
    };
    vision_mlp().replace_weight(
        "layers",
        WeightDecl::Group(vec![
            linear("layer_1", &["linear_1"], vision_hidden, layer_1)
                .bias_from(field!(MlpConfig.layer_1))
                .into(),
            (linear("layer_2", &["linear_2"], size, text_hidden).transposed())
                .bias_from(field!(MlpConfig.layer_2))
                .into(),
        ]),
    )
}

/// The patch embeddings, flat in the vision dict: `embeddings.{patch_height, patch_width,
/// normalization, input_channels}` and the `patch_size` / `num_channels` mirrors. Weights: the
/// patch embeddings, a `[Hv, 3, p, p]` convolution in HF, and the norm.
pub fn patch_embeddings() -> Section {
    let norm = vision_normalization().build();
    Section::of::<PatchEmbeddingsConfig>("apriel2.patch_embeddings")
        .weight("patch_embeddings", weights::patch_embeddings("patch_embeddings.weight"))
        .weight(
            "normalization",
            nested(field!(PatchEmbeddingsConfig.normalization), "normalization", &norm),
        )
        .rename("patch_height", "embeddings.patch_height")
        .rename("patch_width", "embeddings.patch_width")
        .add(
            "normalization",
            Decl::nested_under("normalization", norm, "embeddings.normalization"),
        )
        .ignore(&["patch_embeddings"])
        .add(
            "input_channels",
            Decl::const_export("embeddings.input_channels", int(3)),
        )
        .add("num_channels", Decl::const_export("num_channels", int(3)))
        .add(
            "patch_size",
            Decl::default("patch_height", "patch_size", mirror_of("embeddings.patch_height")),
        )
        .add(
            "square_patches",
            Decl::import_only(&[], &[], Covers::Exact, |hf, _| {
                let (height, width) = (
                    dict::get(hf, "embeddings.patch_height"),
                    dict::get(hf, "embeddings.patch_width"),
                );
                match (height, width) {
                    (Some(h), Some(w)) if !dict::same(h, w) => Err(vec![Problem::at_hf(
                        "embeddings.patch_width",
                        format!(
                            "not representable: {} != patch_height {} (the format's patches are square)",
                            show(w),
                            show(h)
                        ),
                    )]),
                    _ => Ok(vec![]),
                }
            }),
        )
        .validate(
            "square_patches",
            rules::square_patches("the format's patches are square"),
        )
        .validate(
            "patch_bias",
            rules::no_biases(&["patch_embeddings"], "the format's patch embeddings have no bias"),
        )
}

/// `encoder.block.mixer.rotary.patch_size`: written for a `pixtral_2d` rotary as
/// `embeddings.patch_height`; on import it must agree with it.
fn rotary_patch_size() -> Decl {
    const PATCH_SIZE: &str = "encoder.block.mixer.rotary.patch_size";
    Decl::custom(
        Claims::exact(&[], &[PATCH_SIZE]),
        |fl, _| {
            let vision = fl.config::<VisionEncoderConfig>()?;
            // Only a fixed encoder of attention blocks has the rotary (others are refused by their sections).
            let Some(attention) = vision.encoder.fixed_attention() else {
                return Ok(vec![]);
            };
            match attention.rotary {
                RotaryConfig::Default2d(_) => Ok(vec![fastllm_core::HfWrite {
                    key: PATCH_SIZE.into(),
                    value: int(vision.embeddings.patch_height.into()),
                    source: Some("embeddings.patch_height".into()),
                }]),
                _ => Ok(vec![]),
            }
        },
        |hf, _| match (dict::get(hf, PATCH_SIZE), dict::get(hf, "embeddings.patch_height")) {
            (Some(size), Some(height)) if !dict::same(size, height) => Err(vec![Problem::at_hf(
                PATCH_SIZE,
                format!(
                    "{} differs from embeddings.patch_height {} it mirrors",
                    show(size),
                    show(height)
                ),
            )]),
            _ => Ok(vec![]),
        },
    )
    .into()
}

/// The vision encoder (`VisionEncoderConfig`, relative to `vision_encoder`); weights under
/// `embeddings`, `encoder.blocks.{i}` and `adapter`.
pub fn vision_encoder() -> Section {
    let block = apriel2::block(
        vec![vision_attention().build()],
        vision_mlp().build(),
        vision_normalization().build(),
    )
    .named("apriel2.vision_block")
    .build();
    let (embeddings, adapter) = (patch_embeddings().build(), adapter().build());
    Section::of::<VisionEncoderConfig>("apriel2.vision_encoder")
        .weight(
            "embeddings",
            nested(field!(VisionEncoderConfig.embeddings), "embeddings", &embeddings),
        )
        .weight(
            "encoder",
            blocks(field!(VisionEncoderConfig.encoder), "encoder.blocks", &block),
        )
        .weight(
            "adapter",
            nested(field!(VisionEncoderConfig.adapter), "adapter", &adapter),
        )
        .add("embeddings", Decl::nested("embeddings", embeddings))
        .add(
            "encoder",
            Decl::nested_under(
                "encoder",
                apriel2::fixed_blocks(block).named("apriel2.vision_blocks").build(),
                "encoder",
            ),
        )
        .add(
            "num_hidden_layers",
            Decl::default(
                "encoder.num_blocks",
                "num_hidden_layers",
                mirror_of("encoder.num_blocks"),
            ),
        )
        .add("rotary_patch_size", rotary_patch_size())
        .add("adapter", Decl::nested_under("adapter", adapter, "adapter"))
        .same("hidden_size")
}

/// The apriel2 root (`MultiModalBaseModelConfig`): the apriel2_text root's table on the
/// multimodal class, plus `vision_encoder` (required, its weights under `model.vision_encoder`)
/// and `image_token_index`.
pub fn base_model() -> Section {
    let vision = vision_encoder().build();
    apriel2::base_model()
        .on_class::<MultiModalBaseModelConfig>()
        .named("apriel2.base_model")
        .add(
            "vision_encoder",
            Decl::nested_under("vision_encoder", vision.clone(), VISION),
        )
        .weight(
            "vision_encoder",
            nested(
                field!(MultiModalBaseModelConfig.vision_encoder),
                "model.vision_encoder",
                &vision,
            ),
        )
        .optional("image_token_index", "image_token_index", Value::Null)
}
