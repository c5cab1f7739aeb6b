//! The transformers config classes of the family: the value of every absent or `null` key
//! (transformers 4.57 and 5.24 agree on these), and what `save_pretrained` writes for the keys
//! the format does not read (token ids, `use_cache`, ...), where a rope key exists in one
//! transformers version only.

use fastllm_core::config::{Map, Value};
use fastllm_core::hf::class::{derived_head_dim, same_as_heads};
use fastllm_core::{Fill, HfClass, HfKey, HfLayout, HfType};

use fastllm_core::values::{boolean, float, int, text};

/// `LlamaConfig`.
pub fn llama() -> HfClass {
    HfClass::new(
        "LlamaConfig",
        vec![
            HfKey::new("vocab_size", HfType::Int, int(32000)),
            HfKey::new("hidden_size", HfType::Int, int(4096)),
            HfKey::new("intermediate_size", HfType::Int, int(11008)),
            HfKey::new("num_hidden_layers", HfType::Int, int(32)),
            HfKey::new("num_attention_heads", HfType::Int, int(32)),
            HfKey::derived("num_key_value_heads", HfType::Int, same_as_heads),
            HfKey::derived("head_dim", HfType::Int, derived_head_dim),
            HfKey::new("hidden_act", HfType::Str, text("silu")),
            HfKey::new("rms_norm_eps", HfType::Float, float(1e-6)),
            HfKey::new("tie_word_embeddings", HfType::Bool, boolean(false)),
            HfKey::new("max_position_embeddings", HfType::Int, int(2048)),
            HfKey::new("rope_theta", HfType::Float, float(crate::rotary::DEFAULT_ROPE_THETA)).only_in(HfLayout::V4),
            HfKey::new("rope_scaling", HfType::Dict, Value::Null).only_in(HfLayout::V4),
            // The format's export always writes it in v5.
            HfKey::new("rope_parameters", HfType::Dict, Value::Null)
                .only_in(HfLayout::V5)
                .written_as(Fill::Keep),
            HfKey::new("attention_bias", HfType::Bool, boolean(false)),
            HfKey::new("attention_dropout", HfType::Float, float(0.0)),
            HfKey::new("mlp_bias", HfType::Bool, boolean(false)),
            HfKey::metadata("initializer_range", float(0.02)),
            HfKey::metadata("use_cache", boolean(true)),
            HfKey::metadata("pretraining_tp", int(1)),
            HfKey::metadata("bos_token_id", int(1)),
            HfKey::metadata("eos_token_id", int(2)),
            HfKey::metadata("pad_token_id", Value::Null),
        ],
    )
    .with_model_type("llama")
}

/// A custom-code class keeps `rope_theta` beside `rope_parameters` in transformers 5.
fn rope_theta_in_both_layouts(class: HfClass) -> HfClass {
    let rope_theta = class.key("rope_theta").expect("a rope class").clone();
    class.derive(
        class.name,
        vec![HfKey {
            layout: None,
            ..rope_theta
        }],
    )
}

/// `DiffusionLlamaConfig` (Fast-LLM's external model): LlamaConfig's keys, a mask token, no cache.
pub fn diffusion_llama() -> HfClass {
    rope_theta_in_both_layouts(llama().derive(
        "DiffusionLlamaConfig",
        vec![
            HfKey::metadata("mask_token_id", int(131072)),
            HfKey::metadata("use_cache", boolean(false)),
        ],
    ))
}

/// `MTPLlamaConfig`: LlamaConfig plus `prediction_heads`.
pub fn mtp_llama() -> HfClass {
    rope_theta_in_both_layouts(llama().derive(
        "MTPLlamaConfig",
        vec![HfKey::new("prediction_heads", HfType::Int, int(1))],
    ))
}

/// `MistralConfig`: no bias keys, a 4096 sliding window unless `null`.
pub fn mistral() -> HfClass {
    llama()
        .derive(
            "MistralConfig",
            vec![
                HfKey::new("intermediate_size", HfType::Int, int(14336)),
                HfKey::new("num_key_value_heads", HfType::Int, int(8)).null_means(Fill::Derive(same_as_heads)),
                HfKey::new("max_position_embeddings", HfType::Int, int(4096 * 32)),
                HfKey::new("sliding_window", HfType::Int, int(4096)),
                // Read when present; the 4.57 class has no such attribute.
                HfKey::new("rope_scaling", HfType::Dict, Value::Null)
                    .only_in(HfLayout::V4)
                    .written_as(Fill::Keep),
            ],
        )
        .without(&["attention_bias", "mlp_bias", "pretraining_tp"])
        .with_model_type("mistral")
}

/// `MixtralConfig`: Mistral's keys with other defaults, plus the experts.
pub fn mixtral() -> HfClass {
    mistral().derive(
        "MixtralConfig",
        vec![
            HfKey::new("rms_norm_eps", HfType::Float, float(1e-5)),
            HfKey::new("rope_theta", HfType::Float, float(1e6)).only_in(HfLayout::V4),
            HfKey::new("sliding_window", HfType::Int, Value::Null),
            HfKey::new("num_local_experts", HfType::Int, int(8)),
            HfKey::new("num_experts_per_tok", HfType::Int, int(2)),
            HfKey::new("router_aux_loss_coef", HfType::Float, float(0.001)),
            HfKey::new("router_jitter_noise", HfType::Float, float(0.0)),
            HfKey::new("output_router_logits", HfType::Bool, boolean(false)),
        ],
    )
}

/// Qwen2's `layer_types` without a sliding window: every layer full attention.
fn all_full_attention(hf: &Map) -> Result<Value, String> {
    match hf.get("num_hidden_layers") {
        Some(Value::Int(layers)) => Ok(Value::List(
            (0..*layers).map(|_| Value::Str("full_attention".into())).collect(),
        )),
        _ => Err("cannot be derived without an int num_hidden_layers".into()),
    }
}

/// `Qwen2Config`: no `head_dim` or bias keys; sliding-window keys that must stay unused (the
/// class stores `sliding_window` as `None` unless `use_sliding_window`); token ids `None`.
pub fn qwen2() -> HfClass {
    llama()
        .derive(
            "Qwen2Config",
            vec![
                HfKey::new("vocab_size", HfType::Int, int(151936)),
                HfKey::new("intermediate_size", HfType::Int, int(22016)),
                HfKey::new("num_key_value_heads", HfType::Int, int(32)).null_means(Fill::Derive(same_as_heads)),
                HfKey::new("max_position_embeddings", HfType::Int, int(32768)),
                HfKey::new("sliding_window", HfType::Int, int(4096)).written_as(Fill::Value(Value::Null)),
                HfKey::new("use_sliding_window", HfType::Bool, boolean(false)),
                HfKey::new("max_window_layers", HfType::Int, int(28)),
                HfKey {
                    absent: Fill::Keep,
                    ..HfKey::new("layer_types", HfType::List, Value::Null)
                }
                .written_as(Fill::Derive(all_full_attention)),
                HfKey {
                    absent: Fill::Keep,
                    ..HfKey::new("use_mrope", HfType::Bool, boolean(false))
                },
                HfKey::metadata("bos_token_id", Value::Null),
                HfKey::metadata("eos_token_id", Value::Null),
            ],
        )
        .without(&["head_dim", "attention_bias", "mlp_bias", "pretraining_tp"])
        .with_model_type("qwen2")
}

/// `DreamConfig` (a Qwen2 clone with a mask token; no `layer_types` or token ids but
/// `pad_token_id`, no cache, `rope_theta` kept in transformers 5).
pub fn dream() -> HfClass {
    let class = qwen2().derive(
        "DreamConfig",
        vec![
            HfKey::metadata("mask_token_id", int(151666)),
            HfKey::metadata("use_cache", boolean(false)),
            HfKey {
                absent: Fill::Keep,
                ..HfKey::new("layer_types", HfType::List, Value::Null)
            },
        ],
    );
    rope_theta_in_both_layouts(class.without(&["bos_token_id", "eos_token_id"]))
}
