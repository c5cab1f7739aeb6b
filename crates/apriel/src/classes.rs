//! The transformers config classes of the family (Fast-LLM's external models), as `HfClass`es.

use fastllm_core::config::{Map, Value};
use fastllm_core::values::{boolean, int, text};
use fastllm_core::{Fill, HfClass, HfKey, HfType};
use fastllm_llama::classes;

use crate::hybrid;

/// The `layer_types` the class writes for vLLM: one name per `hybrid_block_layout` entry.
fn layer_types(hf: &Map) -> Result<Value, String> {
    let Some(Value::List(layout)) = hf.get("hybrid_block_layout") else {
        return Err("cannot be derived without a hybrid_block_layout list".into());
    };
    layout
        .iter()
        .map(|block| match block {
            Value::Str(b) if b == "t" => Ok(text("full_attention")),
            Value::Str(b) if b == "swa" => Ok(text("sliding_attention")),
            Value::Str(b) if b == "gdn" => Ok(text("gated_delta_net")),
            Value::Str(b) if b == "kl" => Ok(text("kimi_linear")),
            Value::Str(b) if b == "m2" => Ok(text("mamba2")),
            other => Err(format!("no layer type for block {other:?}")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::List)
}

/// The `linear_attn_config` the class writes from its default `gdn_cfg`.
fn default_linear_attn_config() -> Value {
    Value::from_json_str(r#"{"head_dim": 128, "num_heads": 32, "short_conv_kernel_size": 4}"#).expect("valid JSON")
}

/// `AprielHybridSSMConfig`: MistralConfig plus `hybrid_block_layout` (`["t"]`), `ssm_cfg` (the
/// full default dict when absent or `null`, missing entries filled from it; nested keys default
/// in the section tables), and the keys the class writes from the layout (`layer_types`) and for
/// KDA (`linear_attn_config`).
pub fn apriel_hybrid_ssm() -> HfClass {
    classes::mistral()
        .derive(
            "AprielHybridSSMConfig",
            vec![
                HfKey::new("hybrid_block_layout", HfType::List, Value::List(vec![text("t")])),
                HfKey::new("ssm_cfg", HfType::Dict, hybrid::default_ssm_cfg())
                    .null_means(Fill::Value(hybrid::default_ssm_cfg()))
                    .filling_entries(),
                HfKey::new("linear_attn_config", HfType::Dict, Value::Null)
                    .absent_means(Fill::Keep)
                    .written_as(Fill::Value(default_linear_attn_config())),
                HfKey::new("layer_types", HfType::List, Value::Null)
                    .absent_means(Fill::Keep)
                    .written_as(Fill::Derive(layer_types)),
            ],
        )
        .with_model_type("apriel_hybrid_ssm")
}

/// `Apriel2TextConfig`: `hidden_size`, `vocab_size`, `tie_word_embeddings`, and the typed
/// `decoder`, `head` and `embeddings` dicts, each the class default when absent, `null` or `{}`
/// (the class reads `value or default`).
pub fn apriel2_text() -> HfClass {
    let dict = |name, default: Value| {
        HfKey::new(name, HfType::Dict, default.clone())
            .null_means(Fill::Value(default.clone()))
            .empty_means(Fill::Value(default))
    };
    HfClass::new(
        "Apriel2TextConfig",
        vec![
            HfKey::new("hidden_size", HfType::Int, int(4096)),
            HfKey::new("vocab_size", HfType::Int, int(32000)),
            HfKey::new("tie_word_embeddings", HfType::Bool, boolean(false)),
            dict("decoder", crate::apriel2::default_decoder()),
            dict("head", crate::apriel2::default_head()),
            dict("embeddings", crate::apriel2::default_embeddings()),
            HfKey::metadata("use_cache", boolean(true)),
            HfKey::metadata("bos_token_id", int(1)),
            HfKey::metadata("eos_token_id", int(2)),
            HfKey::metadata("pad_token_id", Value::Null),
        ],
    )
}

/// `Apriel2Config`: Apriel2TextConfig plus `vision_encoder` and `image_token_index` (both `null`
/// by default; the format requires a vision encoder).
pub fn apriel2() -> HfClass {
    apriel2_text().derive(
        "Apriel2Config",
        vec![
            HfKey::new("vision_encoder", HfType::Dict, Value::Null).absent_means(Fill::Keep),
            HfKey::new("image_token_index", HfType::Int, Value::Null),
        ],
    )
}
