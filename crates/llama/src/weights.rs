//! The Llama family's weight declarations, added to its config tables by the formats that
//! convert weights (formats reusing these tables for config only get none, so their plans fail
//! loudly instead of emitting Llama tensor names).

use std::sync::Arc;

use fastllm_core::config::Value;
use fastllm_core::weights::{Transform, WeightContext, WeightDecl};
use fastllm_core::{Section, fl_value};

/// A dimension of the model, read from the config (the text or the vision hidden size).
pub type Dim = fn(&WeightContext) -> usize;

/// The text model's hidden size.
pub fn text_hidden(c: &WeightContext) -> usize {
    c.root_int("hidden_size")
}

fn hidden(c: &WeightContext) -> usize {
    text_hidden(c)
}

/// The effective bias of `layer`: its `bias.enabled` when set, else `default` — exactly when
/// Fast-LLM's layer creates the bias (`fastllm_core::layout` derives it the same way).
pub fn effective_bias(c: &WeightContext, layer: &str, default: bool) -> bool {
    match fl_value(c.section, &format!("{layer}.bias.enabled")) {
        Value::Bool(enabled) => *enabled,
        _ => default,
    }
}

/// The effective bias of `layer`, defaulting to the section's `add_linear_biases`.
pub fn linear_bias(layer: &'static str) -> impl Fn(&WeightContext) -> bool + Send + Sync + 'static {
    move |c| effective_bias(c, layer, c.flag("add_linear_biases"))
}

/// A norm's weight (`[hidden_size]`).
pub fn norm(section: Section) -> Section {
    norm_over(section, text_hidden)
}

/// A norm's weight over `dim`.
pub fn norm_over(section: Section, dim: Dim) -> Section {
    section.weight(
        "weight",
        WeightDecl::param("weight", &["weight"], Transform::Copy, move |c| vec![dim(c)]),
    )
}

/// Attention over the text hidden size.
pub fn attention(section: Section) -> Section {
    attention_over(section, text_hidden)
}

/// Attention: `query` ↔ `q_proj`, fused `key_value` ↔ `k_proj` + `v_proj`, `dense` ↔ `o_proj`,
/// each bias its layer's effective bias (the K/V bias is the key layer's). This covers Qwen2 too
/// (Q/K/V biases on, dense off are per-layer flags).
pub fn attention_over(section: Section, hidden: Dim) -> Section {
    let q_size = |c: &WeightContext| c.int("heads").saturating_mul(c.int("head_size"));
    let kv_size = |c: &WeightContext| {
        c.int("head_groups")
            .saturating_mul(c.int("head_size"))
            .saturating_mul(2)
    };
    section
        .weight(
            "query",
            WeightDecl::param("query.weight", &["q_proj.weight"], Transform::Copy, move |c| {
                vec![q_size(c), hidden(c)]
            }),
        )
        .weight(
            "key_value",
            WeightDecl::param(
                "key_value.weight",
                &["k_proj.weight", "v_proj.weight"],
                Transform::Concat,
                move |c| vec![kv_size(c), hidden(c)],
            ),
        )
        .weight(
            "dense",
            WeightDecl::param("dense.weight", &["o_proj.weight"], Transform::Copy, move |c| {
                vec![hidden(c), q_size(c)]
            }),
        )
        .weight(
            "query_bias",
            WeightDecl::param("query.bias", &["q_proj.bias"], Transform::Copy, move |c| {
                vec![q_size(c)]
            })
            .when(linear_bias("query_layer")),
        )
        .weight(
            "key_value_bias",
            WeightDecl::param(
                "key_value.bias",
                &["k_proj.bias", "v_proj.bias"],
                Transform::Concat,
                move |c| vec![kv_size(c)],
            )
            .when(linear_bias("key_layer")),
        )
        .weight(
            "dense_bias",
            WeightDecl::param("dense.bias", &["o_proj.bias"], Transform::Copy, move |c| {
                vec![hidden(c)]
            })
            .when(linear_bias("dense_layer")),
        )
}

/// The MLP over the text hidden size.
pub fn mlp(section: Section) -> Section {
    mlp_over(section, text_hidden)
}

/// An MLP: `layer_1` ↔ [`gate_proj`; `up_proj`] when gated, else `up_proj`; `layer_2` ↔
/// `down_proj`ᵀ (Fast-LLM stores it transposed); effective per-layer biases.
pub fn mlp_over(section: Section, hidden: Dim) -> Section {
    let size = |c: &WeightContext| c.int("intermediate_size");
    let gated = |c: &WeightContext| c.flag("gated");
    let (bias_gated, bias_plain) = (linear_bias("layer_1"), linear_bias("layer_1"));
    section
        .weight(
            "layer_1_gated",
            WeightDecl::param(
                "layer_1.weight",
                &["gate_proj.weight", "up_proj.weight"],
                Transform::Concat,
                move |c| vec![size(c).saturating_mul(2), hidden(c)],
            )
            .when(gated),
        )
        .weight(
            "layer_1",
            WeightDecl::param("layer_1.weight", &["up_proj.weight"], Transform::Copy, move |c| {
                vec![size(c), hidden(c)]
            })
            .when(move |c| !gated(c)),
        )
        .weight(
            "layer_2",
            WeightDecl::param(
                "layer_2.weight",
                &["down_proj.weight"],
                Transform::Transpose,
                move |c| vec![size(c), hidden(c)],
            ),
        )
        .weight(
            "layer_1_bias_gated",
            WeightDecl::param(
                "layer_1.bias",
                &["gate_proj.bias", "up_proj.bias"],
                Transform::Concat,
                move |c| vec![size(c).saturating_mul(2)],
            )
            .when(move |c| gated(c) && bias_gated(c)),
        )
        .weight(
            "layer_1_bias",
            WeightDecl::param("layer_1.bias", &["up_proj.bias"], Transform::Copy, move |c| {
                vec![size(c)]
            })
            .when(move |c| !gated(c) && bias_plain(c)),
        )
        .weight(
            "layer_2_bias",
            WeightDecl::param("layer_2.bias", &["down_proj.bias"], Transform::Copy, move |c| {
                vec![hidden(c)]
            })
            .when(linear_bias("layer_2")),
        )
}

/// Mixtral's experts: the router, `layer_1` = [w1₀; w3₀; w1₁; w3₁; …], `layer_2` = [w2₀ᵀ; w2₁ᵀ; …].
pub fn moe(section: Section) -> Section {
    section
        .weight(
            "router",
            WeightDecl::param("router.weight", &["gate.weight"], Transform::Copy, |c| {
                vec![c.count("experts"), hidden(c)]
            }),
        )
        .weight(
            "layer_1",
            WeightDecl::param_named(
                "layer_1.weight",
                |c| {
                    (0..c.count("experts"))
                        .flat_map(|e| [format!("experts.{e}.w1.weight"), format!("experts.{e}.w3.weight")])
                        .collect()
                },
                Transform::Concat,
                |c| {
                    let experts = c.count("experts");
                    vec![
                        experts.saturating_mul(2).saturating_mul(c.int("intermediate_size")),
                        hidden(c),
                    ]
                },
            ),
        )
        .weight(
            "layer_2",
            WeightDecl::param_named(
                "layer_2.weight",
                |c| {
                    (0..c.count("experts"))
                        .map(|e| format!("experts.{e}.w2.weight"))
                        .collect()
                },
                Transform::TransposeConcat,
                |c| vec![c.count("experts").saturating_mul(c.int("intermediate_size")), hidden(c)],
            ),
        )
}

/// A decoder block: the mixer under `self_attn`, the MLP under `mlp_hf`, and its two norms.
pub fn block(
    section: Section,
    mixer: &Arc<Section>,
    mlp: &Arc<Section>,
    norm: &Arc<Section>,
    mlp_hf: &'static str,
) -> Section {
    section
        .weight(
            "mixer",
            WeightDecl::Nested {
                config: "mixer",
                fast_llm: "mixer",
                hf: "self_attn",
                section: mixer.clone(),
            },
        )
        .weight(
            "mlp",
            WeightDecl::Nested {
                config: "mlp",
                fast_llm: "mlp",
                hf: mlp_hf,
                section: mlp.clone(),
            },
        )
        .weight(
            "norm_1",
            WeightDecl::Nested {
                config: "normalization",
                fast_llm: "norm_1",
                hf: "input_layernorm",
                section: norm.clone(),
            },
        )
        .weight(
            "norm_2",
            WeightDecl::Nested {
                config: "normalization",
                fast_llm: "norm_2",
                hf: "post_attention_layernorm",
                section: norm.clone(),
            },
        )
}

/// The root: embeddings, blocks under `model.layers`, the final norm and the output projection
/// (absent when tied to the embeddings).
pub fn base_model(section: Section, block: &Arc<Section>, norm: &Arc<Section>) -> Section {
    let vocab = |c: &WeightContext| vec![c.root_int("embeddings.vocab_size"), c.root_int("hidden_size")];
    section
        .weight(
            "embeddings",
            WeightDecl::param(
                "embeddings.word_embeddings_weight",
                &["model.embed_tokens.weight"],
                Transform::Copy,
                vocab,
            ),
        )
        .weight(
            "decoder",
            WeightDecl::Blocks {
                config: "decoder",
                fast_llm: "decoder",
                hf: "model.layers",
                block: block.clone(),
            },
        )
        .weight(
            "final_norm",
            WeightDecl::Nested {
                config: "head.normalization",
                fast_llm: "head.final_norm",
                hf: "model.norm",
                section: norm.clone(),
            },
        )
        .weight(
            "output",
            WeightDecl::param("head.output_weights", &["lm_head.weight"], Transform::Copy, vocab)
                .when(|c| !c.flag("tied_embedding_weight")),
        )
}

/// The number of extra prediction heads (`head.prediction_heads - 1`), from the root.
fn extra_prediction_heads(c: &WeightContext) -> usize {
    c.count("head.prediction_heads").saturating_sub(1)
}

/// MTP-Llama's root: Llama's, with the main head's final norm under `model.mtp_norms.0`, and per
/// extra prediction head `k` (`0..prediction_heads - 1`) a copy of the decoder's last block
/// (`multi_token_prediction.blocks.{k}` ↔ `model.mtp_heads.{k}`, Llama block names) and a final
/// norm (`multi_token_prediction.heads.{k}.final_norm` ↔ `model.mtp_norms.{k+1}`). The extra
/// heads' output weights are tied duplicates of the main head's, never stored.
///
/// The MTP blocks copy the decoder's last block, fixed or pattern (Fast-LLM's
/// `last_block_config`).
pub fn mtp_base_model(section: Section, block: &Arc<Section>, norm: &Arc<Section>) -> Section {
    let mut section = base_model(section, block, norm).replace_weight(
        "final_norm",
        WeightDecl::Nested {
            config: "head.normalization",
            fast_llm: "head.final_norm",
            hf: "model.mtp_norms.0",
            section: norm.clone(),
        },
    );
    // Fast-LLM's order: embeddings, decoder, MTP blocks, MTP norms, then the head.
    let head = section
        .weights
        .iter()
        .position(|(name, _)| *name == "final_norm")
        .expect("Llama's root declares the final norm");
    section.weights.splice(
        head..head,
        [
            (
                "multi_token_prediction_blocks",
                WeightDecl::RepeatLastBlock {
                    config: "decoder",
                    count: Arc::new(extra_prediction_heads),
                    fast_llm: Arc::new(|k| format!("multi_token_prediction.blocks.{k}")),
                    hf: Arc::new(|k| format!("model.mtp_heads.{k}")),
                    block: block.clone(),
                },
            ),
            (
                "multi_token_prediction_norms",
                WeightDecl::Repeat {
                    config: "head.normalization",
                    count: Arc::new(extra_prediction_heads),
                    fast_llm: Arc::new(|k| format!("multi_token_prediction.heads.{k}.final_norm")),
                    hf: Arc::new(|k| format!("model.mtp_norms.{}", k + 1)),
                    section: norm.clone(),
                },
            ),
        ],
    );
    section
}
