//! Fast-LLM base-model configs the format can hold, for the `cargo xtask coverage` round trips
//! (`import(export(c)) == c` in both HF layouts; Gemma 4's rope block is the same in both).

use fastllm_core::config::Value;

fn parse(json: &str) -> Value {
    Value::from_json_str(json).expect("sample configs are valid JSON")
}

const RMS: &str = r#"{"type": "rms_norm", "epsilon": 1e-06}"#;

/// One block: `mixer` entries and the `mlp` are spliced in; every norm is the block's RMS norm.
fn block(mixer: &str, rotary: &str, mlp: &str, pre_mlp: &str) -> String {
    format!(
        r#"{{
            "mixer": {{
                "heads": 4, "add_linear_biases": false, "softmax_scale_power": 0.0, "rotary": {rotary},
                "query_norm": {RMS}, "key_norm": {RMS}, "value_norm": {{"type": "fixed_rms_norm", "epsilon": 1e-06}},
                {mixer}
            }},
            "mlp": {mlp},
            "normalization": {RMS},
            "pre_mlp_normalization": {pre_mlp},
            "post_mixer_normalization": {RMS},
            "post_mlp_normalization": {RMS},
            "output_scale": {{"enabled": true, "lr_scale": 0.0}}
        }}"#
    )
}

const SLIDING_ROPE: &str = r#"{"type": "default", "theta": 10000.0}"#;
const FULL_ROPE: &str = r#"{"type": "proportional", "theta": 1000000.0, "partial_rotary_factor": 0.25}"#;
const DENSE: &str = r#"{"intermediate_size": 128, "gated": true, "activation": "gelu", "add_linear_biases": false}"#;

fn hybrid(activation: &str) -> String {
    let mlp = |size: i64| {
        format!(
            r#""intermediate_size": {size}, "gated": true, "activation": "{activation}", "add_linear_biases": false,
               "pre_norm": {RMS}, "post_norm": {RMS}"#
        )
    };
    format!(
        r#"{{
            "type": "hybrid_moe",
            "dense": {{{}}},
            "routed": {{
                "type": "moe", {},
                "experts": 8, "experts_per_token": 2,
                "router_normalization": {{"type": "fixed_rms_norm", "epsilon": 1e-06}},
                "router_scale": {{"enabled": true}},
                "router_per_expert_scale": {{"enabled": true}},
                "router_input_scale": 0.125
            }}
        }}"#,
        mlp(96),
        mlp(32)
    )
}

/// A sample model: its two block configs, their pattern, the block count, extra head fields and
/// whether the embeddings are tied.
struct Model<'a> {
    sliding: &'a str,
    full: &'a str,
    pattern: &'a str,
    num_blocks: i64,
    head: &'a str,
    tied: bool,
}

fn model(model: Model) -> Value {
    let Model {
        sliding,
        full,
        pattern,
        num_blocks,
        head,
        tied,
    } = model;
    parse(&format!(
        r#"{{
            "hidden_size": 64,
            "tied_embedding_weight": {tied},
            "embeddings": {{"vocab_size": 128, "embedding_scale": 8.0}},
            "decoder": {{
                "type": "pattern",
                "blocks": {{"sliding_attention": {sliding}, "full_attention": {full}}},
                "pattern": {pattern},
                "num_blocks": {num_blocks}
            }},
            "head": {{"normalization": {RMS}{head}}}
        }}"#
    ))
}

pub(crate) fn gemma4() -> Vec<Value> {
    // Import reads `layer_types` as the whole pattern, so samples spell it out.
    let pattern = r#"["sliding_attention", "sliding_attention", "full_attention",
                      "sliding_attention", "sliding_attention", "full_attention"]"#;
    let none = r#"{"type": "none"}"#;
    vec![
        // Dense; the full layers share the sliding layers' KV heads; no softcap.
        model(Model {
            sliding: &block(
                r#""head_groups": 2, "head_size": 16, "window_size": 512"#,
                SLIDING_ROPE,
                DENSE,
                RMS,
            ),
            full: &block(r#""head_groups": 2, "head_size": 32"#, FULL_ROPE, DENSE, RMS),
            pattern,
            num_blocks: 6,
            head: "",
            tied: true,
        }),
        // MoE, shared K/V with their own head count on the full layers, softcap, no window.
        model(Model {
            sliding: &block(
                r#""head_groups": 4, "head_size": 16, "dropout": 0.1"#,
                SLIDING_ROPE,
                &hybrid("gelu"),
                none,
            ),
            full: &block(
                r#""head_groups": 1, "head_size": 32, "dropout": 0.1, "shared_key_value": true"#,
                r#"{"type": "proportional", "theta": 500000.0, "partial_rotary_factor": 0.5}"#,
                &hybrid("gelu"),
                none,
            ),
            pattern: r#"["sliding_attention", "full_attention", "sliding_attention", "full_attention"]"#,
            num_blocks: 4,
            head: r#", "final_logit_softcap": 30.0"#,
            tied: false,
        }),
    ]
}
