//! Weight declarations of the Apriel formats: for one small config per format, the exact plan
//! (Fast-LLM name and shape ↔ HF names, transform) as fast-llm-state-dict.md §2–§3 and formats.md
//! §9.5 / §10.5 / §14.3 state it; for every sample config, the plan's Fast-LLM parameters are
//! Fast-LLM's layout; and synthetic HF → Fast-LLM → HF is bit-identical.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::Options;
use fastllm_checkpoint::synthetic::{fast_llm_to_hf, synthetic_to_fast_llm};
use fastllm_checkpoint::{Checkpoint, open_hf};
use fastllm_core::config::{BaseModelConfig, ModelKind, Value, load_base_model};
use fastllm_core::weights::{PlanEntry, Transform, plan};
use fastllm_core::{Handler, find};
use fastllm_layout as layout;
use rstest::rstest;

use fastllm_apriel as _;

use Transform::{Concat, Copy, Reshape, Transpose};

fn handler(format: &str) -> &'static Handler {
    find(format).unwrap()
}

fn typed(handler: &Handler, config: &Value) -> BaseModelConfig {
    load_base_model(handler.model, config).unwrap()
}

fn plan_of(format: &str, config: &Value) -> Vec<PlanEntry> {
    let handler = handler(format);
    plan(&handler.converter().base_model, &typed(handler, config)).unwrap()
}

/// One expected plan entry: Fast-LLM name, shape, HF names, transform.
type Expected = (&'static str, &'static [usize], &'static [&'static str], Transform);

/// The plan equals `expected` (in any order), and every HF shape follows from the transform
/// (`Reshape` shapes are checked by the caller).
fn assert_plan(entries: &[PlanEntry], expected: &[Expected]) {
    let mut got: Vec<(String, Vec<usize>, Vec<String>, Transform)> = entries
        .iter()
        .map(|e| (e.fast_llm.clone(), e.fast_llm_shape.clone(), e.hf.clone(), e.transform))
        .collect();
    let mut want: Vec<(String, Vec<usize>, Vec<String>, Transform)> = expected
        .iter()
        .map(|(fl, shape, hf, t)| {
            (
                fl.to_string(),
                shape.to_vec(),
                hf.iter().map(|s| s.to_string()).collect(),
                *t,
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got_names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(got_names, want_names);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    for entry in entries.iter().filter(|e| e.transform != Reshape) {
        assert_eq!(
            Some(entry.hf_shapes.clone()),
            entry.transform.hf_shapes(&entry.fast_llm_shape, entry.hf.len()),
            "{}",
            entry.fast_llm
        );
    }
}

fn json(text: &str) -> Value {
    Value::from_json_str(text).unwrap()
}

const NORM: &str = r#"{"type": "rms_norm", "epsilon": 1e-5}"#;

/// apriel_hybrid_ssm: `t`, `m2`, `gdn` blocks (H 8, V 16, untied).
fn hybrid_config() -> Value {
    json(&format!(
        r#"{{"hidden_size": 8, "embeddings": {{"vocab_size": 16}}, "tied_embedding_weight": false,
            "head": {{"normalization": {NORM}}},
            "decoder": {{"type": "pattern", "num_blocks": 3, "pattern": ["t", "m2", "gdn"], "blocks": {{
                "t": {{"mixer": {{"type": "attention", "heads": 2, "head_groups": 1, "head_size": 4,
                        "add_linear_biases": false, "rotary": {{"type": "default", "theta": 10000}}}},
                      "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                      "normalization": {NORM}}},
                "m2": {{"mixer": {{"type": "mamba", "state_size": 4, "d_inner": 16, "d_xb": 8, "dt_rank": 2,
                        "add_linear_biases": false, "convolution_layer": {{"bias": {{"enabled": true}}}},
                        "dt_layer": {{"bias": {{"enabled": true}}}}}},
                      "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                      "normalization": {NORM}}},
                "gdn": {{"mixer": {{"type": "gdn", "value_heads": 2, "key_heads": 1, "key_head_dim": 4,
                        "value_head_dim": 4, "convolution_layer": {{"kernel_size": 3}}}},
                      "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                      "normalization": {NORM}}}}}}}}}"#
    ))
}

/// The gated MLP and both norms of a Mistral-style block `i` (`prefix` = its HF prefix).
macro_rules! mistral_block_rest {
    ($i:literal, $prefix:literal) => {
        [
            (
                concat!("decoder.", $i, ".mlp.layer_1.weight"),
                &[24, 8][..],
                &[
                    concat!($prefix, ".mlp.gate_proj.weight"),
                    concat!($prefix, ".mlp.up_proj.weight"),
                ][..],
                Concat,
            ),
            (
                concat!("decoder.", $i, ".mlp.layer_2.weight"),
                &[12, 8][..],
                &[concat!($prefix, ".mlp.down_proj.weight")][..],
                Transpose,
            ),
            (
                concat!("decoder.", $i, ".norm_1.weight"),
                &[8][..],
                &[concat!($prefix, ".input_layernorm.weight")][..],
                Copy,
            ),
            (
                concat!("decoder.", $i, ".norm_2.weight"),
                &[8][..],
                &[concat!($prefix, ".post_attention_layernorm.weight")][..],
                Copy,
            ),
        ]
    };
}

#[test]
fn hybrid_plan_is_the_state_dict() {
    let mut expected: Vec<Expected> = vec![
        (
            "embeddings.word_embeddings_weight",
            &[16, 8],
            &["model.embed_tokens.weight"],
            Copy,
        ),
        // t: attention under self_attn.
        (
            "decoder.0.mixer.query.weight",
            &[8, 8],
            &["model.layers.0.self_attn.q_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mixer.key_value.weight",
            &[8, 8],
            &[
                "model.layers.0.self_attn.k_proj.weight",
                "model.layers.0.self_attn.v_proj.weight",
            ],
            Concat,
        ),
        (
            "decoder.0.mixer.dense.weight",
            &[8, 8],
            &["model.layers.0.self_attn.o_proj.weight"],
            Copy,
        ),
        // m2: Mamba under mixer; in_proj rows z (16), x (8), B (8), C (16).
        (
            "decoder.1.mixer.in_proj.weight",
            &[48, 8],
            &["model.layers.1.mixer.in_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.dt_in_proj.weight",
            &[2, 8],
            &["model.layers.1.mixer.dt_in_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.dt_proj.weight",
            &[16, 2],
            &["model.layers.1.mixer.dt_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.dt_proj.bias",
            &[16],
            &["model.layers.1.mixer.dt_proj.bias"],
            Copy,
        ),
        (
            "decoder.1.mixer.convolution.weight",
            &[16, 1, 4],
            &["model.layers.1.mixer.conv1d.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.convolution.bias",
            &[16],
            &["model.layers.1.mixer.conv1d.bias"],
            Copy,
        ),
        ("decoder.1.mixer.A_log", &[16, 4], &["model.layers.1.mixer.A_log"], Copy),
        ("decoder.1.mixer.D", &[16], &["model.layers.1.mixer.D"], Copy),
        (
            "decoder.1.mixer.out_proj.weight",
            &[8, 16],
            &["model.layers.1.mixer.out_proj.weight"],
            Copy,
        ),
        // gdn: Q = 4, Vv = 8.
        (
            "decoder.2.mixer.in_proj_qkvz.weight",
            &[24, 8],
            &["model.layers.2.mixer.in_proj_qkvz.weight"],
            Copy,
        ),
        (
            "decoder.2.mixer.in_proj_ba.weight",
            &[4, 8],
            &["model.layers.2.mixer.in_proj_ba.weight"],
            Copy,
        ),
        (
            "decoder.2.mixer.convolution.weight",
            &[16, 1, 3],
            &["model.layers.2.mixer.convolution.weight"],
            Copy,
        ),
        (
            "decoder.2.mixer.out_proj.weight",
            &[8, 8],
            &["model.layers.2.mixer.out_proj.weight"],
            Copy,
        ),
        ("decoder.2.mixer.dt_bias", &[2], &["model.layers.2.mixer.dt_bias"], Copy),
        ("decoder.2.mixer.A_log", &[2], &["model.layers.2.mixer.A_log"], Copy),
        (
            "decoder.2.mixer.norm.weight",
            &[4],
            &["model.layers.2.mixer.norm.weight"],
            Copy,
        ),
        ("head.final_norm.weight", &[8], &["model.norm.weight"], Copy),
        ("head.output_weights", &[16, 8], &["lm_head.weight"], Copy),
    ];
    expected.extend(mistral_block_rest!("0", "model.layers.0"));
    expected.extend(mistral_block_rest!("1", "model.layers.1"));
    expected.extend(mistral_block_rest!("2", "model.layers.2"));
    assert_plan(&plan_of("apriel_hybrid_ssm", &hybrid_config()), &expected);
}

/// apriel2_text: an attention block (K/V biases, ungated biased MLP) and a stochastic block of
/// GDN, KDA and Mamba (H 8, V 16, tied).
fn apriel2_text_config() -> Value {
    json(&format!(
        r#"{{"hidden_size": 8, "embeddings": {{"vocab_size": 16}}, "tied_embedding_weight": true,
            "head": {{"normalization": {NORM}}},
            "decoder": {{"type": "pattern", "num_blocks": 2, "pattern": ["attn", "stoch"], "blocks": {{
                "attn": {{"mixer": {{"type": "attention", "heads": 2, "head_groups": 1, "head_size": 4,
                        "add_linear_biases": false, "key_layer": {{"bias": {{"enabled": true}}}},
                        "value_layer": {{"bias": {{"enabled": true}}}},
                        "rotary": {{"type": "default", "theta": 10000}}}},
                      "mlp": {{"intermediate_size": 6, "gated": false, "add_linear_biases": true,
                        "layer_2": {{"bias": {{"enabled": false}}}}}},
                      "normalization": {NORM}}},
                "stoch": {{"mixer": {{"type": "stochastic", "main_mixer_name": "gdn", "mixers": {{
                        "gdn": {{"type": "gdn", "value_heads": 2, "key_heads": 1, "key_head_dim": 4,
                            "value_head_dim": 4, "convolution_layer": {{"kernel_size": 3}}}},
                        "kda": {{"type": "kda", "heads": 2, "head_dim": 4, "convolution_layer": {{"kernel_size": 3}}}},
                        "mamba": {{"type": "mamba", "state_size": 4, "d_inner": 16, "d_xb": 8, "dt_rank": 2,
                            "add_linear_biases": false, "convolution_layer": {{"bias": {{"enabled": true}}}}}}}}}},
                      "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                      "normalization": {NORM}}}}}}}}}"#
    ))
}

#[test]
fn apriel2_text_plan_is_the_state_dict() {
    let expected: Vec<Expected> = vec![
        (
            "embeddings.word_embeddings_weight",
            &[16, 8],
            &["model.embed_tokens.weight"],
            Copy,
        ),
        // Block 0: attention, K/V bias from the key layer.
        (
            "decoder.0.mixer.query.weight",
            &[8, 8],
            &["model.decoder.blocks.0.mixer.q_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mixer.key_value.weight",
            &[8, 8],
            &[
                "model.decoder.blocks.0.mixer.k_proj.weight",
                "model.decoder.blocks.0.mixer.v_proj.weight",
            ],
            Concat,
        ),
        (
            "decoder.0.mixer.dense.weight",
            &[8, 8],
            &["model.decoder.blocks.0.mixer.o_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mixer.key_value.bias",
            &[8],
            &[
                "model.decoder.blocks.0.mixer.k_proj.bias",
                "model.decoder.blocks.0.mixer.v_proj.bias",
            ],
            Concat,
        ),
        // Ungated MLP: layer_1 is up_proj alone; layer_2 has no bias (per-layer override).
        (
            "decoder.0.mlp.layer_1.weight",
            &[6, 8],
            &["model.decoder.blocks.0.mlp.up_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mlp.layer_1.bias",
            &[6],
            &["model.decoder.blocks.0.mlp.up_proj.bias"],
            Copy,
        ),
        (
            "decoder.0.mlp.layer_2.weight",
            &[6, 8],
            &["model.decoder.blocks.0.mlp.down_proj.weight"],
            Transpose,
        ),
        (
            "decoder.0.norm_1.weight",
            &[8],
            &["model.decoder.blocks.0.input_layernorm.weight"],
            Copy,
        ),
        (
            "decoder.0.norm_2.weight",
            &[8],
            &["model.decoder.blocks.0.post_attention_layernorm.weight"],
            Copy,
        ),
        // Block 1: stochastic, every sub-mixer under mixer.mixers.<name>.
        (
            "decoder.1.mixer.mixers.gdn.in_proj_qkvz.weight",
            &[24, 8],
            &["model.decoder.blocks.1.mixer.mixers.gdn.in_proj_qkvz.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.in_proj_ba.weight",
            &[4, 8],
            &["model.decoder.blocks.1.mixer.mixers.gdn.in_proj_ba.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.convolution.weight",
            &[16, 1, 3],
            &["model.decoder.blocks.1.mixer.mixers.gdn.convolution.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.out_proj.weight",
            &[8, 8],
            &["model.decoder.blocks.1.mixer.mixers.gdn.out_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.dt_bias",
            &[2],
            &["model.decoder.blocks.1.mixer.mixers.gdn.dt_bias"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.A_log",
            &[2],
            &["model.decoder.blocks.1.mixer.mixers.gdn.A_log"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.gdn.norm.weight",
            &[4],
            &["model.decoder.blocks.1.mixer.mixers.gdn.norm.weight"],
            Copy,
        ),
        // KDA: 2 heads of 4, projection 8, kernel 3.
        (
            "decoder.1.mixer.mixers.kda.q_proj.weight",
            &[8, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.q_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.k_proj.weight",
            &[8, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.k_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.v_proj.weight",
            &[8, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.v_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.q_conv.weight",
            &[8, 1, 3],
            &["model.decoder.blocks.1.mixer.mixers.kda.q_conv.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.k_conv.weight",
            &[8, 1, 3],
            &["model.decoder.blocks.1.mixer.mixers.kda.k_conv.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.v_conv.weight",
            &[8, 1, 3],
            &["model.decoder.blocks.1.mixer.mixers.kda.v_conv.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.f_a_proj.weight",
            &[4, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.f_a_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.f_b_proj.weight",
            &[8, 4],
            &["model.decoder.blocks.1.mixer.mixers.kda.f_b_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.g_a_proj.weight",
            &[4, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.g_a_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.g_b_proj.weight",
            &[8, 4],
            &["model.decoder.blocks.1.mixer.mixers.kda.g_b_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.beta_proj.weight",
            &[2, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.beta_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.o_proj.weight",
            &[8, 8],
            &["model.decoder.blocks.1.mixer.mixers.kda.o_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.A_log",
            &[2],
            &["model.decoder.blocks.1.mixer.mixers.kda.A_log"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.dt_bias",
            &[8],
            &["model.decoder.blocks.1.mixer.mixers.kda.dt_bias"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.kda.norm.weight",
            &[4],
            &["model.decoder.blocks.1.mixer.mixers.kda.norm.weight"],
            Copy,
        ),
        // Mamba: no linear biases, explicit conv bias, dt_proj bias unset → none; kernel 4.
        (
            "decoder.1.mixer.mixers.mamba.in_proj.weight",
            &[48, 8],
            &["model.decoder.blocks.1.mixer.mixers.mamba.in_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.dt_in_proj.weight",
            &[2, 8],
            &["model.decoder.blocks.1.mixer.mixers.mamba.dt_in_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.dt_proj.weight",
            &[16, 2],
            &["model.decoder.blocks.1.mixer.mixers.mamba.dt_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.convolution.weight",
            &[16, 1, 4],
            &["model.decoder.blocks.1.mixer.mixers.mamba.conv1d.weight"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.convolution.bias",
            &[16],
            &["model.decoder.blocks.1.mixer.mixers.mamba.conv1d.bias"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.A_log",
            &[16, 4],
            &["model.decoder.blocks.1.mixer.mixers.mamba.A_log"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.D",
            &[16],
            &["model.decoder.blocks.1.mixer.mixers.mamba.D"],
            Copy,
        ),
        (
            "decoder.1.mixer.mixers.mamba.out_proj.weight",
            &[8, 16],
            &["model.decoder.blocks.1.mixer.mixers.mamba.out_proj.weight"],
            Copy,
        ),
        (
            "decoder.1.mlp.layer_1.weight",
            &[24, 8],
            &[
                "model.decoder.blocks.1.mlp.gate_proj.weight",
                "model.decoder.blocks.1.mlp.up_proj.weight",
            ],
            Concat,
        ),
        (
            "decoder.1.mlp.layer_2.weight",
            &[12, 8],
            &["model.decoder.blocks.1.mlp.down_proj.weight"],
            Transpose,
        ),
        (
            "decoder.1.norm_1.weight",
            &[8],
            &["model.decoder.blocks.1.input_layernorm.weight"],
            Copy,
        ),
        (
            "decoder.1.norm_2.weight",
            &[8],
            &["model.decoder.blocks.1.post_attention_layernorm.weight"],
            Copy,
        ),
        // Tied: no head.output_weights.
        ("head.final_norm.weight", &[8], &["model.norm.weight"], Copy),
    ];
    assert_plan(&plan_of("apriel2_text", &apriel2_text_config()), &expected);
}

/// apriel2: one text block plus a vision encoder (Hv 4, 2×2 patches, one biased block, adapter to
/// the text hidden size 8), untied.
fn apriel2_config() -> Value {
    json(&format!(
        r#"{{"hidden_size": 8, "embeddings": {{"vocab_size": 16}}, "tied_embedding_weight": false,
            "head": {{"normalization": {NORM}}},
            "decoder": {{"type": "fixed", "num_blocks": 1, "block": {{
                "mixer": {{"type": "attention", "heads": 2, "head_groups": 2, "head_size": 4, "add_linear_biases": false,
                    "rotary": {{"type": "default", "theta": 10000}}}},
                "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                "normalization": {NORM}}}}},
            "vision_encoder": {{"hidden_size": 4,
                "embeddings": {{"patch_height": 2, "patch_width": 2, "normalization": {NORM}}},
                "encoder": {{"type": "fixed", "num_blocks": 1, "block": {{
                    "mixer": {{"heads": 1, "head_groups": 1, "head_size": 4, "add_linear_biases": true, "causal": false,
                        "rotary": {{"type": "default_2d", "theta": 10000}}}},
                    "mlp": {{"intermediate_size": 6, "gated": false, "add_linear_biases": true, "activation": "gelu"}},
                    "normalization": {NORM}}}}},
                "adapter": {{"intermediate_size": 10, "gated": false, "add_linear_biases": true, "activation": "gelu"}}}}}}"#
    ))
}

#[test]
fn apriel2_plan_is_the_state_dict() {
    let entries = plan_of("apriel2", &apriel2_config());
    let expected: Vec<Expected> = vec![
        (
            "embeddings.word_embeddings_weight",
            &[16, 8],
            &["model.embed_tokens.weight"],
            Copy,
        ),
        (
            "decoder.0.mixer.query.weight",
            &[8, 8],
            &["model.decoder.blocks.0.mixer.q_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mixer.key_value.weight",
            &[16, 8],
            &[
                "model.decoder.blocks.0.mixer.k_proj.weight",
                "model.decoder.blocks.0.mixer.v_proj.weight",
            ],
            Concat,
        ),
        (
            "decoder.0.mixer.dense.weight",
            &[8, 8],
            &["model.decoder.blocks.0.mixer.o_proj.weight"],
            Copy,
        ),
        (
            "decoder.0.mlp.layer_1.weight",
            &[24, 8],
            &[
                "model.decoder.blocks.0.mlp.gate_proj.weight",
                "model.decoder.blocks.0.mlp.up_proj.weight",
            ],
            Concat,
        ),
        (
            "decoder.0.mlp.layer_2.weight",
            &[12, 8],
            &["model.decoder.blocks.0.mlp.down_proj.weight"],
            Transpose,
        ),
        (
            "decoder.0.norm_1.weight",
            &[8],
            &["model.decoder.blocks.0.input_layernorm.weight"],
            Copy,
        ),
        (
            "decoder.0.norm_2.weight",
            &[8],
            &["model.decoder.blocks.0.post_attention_layernorm.weight"],
            Copy,
        ),
        ("head.final_norm.weight", &[8], &["model.norm.weight"], Copy),
        ("head.output_weights", &[16, 8], &["lm_head.weight"], Copy),
        // Vision: patches [Hv, 3·2·2] ↔ the HF convolution [Hv, 3, 2, 2].
        (
            "vision_encoder.embeddings.patch_embeddings.weight",
            &[4, 12],
            &["model.vision_encoder.embeddings.patch_embeddings.weight"],
            Reshape,
        ),
        (
            "vision_encoder.embeddings.normalization.weight",
            &[4],
            &["model.vision_encoder.embeddings.normalization.weight"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mixer.query.weight",
            &[4, 4],
            &["model.vision_encoder.encoder.blocks.0.mixer.q_proj.weight"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mixer.key_value.weight",
            &[8, 4],
            &[
                "model.vision_encoder.encoder.blocks.0.mixer.k_proj.weight",
                "model.vision_encoder.encoder.blocks.0.mixer.v_proj.weight",
            ],
            Concat,
        ),
        (
            "vision_encoder.encoder.0.mixer.dense.weight",
            &[4, 4],
            &["model.vision_encoder.encoder.blocks.0.mixer.o_proj.weight"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mixer.query.bias",
            &[4],
            &["model.vision_encoder.encoder.blocks.0.mixer.q_proj.bias"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mixer.key_value.bias",
            &[8],
            &[
                "model.vision_encoder.encoder.blocks.0.mixer.k_proj.bias",
                "model.vision_encoder.encoder.blocks.0.mixer.v_proj.bias",
            ],
            Concat,
        ),
        (
            "vision_encoder.encoder.0.mixer.dense.bias",
            &[4],
            &["model.vision_encoder.encoder.blocks.0.mixer.o_proj.bias"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mlp.layer_1.weight",
            &[6, 4],
            &["model.vision_encoder.encoder.blocks.0.mlp.up_proj.weight"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mlp.layer_1.bias",
            &[6],
            &["model.vision_encoder.encoder.blocks.0.mlp.up_proj.bias"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.mlp.layer_2.weight",
            &[6, 4],
            &["model.vision_encoder.encoder.blocks.0.mlp.down_proj.weight"],
            Transpose,
        ),
        (
            "vision_encoder.encoder.0.mlp.layer_2.bias",
            &[4],
            &["model.vision_encoder.encoder.blocks.0.mlp.down_proj.bias"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.norm_1.weight",
            &[4],
            &["model.vision_encoder.encoder.blocks.0.input_layernorm.weight"],
            Copy,
        ),
        (
            "vision_encoder.encoder.0.norm_2.weight",
            &[4],
            &["model.vision_encoder.encoder.blocks.0.post_attention_layernorm.weight"],
            Copy,
        ),
        // Adapter: Hv 4 → 10 → text hidden 8.
        (
            "vision_encoder.adapter.layer_1.weight",
            &[10, 4],
            &["model.vision_encoder.adapter.linear_1.weight"],
            Copy,
        ),
        (
            "vision_encoder.adapter.layer_1.bias",
            &[10],
            &["model.vision_encoder.adapter.linear_1.bias"],
            Copy,
        ),
        (
            "vision_encoder.adapter.layer_2.weight",
            &[10, 8],
            &["model.vision_encoder.adapter.linear_2.weight"],
            Transpose,
        ),
        (
            "vision_encoder.adapter.layer_2.bias",
            &[8],
            &["model.vision_encoder.adapter.linear_2.bias"],
            Copy,
        ),
    ];
    assert_plan(&entries, &expected);
    let patch = entries.iter().find(|e| e.transform == Reshape).unwrap();
    assert_eq!(patch.hf_shapes, vec![vec![4, 3, 2, 2]]);
}

/// The sample configs of `format`, plus the small config above.
fn configs(format: &str) -> Vec<Value> {
    let mut configs = handler(format).converter().samples.clone();
    configs.push(match format {
        "apriel_hybrid_ssm" => hybrid_config(),
        "apriel2_text" => apriel2_text_config(),
        _ => apriel2_config(),
    });
    configs
}

#[rstest]
fn plans_are_the_fast_llm_layout(#[values("apriel_hybrid_ssm", "apriel2_text", "apriel2")] format: &str) {
    let handler = handler(format);
    for (i, config) in configs(format).iter().enumerate() {
        let typed = typed(handler, config);
        let planned: Vec<(String, Vec<usize>)> = plan(&handler.converter().base_model, &typed)
            .unwrap_or_else(|e| panic!("{format} config {i}: {e:?}"))
            .into_iter()
            .map(|e| (e.fast_llm, e.fast_llm_shape))
            .collect();
        let mut planned_sorted = planned.clone();
        planned_sorted.sort();
        let mut expected = layout::parameters(&load_base_model(handler.model, config).unwrap());
        expected.sort();
        assert_eq!(planned_sorted, expected, "{format} config {i}");
        assert_eq!(
            planned.len(),
            expected.len(),
            "{format} config {i}: a parameter planned twice"
        );
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("apriel-weights").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

#[rstest]
fn synthetic_checkpoints_round_trip(#[values("apriel_hybrid_ssm", "apriel2_text", "apriel2")] format: &str) {
    // Every sample config (and the small one): synthetic HF → Fast-LLM → HF is the identity.
    let handler = handler(format);
    for (i, sample) in configs(format).iter().enumerate() {
        let config = load_base_model(handler.model, sample).unwrap();
        let (input, middle, back) = (
            scratch(&format!("{format}-{i}-synthetic")),
            scratch(&format!("{format}-{i}-mid")),
            scratch(&format!("{format}-{i}-back")),
        );
        synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
        let options = Options {
            max_shard_bytes: 2_000,
            ..Options::default()
        };
        fast_llm_to_hf(handler, &middle, &back, &options).unwrap();
        assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&input).unwrap());
    }
}

#[test]
fn the_hybrid_table_llava_reuses_is_the_registered_one_weights_included() {
    // One table per format, config and weights: `llava_hybrid_ssm` mounts the very table
    // `apriel_hybrid_ssm` registers, so their weight plans agree on every sample.
    let handler = handler("apriel_hybrid_ssm");
    let shared = fastllm_apriel::hybrid::base_model();
    for sample in configs("apriel_hybrid_ssm") {
        let config = typed(handler, &sample);
        let planned = plan(&shared, &config).unwrap();
        assert!(!planned.is_empty());
        assert_eq!(planned, plan(&handler.converter().base_model, &config).unwrap());
    }
}

#[rstest]
#[case::key_value_bias(
    "apriel2_text",
    r#"{"type": "attention", "heads": 2, "head_groups": 1, "head_size": 4, "add_linear_biases": false,
        "key_layer": {"bias": {"enabled": true}}, "rotary": {"type": "default", "theta": 10000}}"#,
    "value_layer.bias.enabled"
)]
#[case::mamba_conv_bias(
    "apriel2_text",
    r#"{"type": "mamba", "state_size": 4, "d_inner": 16, "d_xb": 8, "dt_rank": 2, "add_linear_biases": true,
        "dt_layer": {"bias": {"enabled": false}}}"#,
    "convolution_layer.bias.enabled"
)]
fn export_rejects_biases_the_hf_model_cannot_hold(#[case] format: &str, #[case] mixer: &str, #[case] path: &str) {
    let config = json(&format!(
        r#"{{"hidden_size": 8, "embeddings": {{"vocab_size": 16}},
            "head": {{"normalization": {NORM}}},
            "decoder": {{"type": "fixed", "num_blocks": 1, "block": {{"mixer": {mixer},
                "mlp": {{"intermediate_size": 12, "gated": true, "add_linear_biases": false}},
                "normalization": {NORM}}}}}}}"#
    ));
    let config = load_base_model(ModelKind::Gpt, &config).unwrap();
    let error = handler(format)
        .export(&config, fastllm_core::HfLayout::V4)
        .unwrap_err()
        .to_string();
    assert!(error.contains(path), "{error}");
}
