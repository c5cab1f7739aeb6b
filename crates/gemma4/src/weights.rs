//! Gemma 4's weight declarations (formats.md §11.3, fast-llm-state-dict.md §2–§3).
//!
//! The config side picks one of four block tables per layer type and MoE-ness (a Custom), but a
//! block's tensors depend only on its config's values (`head_size`, `shared_key_value`, the MLP
//! `type`), so one weight-only block section serves every position, and the sub-sections are
//! weight-only sections of the same config classes. Only the root is a copy of the config table.
//!
//! HF names (`Gemma4ForCausalLM`; `Gemma4ForConditionalGeneration` has the text model under
//! `model.language_model` instead of `model`), block `i` under `model.layers.{i}`:
//!
//! * attention under `self_attn`: `q_proj`, `o_proj`, `q_norm`, `k_norm` (over `head_size`), and
//!   `k_proj` + `v_proj` fused into `key_value` — with shared K/V (`attention_k_eq_v`) `key_value`
//!   is `k_proj` alone. The value norm is a weightless `fixed_rms_norm`; there are no biases (the
//!   config rejects them).
//! * block norms: `norm_1` ↔ `input_layernorm`, `post_mixer_norm` ↔ `post_attention_layernorm`,
//!   `post_mlp_norm` ↔ `post_feedforward_layernorm`, and in dense blocks `norm_2` ↔
//!   `pre_feedforward_layernorm` (MoE blocks have a `none` pre-MLP norm); `output_scale` `[1]` ↔
//!   the `layer_scalar` buffer.
//! * dense MLP under `mlp`: `layer_1` ↔ [`gate_proj`; `up_proj`], `layer_2` ↔ `down_proj`ᵀ.
//! * hybrid MoE, at the block root: the dense branch under `mlp` (as above) with its norms
//!   `pre_feedforward_layernorm` / `post_feedforward_layernorm_1`; the routed branch with
//!   `router.proj`, `router.scale` `[H]`, `router.per_expert_scale` `[E]`, `experts.gate_up_proj`
//!   `[E, 2I, H]` (reshaped to `[E·2I, H]`), `experts.down_proj` `[E, H, I]` (each expert
//!   transposed into `[E·I, H]`) and its norms `pre_feedforward_layernorm_2` /
//!   `post_feedforward_layernorm_2`. The router norm is a weightless `fixed_rms_norm`.
//!
//! Plus `model.embed_tokens`, `model.norm` and `lm_head` (absent when tied).

use std::sync::Arc;

use fastllm_core::config::{
    AttentionConfig, DecoderBlockConfig, GptBaseModelConfig, HybridMoeMlpConfig, Map, MlpConfig, MoeMlpConfig,
    RmsNormalizationConfig, Value,
};
use fastllm_core::weights::norm as norm_weight;
use fastllm_core::weights::{Transform, WeightContext, WeightDecl, blocks, linear, nested, vector};
use fastllm_core::{Section, fl_value};

use crate::sections;

/// The text hidden size.
fn hidden(c: &WeightContext) -> usize {
    c.root_int("hidden_size")
}

/// An RMS norm over the hidden size: `weight`.
fn norm() -> Section {
    Section::of::<RmsNormalizationConfig>("gemma4.rms_norm_weights").weight("weight", norm_weight(hidden))
}

/// The attention (under `self_attn`).
fn attention() -> Section {
    let q_size = |c: &WeightContext| c.int("heads").saturating_mul(c.int("head_size"));
    let k_size = |c: &WeightContext| c.int("head_groups").saturating_mul(c.int("head_size"));
    let shared = |c: &WeightContext| c.flag("shared_key_value");
    let head_size = |c: &WeightContext| c.int("head_size");
    Section::of::<AttentionConfig>("gemma4.attention_weights")
        .weight(
            "layers",
            WeightDecl::linears([
                linear("query", &["q_proj"], hidden, q_size),
                linear("key_value", &["k_proj", "v_proj"], hidden, k_size).when(move |c| !shared(c)),
                // Shared K/V: Fast-LLM stores only K (reused as V), as HF's `k_proj` (no `v_proj`).
                linear("key_value", &["k_proj"], hidden, k_size).when(shared),
                linear("dense", &["o_proj"], q_size, hidden),
            ]),
        )
        // The config requires both as RMS norms (over the head size, which the norm's own config
        // lacks, hence declared here).
        .weight("query_norm", vector("query_norm.weight", "q_norm.weight", head_size))
        .weight("key_norm", vector("key_norm.weight", "k_norm.weight", head_size))
}

/// A dense gated MLP (under `mlp`), without norms.
fn dense_mlp() -> Section {
    let size = |c: &WeightContext| c.int("intermediate_size");
    Section::of::<MlpConfig>("gemma4.mlp_weights").weight(
        "layers",
        WeightDecl::linears([
            linear("layer_1", &["gate_proj", "up_proj"], hidden, size),
            linear("layer_2", &["down_proj"], size, hidden).transposed(),
        ]),
    )
}

/// The routed experts (at the block's HF root), without norms.
fn routed_mlp() -> Section {
    let experts = |c: &WeightContext| c.int("experts");
    let size = |c: &WeightContext| c.int("intermediate_size");
    Section::of::<MoeMlpConfig>("gemma4.routed_weights")
        .weight("router", linear("router", &["router.proj"], hidden, experts))
        .weight("router_scale", vector("router_scale", "router.scale", hidden))
        .weight(
            "router_per_expert_scale",
            vector("router_per_expert_scale", "router.per_expert_scale", experts),
        )
        .weight(
            "layer_1",
            WeightDecl::reshaped(
                "layer_1.weight",
                "experts.gate_up_proj",
                move |c| vec![experts(c).saturating_mul(2).saturating_mul(size(c)), hidden(c)],
                move |c| vec![experts(c), size(c).saturating_mul(2), hidden(c)],
            ),
        )
        .weight(
            "layer_2",
            WeightDecl::experts_transposed(
                "layer_2.weight",
                "experts.down_proj",
                move |c| vec![experts(c).saturating_mul(size(c)), hidden(c)],
                move |c| vec![experts(c), hidden(c), size(c)],
            ),
        )
}

/// The hybrid MoE (at the block's HF root): the dense branch under `mlp`, the routed branch at
/// the root, and the branches' norms under block-level HF names.
fn hybrid_mlp(norm: &Arc<Section>) -> Section {
    Section::of::<HybridMoeMlpConfig>("gemma4.hybrid_mlp_weights")
        .weight("dense", nested("dense", "dense", "mlp", &dense_mlp().build()))
        .weight(
            "dense_pre_norm",
            nested("dense.pre_norm", "dense.pre_norm", "pre_feedforward_layernorm", norm),
        )
        .weight(
            "dense_post_norm",
            nested(
                "dense.post_norm",
                "dense.post_norm",
                "post_feedforward_layernorm_1",
                norm,
            ),
        )
        .weight("routed", nested("routed", "routed", "", &routed_mlp().build()))
        .weight(
            "routed_pre_norm",
            nested(
                "routed.pre_norm",
                "routed.pre_norm",
                "pre_feedforward_layernorm_2",
                norm,
            ),
        )
        .weight(
            "routed_post_norm",
            nested(
                "routed.post_norm",
                "routed.post_norm",
                "post_feedforward_layernorm_2",
                norm,
            ),
        )
}

/// The block's effective pre-MLP norm (`pre_mlp_normalization`, else `normalization`) is not a
/// `none` norm: Fast-LLM then builds `norm_2`. The config accepts only an RMS norm equal to
/// `normalization` (dense blocks) or `none` (MoE blocks).
fn has_pre_mlp_norm(c: &WeightContext) -> bool {
    let norm: &Map = match fl_value(c.section, "pre_mlp_normalization") {
        Value::Map(norm) => norm,
        _ => match fl_value(c.section, "normalization") {
            Value::Map(norm) => norm,
            _ => return false,
        },
    };
    fl_value(norm, "type") != &Value::Str("none".into())
}

/// A decoder block (under `model.layers.{i}`), sliding or full, dense or MoE.
fn block() -> Section {
    let norm = norm().build();
    Section::of::<DecoderBlockConfig>("gemma4.block_weights")
        .weight("norm_1", nested("normalization", "norm_1", "input_layernorm", &norm))
        .weight("mixer", nested("mixer", "mixer", "self_attn", &attention().build()))
        .weight(
            "norm_2",
            vector("norm_2.weight", "pre_feedforward_layernorm.weight", hidden).when(has_pre_mlp_norm),
        )
        .weight(
            "post_mixer_norm",
            nested(
                "post_mixer_normalization",
                "post_mixer_norm",
                "post_attention_layernorm",
                &norm,
            ),
        )
        .weight(
            "mlp",
            WeightDecl::Dispatch {
                config: "mlp",
                fast_llm: "mlp",
                sections: vec![("mlp", dense_mlp().build()), ("", hybrid_mlp(&norm).build())],
            },
        )
        .weight(
            "post_mlp_norm",
            nested(
                "post_mlp_normalization",
                "post_mlp_norm",
                "post_feedforward_layernorm",
                &norm,
            ),
        )
        // HF's frozen `layer_scalar` buffer; the config requires `output_scale.enabled`.
        .weight(
            "output_scale",
            WeightDecl::param("output_scale", &["layer_scalar"], Transform::Copy, |_| vec![1]),
        )
}

/// The text model's weights (`Gemma4TextModel`, mounted under `model` or
/// `model.language_model`): embeddings, blocks, final norm.
pub fn text_model() -> Section {
    let vocab = |c: &WeightContext| vec![c.root_int("embeddings.vocab_size"), hidden(c)];
    Section::of::<GptBaseModelConfig>("gemma4.text_model_weights")
        .weight(
            "embeddings",
            WeightDecl::param(
                "embeddings.word_embeddings_weight",
                &["embed_tokens.weight"],
                Transform::Copy,
                vocab,
            ),
        )
        .weight("decoder", blocks("decoder", "decoder", "layers", &block().build()))
        .weight(
            "final_norm",
            nested("head.normalization", "head.final_norm", "norm", &norm().build()),
        )
}

/// `section` with the text model's weights under `prefix`, then the untied output weights
/// (`lm_head`, at the HF root in both layouts).
pub fn with_text_model(section: Section, prefix: &'static str) -> Section {
    let vocab = |c: &WeightContext| vec![c.root_int("embeddings.vocab_size"), hidden(c)];
    section
        .weight("text_model", nested("", "", prefix, &text_model().build()))
        .weight(
            "output",
            WeightDecl::param("head.output_weights", &["lm_head.weight"], Transform::Copy, vocab)
                .when(|c| !c.flag("tied_embedding_weight")),
        )
}

/// The root config table with its weights (`Gemma4ForCausalLM`: the text model under `model`).
pub fn base_model() -> Section {
    with_text_model(sections::base_model(), "model")
}
