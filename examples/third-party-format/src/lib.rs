//! A third-party format: Qwen3, declared outside fastllm-convert through its public API.
//!
//! Qwen3 is Qwen2 without Q/K/V biases, with an explicit `head_dim`, and with per-head RMS norms
//! on queries and keys that share the model's `rms_norm_eps`. So its tables are the Llama
//! family's, with entries replaced: the attention's `query_norm`/`key_norm` become `Nested`
//! normalization sections instead of "must be null", and the two norms cross-check their
//! epsilon with the block norm through the safe set on `rms_norm_eps`.
//!
//! Linking this crate into a binary (naming it, e.g. `use third_party_format as _;`) is all it
//! takes for `qwen3` to appear in the registry.

use std::sync::OnceLock;

use fastllm_core::config::{ModelKind, Value};
use fastllm_core::values::{boolean, int};
use fastllm_core::{Converter, Decl, Fill, Handler, HfClass, HfKey, HfType, inventory};
use fastllm_llama::classes;
use fastllm_llama::sections;

fn converter() -> &'static Converter {
    static CONVERTER: OnceLock<Converter> = OnceLock::new();
    CONVERTER.get_or_init(|| {
        let norm = sections::normalization().build();
        let attention = sections::qwen2_attention()
            .named("qwen3.attention")
            // Qwen3 writes `head_dim` and `attention_bias`, like Llama.
            .replace("head_size", Decl::rename("head_size", "head_dim"))
            .replace("add_linear_biases", Decl::rename("add_linear_biases", "attention_bias"))
            .replace("linear_layers", Decl::ignored(sections::LINEAR_LAYERS))
            .replace("query_norm", Decl::nested("query_norm", norm.clone()))
            .replace("key_norm", Decl::nested("key_norm", norm.clone()))
            .without_validator("layer_biases")
            .validate("layer_biases", sections::biases_follow(sections::LINEAR_LAYERS));
        let block = sections::block(attention.build(), sections::mistral_mlp().build(), norm.clone()).build();
        let base_model = sections::base_model(block, sections::head(norm).build()).named("qwen3.base_model");
        Converter {
            base_model: base_model.build(),
            hf_class: qwen3_class(),
            samples: samples(),
        }
    })
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

inventory::submit! {
    Handler {
        name: "qwen3",
        family: "third-party-example",
        model_types: &["qwen3"],
        architecture: "Qwen3ForCausalLM",
        auto_map: &[],
        model: ModelKind::Gpt,
        extra_files: &[],
        converter,
    }
}
