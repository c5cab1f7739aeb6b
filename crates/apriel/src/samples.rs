//! Fast-LLM base-model configs each format can hold, for the `check_handler` round trips
//! (`import(export(c)) == c` in both HF layouts).

use fastllm_core::config::Value;

fn parse(json: &str) -> Value {
    Value::from_json_str(json).expect("sample configs are valid JSON")
}

const NORM: &str = r#"{"type": "rms_norm", "epsilon": 1e-5}"#;
const MLP: &str = r#"{"intermediate_size": 128, "gated": true, "add_linear_biases": false}"#;
const ATTENTION: &str = r#"{"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
    "window_size": 4096, "rotary": {"type": "default", "theta": 10000}}"#;
const MAMBA: &str = r#"{"type": "mamba", "state_size": 16, "d_inner": 128, "d_xb": 32, "dt_rank": 4,
    "add_linear_biases": false, "convolution_layer": {"bias": {"enabled": true}},
    "dt_layer": {"bias": {"enabled": false}}}"#;
const GDN: &str = r#"{"type": "gdn", "value_heads": 8, "key_heads": 4, "key_head_dim": 16, "value_head_dim": 16,
    "convolution_layer": {"kernel_size": 3}}"#;

fn block(mixer: &str) -> String {
    format!(r#"{{"mixer": {mixer}, "mlp": {MLP}, "normalization": {NORM}}}"#)
}

/// Whether a sample's head shares the embeddings' weight (`tied_embedding_weight`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Embeddings {
    Tied,
    Untied,
}

fn gpt(decoder: &str, embeddings: Embeddings) -> Value {
    let tied = embeddings == Embeddings::Tied;
    parse(&format!(
        r#"{{"hidden_size": 64, "embeddings": {{"vocab_size": 128}}, "decoder": {decoder},
            "head": {{"normalization": {NORM}}}, "tied_embedding_weight": {tied}}}"#
    ))
}

pub(crate) fn apriel_hybrid_ssm() -> Vec<Value> {
    vec![
        gpt(
            &format!(r#"{{"type": "fixed", "num_blocks": 2, "block": {}}}"#, block(ATTENTION)),
            Embeddings::Untied,
        ),
        gpt(
            &format!(
                r#"{{"type": "pattern", "num_blocks": 4, "pattern": ["t", "m2", "m2", "t"],
                    "blocks": {{"t": {}, "m2": {}}}}}"#,
                block(ATTENTION),
                block(MAMBA)
            ),
            Embeddings::Tied,
        ),
        gpt(
            &format!(
                r#"{{"type": "pattern", "num_blocks": 3, "pattern": ["gdn", "t", "m2"],
                    "blocks": {{"t": {}, "m2": {}, "gdn": {}}}}}"#,
                block(ATTENTION),
                block(MAMBA),
                block(GDN)
            ),
            Embeddings::Untied,
        ),
    ]
}

const BIASED_ATTENTION: &str = r#"{"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
    "window_size": 512,
    "query_layer": {"bias": {"enabled": true}}, "key_layer": {"bias": {"enabled": true}},
    "value_layer": {"bias": {"enabled": true}},
    "rotary": {"type": "llama3", "theta": 500000, "scale_factor": 32.0, "original_context_length": 8192}}"#;
const YARN_ATTENTION: &str = r#"{"type": "attention", "heads": 4, "head_groups": 4, "head_size": 16,
    "rotary": {"type": "yarn", "theta": 1000000, "scale_factor": 4.0, "original_context_length": 32768}}"#;
const APRIEL2_MAMBA: &str = r#"{"type": "mamba", "state_size": 16, "d_inner": 128, "d_xb": 32, "dt_rank": 4,
    "add_linear_biases": false, "convolution_layer": {"kernel_size": 3, "bias": {"enabled": true}},
    "dt_layer": {"bias": {"enabled": false}}}"#;
const KDA: &str = r#"{"type": "kda", "heads": 4, "head_dim": 16, "convolution_layer": {"kernel_size": 3},
    "normalization": {"epsilon": 1e-6}}"#;
const GATED_GELU_MLP: &str = r#"{"intermediate_size": 96, "gated": false, "add_linear_biases": true, "activation": "gelu",
    "layer_2": {"bias": {"enabled": false}}}"#;

pub(crate) fn apriel2_text() -> Vec<Value> {
    vec![
        gpt(
            &format!(
                r#"{{"type": "fixed", "num_blocks": 2, "block": {}}}"#,
                block(BIASED_ATTENTION)
            ),
            Embeddings::Tied,
        ),
        gpt(
            &format!(
                r#"{{"type": "pattern", "num_blocks": 4, "pattern": ["attn", "ssm", "gdn", "kda"],
                    "blocks": {{"attn": {}, "ssm": {}, "gdn": {}, "kda": {{"mixer": {KDA}, "mlp": {GATED_GELU_MLP},
                    "normalization": {{"type": "rms_norm", "epsilon": 1e-6}}}}}}}}"#,
                block(YARN_ATTENTION),
                block(APRIEL2_MAMBA),
                block(GDN)
            ),
            Embeddings::Untied,
        ),
        gpt(
            &format!(
                r#"{{"type": "fixed", "num_blocks": 3, "block": {}}}"#,
                block(&format!(
                    r#"{{"type": "stochastic", "main_mixer_name": "swa", "sampling_strategy": "full_layout",
                        "mixers": {{"full": {ATTENTION}, "swa": {BIASED_ATTENTION}, "ssm": {APRIEL2_MAMBA}}}}}"#
                ))
            ),
            Embeddings::Untied,
        ),
    ]
}

fn vision(rotary: &str, heads: &str, adapter: &str) -> String {
    format!(
        r#"{{"hidden_size": 64,
            "embeddings": {{"patch_height": 4, "patch_width": 4, "normalization": {NORM}}},
            "encoder": {{"type": "fixed", "num_blocks": 2, "block": {{
                "mixer": {{{heads}, "head_size": 16, "add_linear_biases": false, "causal": false, "rotary": {rotary}}},
                "mlp": {MLP}, "normalization": {NORM}}}}},
            "adapter": {adapter}}}"#
    )
}

fn multimodal(vision: &str, image_token_index: &str) -> Value {
    let Value::Map(mut root) = gpt(
        &format!(
            r#"{{"type": "fixed", "num_blocks": 2, "block": {}}}"#,
            block(BIASED_ATTENTION)
        ),
        Embeddings::Tied,
    ) else {
        unreachable!()
    };
    root.insert("vision_encoder".into(), parse(vision));
    if !image_token_index.is_empty() {
        root.insert("image_token_index".into(), parse(image_token_index));
    }
    Value::Map(root)
}

pub(crate) fn apriel2() -> Vec<Value> {
    // (vision rotary, vision heads, adapter, image_token_index)
    [
        (
            r#"{"type": "default_2d", "theta": 10000}"#,
            r#""heads": 4, "head_groups": 4"#,
            r#"{"intermediate_size": 64, "gated": false, "add_linear_biases": true, "activation": "gelu"}"#,
            "120",
        ),
        (
            r#"{"type": "default", "theta": 20000}"#,
            r#""heads": 4, "head_groups": 2"#,
            r#"{"intermediate_size": 64, "gated": true, "add_linear_biases": false, "activation": "silu"}"#,
            "",
        ),
    ]
    .into_iter()
    .map(|(rotary, heads, adapter, image_token_index)| multimodal(&vision(rotary, heads, adapter), image_token_index))
    .collect()
}
