//! `Gemma4TextConfig` and its multimodal wrapper `Gemma4Config` (transformers 5.x only) as
//! [`HfClass`]es: the value of every absent or `null` key.

use fastllm_core::config::{Map, Value};
use fastllm_core::{Fill, HfClass, HfKey, HfType};

use crate::per_layer;
use fastllm_core::dict::same;
use fastllm_core::values::{boolean, float, int, text};

/// The layer-type names of `layer_types` (and of the Fast-LLM pattern blocks).
pub const SLIDING: &str = "sliding_attention";
/// See [`SLIDING`].
pub const FULL: &str = "full_attention";

/// transformers' default `layer_types`: every 6th layer full attention, the last one always.
fn default_layer_types(hf: &Map) -> Result<Value, String> {
    let Some(Value::Int(layers)) = hf.get("num_hidden_layers") else {
        return Err("absent, and cannot be derived without an int num_hidden_layers".into());
    };
    let layers = *layers;
    // Bounded before the list is built: the count comes from the input file.
    if layers > i128::from(fastllm_core::config::checks::MAX_BLOCKS) {
        return Err(format!(
            "absent, and not derived for num_hidden_layers {layers}: more than the {} blocks this converter \
             handles",
            fastllm_core::config::checks::MAX_BLOCKS
        ));
    }
    Ok(Value::List(
        (0..layers)
            .map(|i| text(if i % 6 == 5 || i == layers - 1 { FULL } else { SLIDING }))
            .collect(),
    ))
}

/// The 5.24 schema folds `global_head_dim` into `per_layer_config`: with that key, an absent
/// `global_head_dim` is the full-attention override (or `head_dim` without one); else 512.
fn default_global_head_dim(hf: &Map) -> Result<Value, String> {
    Ok(match per_layer::full_overrides(hf) {
        Ok(Some(overrides)) => overrides
            .head_dim
            .or_else(|| hf.get("head_dim").cloned())
            .unwrap_or(int(256)),
        // A malformed `per_layer_config` is reported by its own declaration.
        Ok(None) | Err(_) => int(512),
    })
}

/// What transformers 5.24 writes for an absent `per_layer_config`: `__post_init__` folds
/// `global_head_dim` (512 when absent) and, with `attention_k_eq_v`, a non-null
/// `num_global_key_value_heads` into every full-attention layer (the last layer always is one);
/// the per-layer config leaves out an override equal to the global value, and zero-pads the
/// layer keys to the width of the largest.
fn folded_per_layer_config(hf: &Map) -> Result<Value, String> {
    let layer_types = match hf.get("layer_types") {
        Some(Value::List(types)) => Value::List(types.clone()),
        _ => default_layer_types(hf)?,
    };
    let Value::List(layer_types) = layer_types else {
        return Err("layer_types is not a list".into());
    };
    let mut overrides = Map::new();
    let global_head_dim = hf.get("global_head_dim").cloned().unwrap_or(int(512));
    if !same(&global_head_dim, hf.get("head_dim").unwrap_or(&int(256))) {
        overrides.insert("head_dim".into(), global_head_dim);
    }
    if hf.get("attention_k_eq_v") == Some(&boolean(true))
        && let Some(heads) = hf.get("num_global_key_value_heads").filter(|h| **h != Value::Null)
        && hf.get("num_key_value_heads").is_none_or(|global| !same(heads, global))
    {
        overrides.insert("num_key_value_heads".into(), heads.clone());
    }
    if overrides.is_empty() {
        return Ok(Value::Map(Map::new()));
    }
    let last = layer_types.len().saturating_sub(1);
    let full: Vec<usize> = (0..layer_types.len())
        .filter(|&i| i == last || layer_types[i] == text(FULL))
        .collect();
    let width = full.last().map_or(1, |i| i.to_string().len());
    Ok(Value::Map(
        full.into_iter()
            .map(|i| (format!("{i:0width$}"), Value::Map(overrides.clone())))
            .collect(),
    ))
}

fn default_rope_parameters() -> Value {
    Value::from_json_str(
        r#"{
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0}
        }"#,
    )
    .expect("valid JSON")
}

/// A key whose `null` means the same as its absence.
fn key(name: &'static str, ty: HfType, default: Value) -> HfKey {
    HfKey::new(name, ty, default.clone()).null_means(Fill::Value(default))
}

/// `Gemma4TextConfig`. Keys are in resolution order: `layer_types` needs `num_hidden_layers`,
/// `global_head_dim` needs `layer_types` and `head_dim`.
pub fn gemma4_text() -> HfClass {
    HfClass::new(
        "Gemma4TextConfig",
        vec![
            HfKey::new("vocab_size", HfType::Int, int(262144)),
            HfKey::new("hidden_size", HfType::Int, int(2304)),
            HfKey::new("intermediate_size", HfType::Int, int(9216)),
            HfKey::new("num_hidden_layers", HfType::Int, int(30)),
            HfKey::new("num_attention_heads", HfType::Int, int(8)),
            HfKey::new("num_key_value_heads", HfType::Int, int(4))
                .null_means(Fill::Derive(fastllm_core::hf::class::same_as_heads)),
            key("head_dim", HfType::Int, int(256)),
            HfKey::derived("layer_types", HfType::List, default_layer_types),
            // 5.24 pops the 5.5–5.17 keys into `per_layer_config` and never writes them.
            HfKey {
                absent: Fill::Keep,
                ..HfKey::new("per_layer_config", HfType::Dict, Value::Null)
            }
            .written_as(Fill::Derive(folded_per_layer_config))
            .folding(&["global_head_dim", "num_global_key_value_heads"]),
            HfKey::derived("global_head_dim", HfType::Int, default_global_head_dim),
            HfKey::new("num_global_key_value_heads", HfType::Int, Value::Null),
            key("hidden_activation", HfType::Str, text("gelu_pytorch_tanh")),
            HfKey::new("rms_norm_eps", HfType::Float, float(1e-6)),
            HfKey::new("tie_word_embeddings", HfType::Bool, boolean(true)),
            key("attention_bias", HfType::Bool, boolean(false)),
            HfKey::new("attention_dropout", HfType::Float, float(0.0)),
            // `null` is no sliding window.
            HfKey::new("sliding_window", HfType::Int, int(512)),
            key("rope_parameters", HfType::Dict, default_rope_parameters()),
            HfKey::new("final_logit_softcapping", HfType::Float, Value::Null),
            HfKey::new("use_bidirectional_attention", HfType::Str, Value::Null),
            HfKey::new("vocab_size_per_layer_input", HfType::Int, int(262144)),
            // transformers tests these for truth: `null` disables them like 0 / false.
            key("hidden_size_per_layer_input", HfType::Int, int(256)).null_means(Fill::Value(int(0))),
            key("attention_k_eq_v", HfType::Bool, boolean(false)),
            key("num_kv_shared_layers", HfType::Int, int(0)),
            key("enable_moe_block", HfType::Bool, boolean(false)),
            key("use_double_wide_mlp", HfType::Bool, boolean(false)),
            HfKey::new("num_experts", HfType::Int, Value::Null),
            HfKey::new("top_k_experts", HfType::Int, Value::Null),
            HfKey::new("moe_intermediate_size", HfType::Int, Value::Null),
            HfKey::metadata("max_position_embeddings", int(131072)),
            HfKey::metadata("initializer_range", float(0.02)),
            HfKey::metadata("use_cache", boolean(true)),
            HfKey::metadata("bos_token_id", int(2)),
            HfKey::metadata("eos_token_id", int(1)),
            HfKey::metadata("pad_token_id", int(0)),
        ],
    )
    .with_model_type("gemma4_text")
}

/// `Gemma4Config`, the `Gemma4ForConditionalGeneration` wrapper: `text_config` is always a
/// `Gemma4TextConfig` (transformers builds one from the dict whatever its `model_type`; absent
/// means the class defaults); `vision_config` / `audio_config` absent or `null` mean no tower.
/// Token ids take the class defaults. The text root is `text_config`.
pub fn gemma4() -> HfClass {
    HfClass::new(
        "Gemma4Config",
        vec![
            HfKey::sub_config("text_config", |_| Ok(gemma4_text())),
            HfKey::new("vision_config", HfType::Dict, Value::Null),
            HfKey::new("audio_config", HfType::Dict, Value::Null),
            HfKey::new("boi_token_id", HfType::Int, int(255_999)),
            HfKey::new("eoi_token_id", HfType::Int, int(258_882)),
            HfKey::new("image_token_id", HfType::Int, int(258_880)),
            HfKey::new("video_token_id", HfType::Int, int(258_884)),
            HfKey::new("boa_token_id", HfType::Int, int(256_000)),
            HfKey::new("eoa_token_index", HfType::Int, int(258_883)),
            HfKey::new("audio_token_id", HfType::Int, int(258_881)),
            HfKey::metadata("initializer_range", float(0.02)),
            HfKey::new("tie_word_embeddings", HfType::Bool, boolean(true)),
        ],
    )
    .with_text_root("text_config")
}
