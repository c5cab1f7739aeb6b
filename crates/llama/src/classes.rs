//! The transformers config classes of the family: the value of every absent or `null` key
//! (transformers 4.57 and 5.24 agree on these).

use fastllm_core::hf_class::{derived_head_dim, same_as_heads};
use fastllm_core::{Fill, HfClass, HfKey, HfType};

use crate::sections::{boolean, float, int, text};

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
            HfKey::new("rope_theta", HfType::Float, float(10000.0)),
            HfKey::new("rope_scaling", HfType::Dict, fastllm_core::config::Value::Null),
            HfKey::new("rope_parameters", HfType::Dict, fastllm_core::config::Value::Null),
            HfKey::new("attention_bias", HfType::Bool, boolean(false)),
            HfKey::new("attention_dropout", HfType::Float, float(0.0)),
            HfKey::new("mlp_bias", HfType::Bool, boolean(false)),
        ],
    )
}

/// `DiffusionLlamaConfig` (Fast-LLM's external model): LlamaConfig's keys.
pub fn diffusion_llama() -> HfClass {
    HfClass {
        name: "DiffusionLlamaConfig",
        ..llama()
    }
}

/// `MTPLlamaConfig`: LlamaConfig plus `prediction_heads`.
pub fn mtp_llama() -> HfClass {
    llama().derive(
        "MTPLlamaConfig",
        vec![HfKey::new("prediction_heads", HfType::Int, int(1))],
    )
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
            ],
        )
        .without(&["attention_bias", "mlp_bias"])
}

/// `MixtralConfig`: Mistral's keys with other defaults, plus the experts.
pub fn mixtral() -> HfClass {
    mistral().derive(
        "MixtralConfig",
        vec![
            HfKey::new("rms_norm_eps", HfType::Float, float(1e-5)),
            HfKey::new("rope_theta", HfType::Float, float(1e6)),
            HfKey::new("sliding_window", HfType::Int, fastllm_core::config::Value::Null),
            HfKey::new("num_local_experts", HfType::Int, int(8)),
            HfKey::new("num_experts_per_tok", HfType::Int, int(2)),
            HfKey::new("router_aux_loss_coef", HfType::Float, float(0.001)),
            HfKey::new("router_jitter_noise", HfType::Float, float(0.0)),
            HfKey::new("output_router_logits", HfType::Bool, boolean(false)),
        ],
    )
}

/// `Qwen2Config`: no `head_dim` or bias keys; sliding-window keys that must stay unused.
pub fn qwen2() -> HfClass {
    llama()
        .derive(
            "Qwen2Config",
            vec![
                HfKey::new("vocab_size", HfType::Int, int(151936)),
                HfKey::new("intermediate_size", HfType::Int, int(22016)),
                HfKey::new("num_key_value_heads", HfType::Int, int(32)).null_means(Fill::Derive(same_as_heads)),
                HfKey::new("max_position_embeddings", HfType::Int, int(32768)),
                HfKey::new("sliding_window", HfType::Int, int(4096)),
                HfKey::new("use_sliding_window", HfType::Bool, boolean(false)),
                HfKey::new("max_window_layers", HfType::Int, int(28)),
                HfKey {
                    absent: Fill::Keep,
                    ..HfKey::new("layer_types", HfType::List, fastllm_core::config::Value::Null)
                },
                HfKey {
                    absent: Fill::Keep,
                    ..HfKey::new("use_mrope", HfType::Bool, boolean(false))
                },
            ],
        )
        .without(&["head_dim", "attention_bias", "mlp_bias"])
}

/// `DreamConfig` (a Qwen2 clone with a mask token).
pub fn dream() -> HfClass {
    HfClass {
        name: "DreamConfig",
        ..qwen2()
    }
}
