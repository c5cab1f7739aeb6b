//! The Llava formats: a Pixtral vision encoder and a text model, in one `LlavaConfig`
//! (`text_config`, `vision_config`, and the projector keys at the root).
//!
//! `llava` reads its `text_config` with the class its `model_type` names (MistralConfig, or
//! LlamaConfig when `llama` or absent) and converts it with the Mistral tables;
//! `llava_hybrid_ssm` reads an `apriel_hybrid_ssm` text model with the Apriel hybrid-SSM tables.
//!
//! Custom pieces, and why they are not primitives:
//! - `text_model` — the text model's fields sit at the root of the Fast-LLM multimodal config
//!   but in the `text_config` sub-dict on the HF side, read by a class chosen per `model_type`.
//! - Pixtral's `rotary` — `rope_theta` (v4) or `rope_parameters` (v5) ↔ a 2-D rotary.

pub mod pixtral;
pub mod weights;

use std::sync::Arc;

use fastllm_core::config::{Map, MlpBaseConfig, MlpConfig, MultiModalBaseModelConfig, Value};
use fastllm_core::dict::show;
use fastllm_core::multimodal::TextConfig;
use fastllm_core::values::{boolean, int, text};
use fastllm_core::weights::{WeightContext, linear, size_of, text_hidden, vision_hidden};
use fastllm_core::{Covers, Decl, Fill, HfClass, HfKey, HfLayout, HfType, Problem, Section, field, register_format};
use fastllm_llama::classes;
use fastllm_llama::sections;
use fastllm_llama::sections::Llama;

/// The family name in the registry.
pub const FAMILY: &str = "llava";

/// Keys of a LlamaConfig `text_config` that the Mistral tables do not read; checked on import.
const LLAMA_TEXT_KEYS: &[&str] = &["text_config", "text_config.attention_bias", "text_config.mlp_bias"];

/// What a `text_config` without `model_type` is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntypedText {
    /// A LlamaConfig (Llava's rule).
    Llama,
    /// The one text model the format holds.
    TheFormats,
}

/// The text model: the Fast-LLM root's text fields ↔ `text_config`, converted by `base`.
pub fn text_model(base: Arc<Section>, untyped: UntypedText) -> Decl {
    let untyped_is_llama = untyped == UntypedText::Llama;
    TextConfig::new(base)
        .claiming(LLAMA_TEXT_KEYS)
        .finishing_export(move |text_config| {
            // Without `model_type`, LlavaConfig reads `text_config` as a LlamaConfig, which has no
            // sliding window (transformers would drop it silently): a windowed text model names
            // the class that has one. Windowless exports stay as Fast-LLM writes them.
            if untyped_is_llama && !matches!(text_config.get("sliding_window"), None | Some(Value::Null)) {
                text_config.insert("model_type".into(), text("mistral"));
            }
        })
        .checking_import(move |text_config| {
            let mut problems = Vec::new();
            // LlamaConfig reads a text_config without model_type.
            let llama = match text_config.get("model_type") {
                None => untyped_is_llama,
                Some(t) => t == &text("llama"),
            };
            for key in ["attention_bias", "mlp_bias"] {
                match (llama, text_config.get(key)) {
                    (_, None) | (true, Some(Value::Bool(false))) => {}
                    (true, Some(found)) => problems.push(Problem::at_hf(
                        format!("text_config.{key}"),
                        format!("{}: the Llava text model has no biases", show(found)),
                    )),
                    (false, Some(_)) => problems.push(Problem::at_hf(
                        format!("text_config.{key}"),
                        "unknown key: not part of this text config class",
                    )),
                }
            }
            if llama && !matches!(text_config.get("sliding_window"), None | Some(Value::Null)) {
                problems.push(Problem::at_hf(
                    "text_config.sliding_window",
                    "LlamaConfig has no sliding window",
                ));
            }
            problems
        })
        .into()
}

/// The projector from the vision hidden size to the text hidden size (a plain MLP, written flat
/// at the Llava root with `"type": "mlp"`). Weights `Hv → I_a → H` (not gated): `layer_1` ↔
/// `linear_1`, `layer_2` ↔ `linear_2`ᵀ (Fast-LLM stores `layer_2` as `[I_a, H]`), biases with
/// `add_linear_biases`.
pub fn adapter() -> Section {
    let size = size_of(field!(MlpConfig.intermediate_size));
    let biases = |c: &WeightContext| c.holds(field!(MlpConfig.add_linear_biases));
    Section::of::<MlpConfig>("llava.adapter")
        .weight(
            "layer_1",
            linear("layer_1", &["linear_1"], vision_hidden, size).bias_when(biases),
        )
        .weight(
            "layer_2",
            (linear("layer_2", &["linear_2"], size, text_hidden).transposed()).bias_when(biases),
        )
        .hf_type("mlp")
        .add(
            "intermediate_size",
            Decl::import_only(&["intermediate_size"], &[], Covers::Exact, |_, context| {
                let hidden = fastllm_core::dict::get(context.root, "text_config.hidden_size").cloned();
                Ok(vec![("intermediate_size".into(), hidden.unwrap_or(Value::Null))])
            }),
        )
        .rename("add_linear_biases", "multimodal_projector_bias")
        .constant("gated", boolean(false))
        .add(
            "activation",
            fastllm_core::activation::activation(&["projector_hidden_act"]),
        )
        .add("layers", Decl::ignored(&["layer_1", "layer_2"]))
        .constant("pre_norm", Value::Null)
        .constant("post_norm", Value::Null)
        .validate("layer_biases", sections::biases_follow(&["layer_1", "layer_2"]))
}

/// The sections a Llava root is made of.
pub struct Parts {
    /// The text model's root (converts `text_config`).
    pub text: Arc<Section>,
    /// A Pixtral section ([`pixtral::vision_model`]), converting `vision_config`.
    pub vision: Arc<Section>,
    /// The projector ([`adapter`]), converting its keys at the root.
    pub adapter: Arc<Section>,
}

/// The Llava root on `parts`: config declarations; [`weights::base_model`] adds the weights.
pub fn base_model(name: &'static str, parts: &Parts, untyped: UntypedText) -> Section {
    Section::of::<MultiModalBaseModelConfig>(name)
        .add("text_model", text_model(parts.text.clone(), untyped))
        .add(
            "vision_encoder",
            Decl::nested_under("vision_encoder", parts.vision.clone(), "vision_config"),
        )
        .add("adapter", Decl::nested("vision_encoder.adapter", parts.adapter.clone()))
        .same("image_token_index")
        .add(
            "vision_feature_select_strategy",
            Decl::const_export("vision_feature_select_strategy", text("full")),
        )
        .add(
            "vision_feature_layer",
            Decl::const_export("vision_feature_layer", int(-1)),
        )
        .add(
            "llava_hf_defaults",
            Decl::ignored_hf(&["image_seq_length", "tie_word_embeddings", "ignore_index"]),
        )
        .validate("image_token_index", |fl| {
            match fl.config::<MultiModalBaseModelConfig>()?.image_token_index {
                None => Err(vec![Problem::at_fast_llm(
                    "image_token_index",
                    "required by Llava, found null",
                )]),
                Some(_) => Ok(()),
            }
        })
        .validate("adapter_output", |fl| {
            let root = fl.config::<MultiModalBaseModelConfig>()?;
            let adapter = match &root.vision_encoder.adapter {
                MlpBaseConfig::Mlp(mlp) => Some(mlp.intermediate_size),
                MlpBaseConfig::Moe(mlp) => Some(mlp.intermediate_size),
                MlpBaseConfig::HybridMoe(_) => None,
            };
            let hidden = root.hidden_size;
            if adapter == Some(hidden) {
                return Ok(());
            }
            let adapter = adapter.map_or(Value::Null, |size| Value::Int(size.into()));
            Err(vec![Problem::at_fast_llm(
                "vision_encoder.adapter.intermediate_size",
                format!(
                    "{} differs from hidden_size {hidden}: Llava projects to the text hidden size",
                    show(&adapter)
                ),
            )])
        })
}

/// LlamaConfig as a Llava `text_config` (no sliding window; the key is accepted as `null`).
fn llama_text_class() -> HfClass {
    classes::llama().derive(
        "LlamaConfig",
        vec![HfKey::new("sliding_window", HfType::Int, Value::Null).written_as(Fill::Keep)],
    )
}

/// The class of a Llava `text_config`, by its `model_type`.
pub fn choose_text_class(text_config: Option<&Map>) -> Result<HfClass, String> {
    match text_config.and_then(|t| t.get("model_type")) {
        None => Ok(llama_text_class()),
        Some(Value::Str(t)) if t == "llama" => Ok(llama_text_class()),
        Some(Value::Str(t)) if t == "mistral" => Ok(classes::mistral()),
        Some(other) => Err(format!(
            "text model_type {} is not representable (mistral or llama)",
            show(other)
        )),
    }
}

/// `LlavaConfig`, with `text_config` (its text root) loaded by `text`.
pub fn llava_class(name: &'static str, text: fn(Option<&Map>) -> Result<HfClass, String>) -> HfClass {
    HfClass::new(
        name,
        vec![
            HfKey::sub_config("text_config", text),
            HfKey::sub_config("vision_config", pixtral::choose_vision_class),
            HfKey::new("image_token_index", HfType::Int, int(32000)),
            HfKey::new("projector_hidden_act", HfType::Str, text_value("gelu")),
            HfKey::new("multimodal_projector_bias", HfType::Bool, boolean(true)),
            HfKey::new("vision_feature_layer", HfType::Any, int(-2)),
            HfKey::new("vision_feature_select_strategy", HfType::Str, text_value("default")),
            HfKey::new("image_seq_length", HfType::Int, int(576)),
            // Read by older classes; 4.57 and 5.24 no longer write it.
            HfKey::new("ignore_index", HfType::Int, int(-100)).written_as(Fill::Keep),
            // A `PretrainedConfig` key at its default (`true`) in 4.57; the 5.24 class's own.
            HfKey::metadata("tie_word_embeddings", boolean(false))
                .only_in(HfLayout::V5)
                .written_as(Fill::Derive(tied_like_text)),
        ],
    )
    .with_text_root("text_config")
}

/// What transformers 5.24 writes for an absent `tie_word_embeddings`: `LlavaConfig.__post_init__`
/// takes the text model's `true` over its own default `false`.
fn tied_like_text(hf: &Map) -> Result<Value, String> {
    Ok(boolean(matches!(
        fastllm_core::dict::get(hf, "text_config.tie_word_embeddings"),
        Some(Value::Bool(true))
    )))
}

fn text_value(s: &str) -> Value {
    text(s)
}

mod samples {
    use fastllm_core::config::Value;

    /// A small Llava config: a Mistral-shaped text model and a Pixtral encoder.
    pub(crate) fn llava() -> Vec<Value> {
        let sample = r#"{
            "hidden_size": 64,
            "image_token_index": 10,
            "embeddings": {"vocab_size": 128},
            "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}},
            "decoder": {"num_blocks": 2, "block": {
                "mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
                          "rotary": {"type": "default", "theta": 1000000}},
                "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
                "normalization": {"type": "rms_norm", "epsilon": 1e-5}}},
            "vision_encoder": {
                "hidden_size": 32,
                "embeddings": {"patch_height": 4, "patch_width": 4, "normalization": {"type": "rms_norm", "epsilon": 1e-5}},
                "encoder": {"num_blocks": 2, "block": {
                    "mixer": {"heads": 2, "head_groups": 2, "head_size": 16, "add_linear_biases": false, "causal": false,
                              "rotary": {"type": "default_2d", "theta": 10000}},
                    "mlp": {"intermediate_size": 64, "gated": true, "add_linear_biases": false, "activation": "gelu"},
                    "normalization": {"type": "rms_norm", "epsilon": 1e-5}}},
                "adapter": {"intermediate_size": 64, "gated": false, "add_linear_biases": true, "activation": "gelu"}
            }
        }"#;
        vec![Value::from_json_str(sample).expect("valid sample")]
    }

    /// A small Llava-hybrid config: attention and Mamba blocks in the text model.
    pub(crate) fn llava_hybrid_ssm() -> Vec<Value> {
        let mut sample = llava().remove(0);
        let Value::Map(root) = &mut sample else { unreachable!() };
        let decoder = r#"{"type": "pattern", "num_blocks": 4, "pattern": ["t", "m2", "m2", "t"], "blocks": {
            "t": {"mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
                            "rotary": {"type": "default", "theta": 10000}},
                  "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
                  "normalization": {"type": "rms_norm", "epsilon": 1e-5}},
            "m2": {"mixer": {"type": "mamba", "state_size": 16, "d_inner": 128, "d_xb": 32, "dt_rank": 4,
                             "add_linear_biases": false, "repeat_kv_before_conv": true,
                             "convolution_layer": {"bias": {"enabled": true}}, "dt_layer": {"bias": {"enabled": true}}},
                   "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
                   "normalization": {"type": "rms_norm", "epsilon": 1e-5}}}}"#;
        root.insert("decoder".into(), Value::from_json_str(decoder).expect("valid sample"));
        vec![sample]
    }
}

/// Llava's root: the text model is Mistral's tables (config and weights, Mistral names), its
/// weights mounted under `language_model` ([`weights::base_model`]).
fn llava_base_model() -> Section {
    let (attention, mlp) = (sections::mistral_attention(), sections::mistral_mlp());
    let text: Arc<Section> = Llama {
        attention,
        mlp,
        ..Llama::named("llava.text_model")
    }
    .into();
    let parts = Parts {
        text,
        vision: pixtral::vision_model().build(),
        adapter: adapter().build(),
    };
    weights::base_model(base_model("llava.base_model", &parts, UntypedText::Llama), parts)
}

/// The class of a `llava_hybrid_ssm` `text_config`: an Apriel hybrid-SSM model. The format's
/// own export writes `text_config` without `model_type` (as Fast-LLM does), so that reads as
/// the hybrid model too: it is the only text model the format holds.
pub fn choose_hybrid_text_class(text_config: Option<&Map>) -> Result<HfClass, String> {
    match text_config.and_then(|t| t.get("model_type")) {
        None => Ok(fastllm_apriel::classes::apriel_hybrid_ssm()),
        Some(Value::Str(t)) if t == "apriel_hybrid_ssm" => Ok(fastllm_apriel::classes::apriel_hybrid_ssm()),
        other => Err(format!(
            "text model_type {} is not representable (llava_hybrid_ssm holds an apriel_hybrid_ssm text model)",
            other.map(show).unwrap_or_else(|| "missing".into())
        )),
    }
}

/// `llava_hybrid_ssm`'s root: the text model is the `apriel_hybrid_ssm` root (config and
/// weights), its weights mounted under `language_model`.
fn llava_hybrid_ssm_base_model() -> Section {
    let text = fastllm_apriel::hybrid::base_model()
        .named("llava_hybrid_ssm.text_model")
        .build();
    let parts = Parts {
        text,
        vision: pixtral::vision_model().build(),
        adapter: adapter().build(),
    };
    let root = base_model("llava_hybrid_ssm.base_model", &parts, UntypedText::TheFormats);
    weights::base_model(root, parts)
}

register_format! {
    "llava_hybrid_ssm" in FAMILY,
    // LlavaHybridConfig writes `llava_hybrid`; Fast-LLM's format name is `llava_hybrid_ssm`.
    model_types: ["llava_hybrid_ssm", "llava_hybrid"],
    architecture: "LlavaHybridForConditionalGeneration",
    auto_map: [
        ("AutoConfig", "configuration_llava_hybrid.LlavaHybridConfig"),
        ("AutoModel", "modeling_llava_hybrid.LlavaHybridModel"),
        ("AutoModelForCausalLM", "modeling_llava_hybrid.LlavaHybridForConditionalGeneration"),
        ("AutoModelForVision2Seq", "modeling_llava_hybrid.LlavaHybridForConditionalGeneration"),
        ("AutoModelForImageTextToText", "modeling_llava_hybrid.LlavaHybridForConditionalGeneration"),
    ],
    model: MultiModal,
    extra_files: ["configuration_llava_hybrid.py", "modeling_llava_hybrid.py"],
    base_model: llava_hybrid_ssm_base_model(),
    // The custom class has no `tie_word_embeddings` of its own in 5.24.
    hf_class: llava_class("LlavaHybridConfig", choose_hybrid_text_class).without(&["tie_word_embeddings"]),
    samples: samples::llava_hybrid_ssm(),
}

register_format! {
    "llava" in FAMILY,
    architecture: "LlavaForConditionalGeneration",
    model: MultiModal,
    base_model: llava_base_model(),
    hf_class: llava_class("LlavaConfig", choose_text_class),
    samples: samples::llava(),
}
