//! The Llama family's weight declarations, added to its config tables by the formats that
//! convert weights (formats reusing these tables for config only get none, so their plans fail
//! loudly instead of emitting Llama tensor names).

use std::sync::Arc;

use fastllm_core::Section;
use fastllm_core::config::FixedBlockSequenceConfig;
use fastllm_core::weights::{Transform, WeightContext, WeightDecl};

fn hidden(c: &WeightContext) -> usize {
    c.root_int("hidden_size")
}

fn q_size(c: &WeightContext) -> usize {
    c.int("heads") * c.int("head_size")
}

fn kv_size(c: &WeightContext) -> usize {
    2 * c.int("head_groups") * c.int("head_size")
}

fn linear_biases(c: &WeightContext) -> bool {
    c.flag("add_linear_biases")
}

/// A norm's weight (`[hidden_size]`).
pub fn norm(section: Section) -> Section {
    section.weight(
        "weight",
        WeightDecl::param("weight", &["weight"], Transform::Copy, |c| vec![hidden(c)]),
    )
}

/// Attention: `query`, fused `key_value` (K and V concatenated), `dense`; biases with
/// `add_linear_biases`.
pub fn attention(section: Section) -> Section {
    section
        .weight(
            "query",
            WeightDecl::param("query.weight", &["q_proj.weight"], Transform::Copy, |c| {
                vec![q_size(c), hidden(c)]
            }),
        )
        .weight(
            "key_value",
            WeightDecl::param(
                "key_value.weight",
                &["k_proj.weight", "v_proj.weight"],
                Transform::Concat,
                |c| vec![kv_size(c), hidden(c)],
            ),
        )
        .weight(
            "dense",
            WeightDecl::param("dense.weight", &["o_proj.weight"], Transform::Copy, |c| {
                vec![hidden(c), q_size(c)]
            }),
        )
        .weight(
            "query_bias",
            WeightDecl::param("query.bias", &["q_proj.bias"], Transform::Copy, |c| vec![q_size(c)]).when(linear_biases),
        )
        .weight(
            "key_value_bias",
            WeightDecl::param(
                "key_value.bias",
                &["k_proj.bias", "v_proj.bias"],
                Transform::Concat,
                |c| vec![kv_size(c)],
            )
            .when(linear_biases),
        )
        .weight(
            "dense_bias",
            WeightDecl::param("dense.bias", &["o_proj.bias"], Transform::Copy, |c| vec![hidden(c)]).when(linear_biases),
        )
}

/// Qwen2's attention weights: Q/K/V biases always, no dense bias.
pub fn qwen2_attention(section: Section) -> Section {
    attention(section)
        .replace_weight(
            "query_bias",
            WeightDecl::param("query.bias", &["q_proj.bias"], Transform::Copy, |c| vec![q_size(c)]),
        )
        .replace_weight(
            "key_value_bias",
            WeightDecl::param(
                "key_value.bias",
                &["k_proj.bias", "v_proj.bias"],
                Transform::Concat,
                |c| vec![kv_size(c)],
            ),
        )
        .replace_weight(
            "dense_bias",
            WeightDecl::param("dense.bias", &["o_proj.bias"], Transform::Copy, |c| vec![hidden(c)]).when(|_| false),
        )
}

/// The gated MLP: `layer_1` = [gate; up], `layer_2` = downᵀ (Fast-LLM stores it transposed).
pub fn mlp(section: Section) -> Section {
    section
        .weight(
            "layer_1",
            WeightDecl::param(
                "layer_1.weight",
                &["gate_proj.weight", "up_proj.weight"],
                Transform::Concat,
                |c| vec![2 * c.int("intermediate_size"), hidden(c)],
            ),
        )
        .weight(
            "layer_2",
            WeightDecl::param("layer_2.weight", &["down_proj.weight"], Transform::Transpose, |c| {
                vec![c.int("intermediate_size"), hidden(c)]
            }),
        )
        .weight(
            "layer_1_bias",
            WeightDecl::param(
                "layer_1.bias",
                &["gate_proj.bias", "up_proj.bias"],
                Transform::Concat,
                |c| vec![2 * c.int("intermediate_size")],
            )
            .when(linear_biases),
        )
        .weight(
            "layer_2_bias",
            WeightDecl::param("layer_2.bias", &["down_proj.bias"], Transform::Copy, |c| {
                vec![hidden(c)]
            })
            .when(linear_biases),
        )
}

/// Mixtral's experts: the router, `layer_1` = [w1₀; w3₀; w1₁; w3₁; …], `layer_2` = [w2₀ᵀ; w2₁ᵀ; …].
pub fn moe(section: Section) -> Section {
    section
        .weight(
            "router",
            WeightDecl::param("router.weight", &["gate.weight"], Transform::Copy, |c| {
                vec![c.int("experts"), hidden(c)]
            }),
        )
        .weight(
            "layer_1",
            WeightDecl::param_named(
                "layer_1.weight",
                |c| {
                    (0..c.int("experts"))
                        .flat_map(|e| [format!("experts.{e}.w1.weight"), format!("experts.{e}.w3.weight")])
                        .collect()
                },
                Transform::Concat,
                |c| vec![c.int("experts") * 2 * c.int("intermediate_size"), hidden(c)],
            ),
        )
        .weight(
            "layer_2",
            WeightDecl::param_named(
                "layer_2.weight",
                |c| {
                    (0..c.int("experts"))
                        .map(|e| format!("experts.{e}.w2.weight"))
                        .collect()
                },
                Transform::TransposeConcat,
                |c| vec![c.int("experts") * c.int("intermediate_size"), hidden(c)],
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
    c.int("head.prediction_heads").saturating_sub(1)
}

/// MTP-Llama's root: Llama's, with the main head's final norm under `model.mtp_norms.0`, and per
/// extra prediction head `k` (`0..prediction_heads - 1`) a copy of the decoder's last block
/// (`multi_token_prediction.blocks.{k}` ↔ `model.mtp_heads.{k}`, Llama block names) and a final
/// norm (`multi_token_prediction.heads.{k}.final_norm` ↔ `model.mtp_norms.{k+1}`). The extra
/// heads' output weights are tied duplicates of the main head's, never stored.
///
/// The MTP blocks are declared on a fixed decoder's `block` (its last block). A pattern decoder's
/// last block has no fixed config path, so its plan fails naming `decoder.type` (MTP-Llama's
/// import always yields a fixed decoder).
pub fn mtp_base_model(section: Section, block: &Arc<Section>, norm: &Arc<Section>) -> Section {
    let last_block = Section::of::<FixedBlockSequenceConfig>("mtp_llama.last_block")
        .weight(
            "block",
            WeightDecl::Nested {
                config: "block",
                fast_llm: "",
                hf: "",
                section: block.clone(),
            },
        )
        .build();
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
                WeightDecl::Repeat {
                    config: "decoder",
                    count: Arc::new(extra_prediction_heads),
                    fast_llm: Arc::new(|k| format!("multi_token_prediction.blocks.{k}")),
                    hf: Arc::new(|k| format!("model.mtp_heads.{k}")),
                    section: last_block,
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
