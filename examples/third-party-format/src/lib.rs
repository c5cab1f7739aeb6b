//! A third-party format: Qwen3, config and weights, declared outside fastllm-convert through its
//! public API.
//!
//! Qwen3 is Qwen2 without Q/K/V biases, with an explicit `head_dim`, and with per-head RMS norms
//! on queries and keys that share the model's `rms_norm_eps`. So its tables are the Llama
//! family's, with entries replaced: the attention's `query_norm`/`key_norm` become `Nested`
//! normalization sections instead of "must be null", and the two norms cross-check their
//! epsilon with the block norm through the safe set on `rms_norm_eps`. The weights are Llama's,
//! plus the two norms' (`q_norm`, `k_norm`).
//!
//! Linking this crate into a binary (naming it, e.g. `use third_party_format as _;`) is all it
//! takes for `qwen3` to appear in the registry.

use fastllm_core::config::{AttentionConfig, Value};
use fastllm_core::values::{boolean, int};
use fastllm_core::weights::{size_of, vector};
use fastllm_core::{Decl, Fill, HfClass, HfKey, HfType, Section, field, register_format};
use fastllm_llama::classes;
use fastllm_llama::sections::{self, LINEAR_LAYERS, Llama, biases_follow};

register_format! {
    "qwen3" in "third-party-example",
    architecture: "Qwen3ForCausalLM",
    base_model: Llama { attention: attention(), mlp: sections::mistral_mlp(), ..Llama::named("qwen3.base_model") },
    hf_class: qwen3_class(),
    samples: samples(),
}

/// Qwen2's attention table, with `head_dim`, `attention_bias` and the per-head Q/K norms
/// (`self_attn.q_norm` / `k_norm`, over `head_dim`, beside Llama's projections).
fn attention() -> Section {
    let (norm, head_size) = (
        sections::normalization().build(),
        size_of(field!(AttentionConfig.head_size)),
    );
    sections::qwen2_attention()
        .named("qwen3.attention")
        // Qwen3 writes `head_dim` and `attention_bias`, like Llama.
        .replace("head_size", Decl::rename("head_size", "head_dim"))
        .replace("add_linear_biases", Decl::rename("add_linear_biases", "attention_bias"))
        .replace("linear_layers", Decl::ignored(LINEAR_LAYERS))
        .replace("query_norm", Decl::nested("query_norm", norm.clone()))
        .replace("key_norm", Decl::nested("key_norm", norm))
        .without_validator("layer_biases")
        .validate("layer_biases", biases_follow(LINEAR_LAYERS))
        .weight("query_norm", vector("query_norm.weight", "q_norm.weight", head_size))
        .weight("key_norm", vector("key_norm.weight", "k_norm.weight", head_size))
}

/// `Qwen3Config`: Qwen2's keys plus `head_dim` (default 128, not derived) and `attention_bias`.
fn qwen3_class() -> HfClass {
    classes::qwen2().derive(
        "Qwen3Config",
        vec![
            HfKey::new("head_dim", HfType::Int, int(128)).null_means(Fill::Value(int(128))),
            HfKey::new("attention_bias", HfType::Bool, boolean(false)),
        ],
    )
}

fn samples() -> Vec<Value> {
    let sample = r#"{
        "hidden_size": 64,
        "tied_embedding_weight": true,
        "embeddings": {"vocab_size": 128},
        "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-6}},
        "decoder": {"num_blocks": 2, "block": {
            "mixer": {"heads": 4, "head_groups": 2, "head_size": 32, "add_linear_biases": false,
                      "rotary": {"type": "default", "theta": 1000000},
                      "query_norm": {"type": "rms_norm", "epsilon": 1e-6},
                      "key_norm": {"type": "rms_norm", "epsilon": 1e-6}},
            "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm", "epsilon": 1e-6}}}
    }"#;
    vec![Value::from_json_str(sample).expect("valid sample")]
}
