//! Fast-LLM base-model configs each format can hold, for the `cargo xtask coverage` round trips
//! (`import(export(c)) == c` in both HF layouts).

use fastllm_core::config::Value;

fn parse(json: &str) -> Value {
    Value::from_json_str(json).expect("sample configs are valid JSON")
}

const HEAD: &str = r#", "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}}"#;

/// A small Llama-shaped config; `mixer` and `mlp` entries go into the block, `extra` (root
/// entries, with a leading comma) must include the head.
fn llama_like(mixer: &str, mlp: &str, extra: &str) -> Value {
    parse(&format!(
        r#"{{
            "hidden_size": 64,
            "embeddings": {{"vocab_size": 128}},
            "decoder": {{
                "num_blocks": 2,
                "block": {{
                    "mixer": {{"heads": 4, "head_groups": 2, "head_size": 16, {mixer}}},
                    "mlp": {{"intermediate_size": 128, "gated": true, {mlp}}},
                    "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}
                }}
            }}{extra}
        }}"#
    ))
}

const DEFAULT_ROPE: &str = r#""rotary": {"type": "default", "theta": 10000}"#;
const LLAMA3_ROPE: &str =
    r#""rotary": {"type": "llama3", "theta": 500000, "scale_factor": 32.0, "original_context_length": 8192}"#;
const YARN_ROPE: &str =
    r#""rotary": {"type": "yarn", "theta": 1000000, "scale_factor": 4.0, "original_context_length": 32768}"#;

pub(crate) fn llama() -> Vec<Value> {
    vec![
        llama_like(
            &format!(r#""add_linear_biases": false, {DEFAULT_ROPE}"#),
            r#""add_linear_biases": false"#,
            HEAD,
        ),
        llama_like(
            &format!(r#""add_linear_biases": true, {LLAMA3_ROPE}"#),
            r#""add_linear_biases": true, "activation": "gelu""#,
            &format!(r#", "tied_embedding_weight": true{HEAD}"#),
        ),
        llama_like(
            &format!(r#""add_linear_biases": false, {YARN_ROPE}"#),
            r#""add_linear_biases": false"#,
            HEAD,
        ),
    ]
}

pub(crate) fn mistral() -> Vec<Value> {
    vec![
        llama_like(
            &format!(r#""add_linear_biases": false, "window_size": 4096, {DEFAULT_ROPE}"#),
            r#""add_linear_biases": false"#,
            HEAD,
        ),
        llama_like(
            &format!(r#""add_linear_biases": false, {YARN_ROPE}"#),
            r#""add_linear_biases": false"#,
            HEAD,
        ),
    ]
}

pub(crate) fn mixtral() -> Vec<Value> {
    vec![llama_like(
        &format!(r#""add_linear_biases": false, {DEFAULT_ROPE}"#),
        r#""type": "moe", "add_linear_biases": false, "experts": 4, "experts_per_token": 2"#,
        HEAD,
    )]
}

pub(crate) fn qwen2() -> Vec<Value> {
    let biases = r#""add_linear_biases": false,
        "query_layer": {"bias": {"enabled": true}},
        "key_layer": {"bias": {"enabled": true}},
        "value_layer": {"bias": {"enabled": true}},
        "dense_layer": {"bias": {"enabled": false}}"#;
    vec![
        llama_like(
            &format!("{biases}, {DEFAULT_ROPE}"),
            r#""add_linear_biases": false"#,
            HEAD,
        ),
        llama_like(
            &format!("{biases}, {YARN_ROPE}"),
            r#""add_linear_biases": false"#,
            &format!(r#", "tied_embedding_weight": true{HEAD}"#),
        ),
    ]
}

pub(crate) fn mtp_llama() -> Vec<Value> {
    vec![llama_like(
        &format!(r#""add_linear_biases": false, {DEFAULT_ROPE}"#),
        r#""add_linear_biases": false"#,
        r#", "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}, "prediction_heads": 3}"#,
    )]
}
