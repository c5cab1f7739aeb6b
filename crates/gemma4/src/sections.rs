//! Gemma 4's section tables.
//!
//! The HF config is flat, but Fast-LLM holds a two-block pattern (`sliding_attention`,
//! `full_attention`); each block is declared as an ordinary section over the flat HF dict, and
//! the two blocks' writes meet in the safe set, so every key they share (`num_attention_heads`,
//! `rms_norm_eps`, `intermediate_size`, ...) must agree. Rules spanning sections (`hidden_size **
//! ±0.5` scales) are root validators.

use std::sync::Arc;

use fastllm_core::activation::activation;
use fastllm_core::blocks::block_path;
use fastllm_core::config::{
    AttentionConfig, BlockConfig, DecoderBlockConfig, DefaultRotaryConfig, FixedRmsNormConfig, GptBaseModelConfig,
    HybridMoeMlpConfig, LanguageModelHeadConfig, Map, MlpBaseConfig, MlpConfig, MoeMlpConfig, NoNormalizationConfig,
    NormalizationConfig, ProportionalRotaryConfig, Reflect, RmsNormalizationConfig, Value,
};
use fastllm_core::dict::show;
use fastllm_core::rules;
use fastllm_core::values::{boolean, float, int, text};
use fastllm_core::weights::{
    Transform, WeightContext, WeightDecl, blocks, key_value_size, linear, nested, nested_as, norm, query_size, size_of,
    text_hidden as hidden, vector, vocabulary,
};
use fastllm_core::{Checked, Claims, Covers, Decl, Fl, ImportContext, Problem, Section, Writes, checked, field};

use crate::classes::{FULL, SLIDING};
use crate::{decoder, per_layer};

/// Which attention a block section converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    Sliding,
    Full,
}

/// Which MLP a block section converts (`enable_moe_block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    Dense,
    Moe,
}

impl LayerType {
    /// The `layer_types` entry (and Fast-LLM block name).
    pub fn name(self) -> &'static str {
        match self {
            LayerType::Sliding => SLIDING,
            LayerType::Full => FULL,
        }
    }
}

/// `hidden_size ** power`, as Python computes it (C `pow`), from an HF dict.
pub fn hidden_size_power(map: &Map, power: f64) -> Option<f64> {
    match map.get("hidden_size") {
        Some(Value::Int(h)) => Some((*h as f64).powf(power)),
        _ => None,
    }
}

/// `hidden_size ** power` of a typed config, as [`hidden_size_power`] computes it.
fn hidden_power(hidden_size: i64, power: f64) -> f64 {
    (hidden_size as f64).powf(power)
}

/// `<layer>.bias.enabled` must not be true: Gemma 4 has no linear biases.
fn no_biases(layers: &'static [&'static str]) -> impl Fn(Fl) -> Checked + Send + Sync {
    fastllm_core::rules::no_biases(layers, "Gemma 4 has no linear biases")
}

/// The block's norm `field` (read by `get`) must be unset or equal to its `normalization`: Gemma 4
/// has one norm description per block.
fn same_as_normalization(
    field: &'static str,
    get: fn(&DecoderBlockConfig) -> &Option<NormalizationConfig>,
) -> impl Fn(Fl) -> Checked + Send + Sync {
    move |fl: Fl| {
        let block = fl.config::<DecoderBlockConfig>()?;
        match get(block) {
            Some(norm) if *norm != block.normalization => Err(vec![Problem::at_fast_llm(
                field,
                format!(
                    "{} differs from normalization {}; Gemma 4 derives it from rms_norm_eps",
                    show(&Value::Map(norm.full_form())),
                    show(&Value::Map(block.normalization.full_form()))
                ),
            )]),
            _ => Ok(()),
        }
    }
}

/// An RMS norm on `rms_norm_eps` (Gemma 4 uses one epsilon everywhere).
pub fn rms_norm() -> Section {
    Section::of::<RmsNormalizationConfig>("gemma4.rms_norm")
        .rename("epsilon", "rms_norm_eps")
        .ignore(&["weight"])
        .constant("zero_centered", boolean(false))
}

/// An RMS norm over the hidden size (blocks, MLP branches, head): `weight`.
pub fn hidden_norm() -> Section {
    rms_norm().weight("weight", norm(hidden))
}

/// A weightless RMS norm on `rms_norm_eps` (value norm, router norm).
pub fn fixed_rms_norm() -> Section {
    Section::of::<FixedRmsNormConfig>("gemma4.fixed_rms_norm").rename("epsilon", "rms_norm_eps")
}

/// No norm (the pre-MLP norm of MoE blocks, whose branches carry their own).
pub fn no_norm() -> Section {
    Section::of::<NoNormalizationConfig>("gemma4.no_norm")
}

/// The attention's four linear layers.
const LINEAR_LAYERS: &[&str] = &["query_layer", "key_layer", "value_layer", "dense_layer"];

/// An ImportOnly writing `hidden_size ** power` (Gemma 4 hard-codes these scales).
fn hidden_size_scale(field: &'static [&'static str], power: f64) -> Decl {
    Decl::import_only(field, &[], Covers::Exact, move |_, context| {
        let value = hidden_size_power(context.root, power)
            .ok_or_else(|| vec![Problem::at_hf("hidden_size", "must be an int")])?;
        Ok(vec![(field[0].to_string(), float(value))])
    })
}

/// The full-attention KV heads: `num_global_key_value_heads` applies only with
/// `attention_k_eq_v` (transformers), else the layers use `num_key_value_heads`. A conditional
/// choice of key, hence a Custom.
fn full_head_groups() -> Decl {
    Decl::custom(
        Claims::exact(&["head_groups"], &["num_global_key_value_heads", "num_key_value_heads"]),
        |fl, _| {
            let attention = fl.config::<AttentionConfig>()?;
            let groups = int(attention.head_groups.into());
            Ok(if attention.shared_key_value {
                vec![("num_global_key_value_heads".to_string(), groups).into()]
            } else {
                // Without shared K/V, the full layers use the sliding layers' KV heads: the safe
                // set rejects a different `head_groups`, naming both blocks.
                vec![
                    ("num_key_value_heads".to_string(), groups).into(),
                    ("num_global_key_value_heads".to_string(), Value::Null).into(),
                ]
            })
        },
        |hf, context| {
            let sliding = hf.get("num_key_value_heads").cloned().unwrap_or(Value::Null);
            let global = hf.get("num_global_key_value_heads").cloned().unwrap_or(Value::Null);
            let shared = hf.get("attention_k_eq_v") == Some(&Value::Bool(true));
            // A malformed `per_layer_config` is reported by its own declaration.
            if let Ok(Some(overrides)) = per_layer::full_overrides(context.root) {
                return Ok(vec![(
                    "head_groups".into(),
                    overrides.num_key_value_heads.unwrap_or(sliding),
                )]);
            }
            match global {
                Value::Null => Ok(vec![("head_groups".into(), sliding)]),
                global if shared => Ok(vec![("head_groups".into(), global)]),
                global if global == sliding => Ok(vec![("head_groups".into(), sliding)]),
                global => Err(vec![Problem::at_hf(
                    "num_global_key_value_heads",
                    format!(
                        "{} differs from num_key_value_heads {} but has no effect without attention_k_eq_v",
                        show(&global),
                        show(&sliding)
                    ),
                )]),
            }
        },
    )
    .into()
}

/// The rotary of one layer type: a dispatch on `rope_parameters.<layer type>.rope_type`, the
/// same in both HF layouts.
fn rotary(layer: LayerType) -> Decl {
    let section = match layer {
        LayerType::Sliding => Section::of::<DefaultRotaryConfig>("gemma4.sliding_rotary")
            .hf_type("default")
            .add("theta", Decl::default("theta", "rope_theta", |_| Ok(float(10000.0)))),
        LayerType::Full => Section::of::<ProportionalRotaryConfig>("gemma4.full_rotary")
            .hf_type("proportional")
            .add("theta", Decl::default("theta", "rope_theta", |_| Ok(float(1000000.0))))
            .same("partial_rotary_factor"),
    };
    Decl::dispatch(
        "rotary",
        Some(match layer {
            LayerType::Sliding => "rope_parameters.sliding_attention",
            LayerType::Full => "rope_parameters.full_attention",
        }),
        "rope_type",
        vec![section.build()],
    )
}

/// The attention of one layer type.
pub fn attention(layer: LayerType) -> Section {
    let name = match layer {
        LayerType::Sliding => "gemma4.sliding_attention",
        LayerType::Full => "gemma4.full_attention",
    };
    let section = Section::of::<AttentionConfig>(name)
        .rename("heads", "num_attention_heads")
        .constant("add_linear_biases", boolean(false))
        .add("attention_bias", Decl::const_export("attention_bias", boolean(false)))
        .constant("causal", boolean(true))
        .rename("dropout", "attention_dropout")
        // Gemma 4 scales scores by 1 (its Q/K norms replace the 1/sqrt(head_size)).
        .constant("softmax_scale_power", float(0.0))
        .add("linear_layers", Decl::ignored(LINEAR_LAYERS))
        .add("query_norm", Decl::nested("query_norm", rms_norm().build()))
        .add("key_norm", Decl::nested("key_norm", rms_norm().build()))
        .add("value_norm", Decl::nested("value_norm", fixed_rms_norm().build()))
        .add("rotary", rotary(layer))
        .validate("linear_biases", no_biases(LINEAR_LAYERS));
    match layer {
        LayerType::Sliding => section
            .rename("head_groups", "num_key_value_heads")
            .rename("head_size", "head_dim")
            .rename("window_size", "sliding_window")
            .constant("shared_key_value", boolean(false)),
        LayerType::Full => section
            .add("head_groups", full_head_groups())
            .rename("head_size", "global_head_dim")
            // Not written on import: Fast-LLM's default is no window.
            .validate(
                "no_window",
                rules::no_window("Gemma 4's full-attention layers have no sliding window"),
            )
            .rename("shared_key_value", "attention_k_eq_v"),
    }
    .weight("layers", attention_weights())
    // The config requires both as RMS norms (over the head size, which the norm's own config
    // lacks, hence declared here).
    .weight("query_norm", vector("query_norm.weight", "q_norm.weight", head_size))
    .weight("key_norm", vector("key_norm.weight", "k_norm.weight", head_size))
}

fn head_size(c: &WeightContext) -> usize {
    c.size(field!(AttentionConfig.head_size))
}

/// `q_proj`, `o_proj`, and `k_proj` + `v_proj` fused into `key_value`; with shared K/V
/// (`attention_k_eq_v`) Fast-LLM stores only K (reused as V), as HF's `k_proj` (no `v_proj`).
/// No biases: the config rejects them.
fn attention_weights() -> WeightDecl {
    let shared = |c: &WeightContext| c.holds(field!(AttentionConfig.shared_key_value));
    WeightDecl::linears([
        linear("query", &["q_proj"], hidden, query_size),
        linear("key_value", &["k_proj", "v_proj"], hidden, key_value_size).when(move |c| !shared(c)),
        linear("key_value", &["k_proj"], hidden, key_value_size).when(shared),
        linear("dense", &["o_proj"], query_size, hidden),
    ])
}

/// A dense gated MLP's weights: `layer_1` ↔ [`gate_proj`; `up_proj`], `layer_2` ↔ `down_proj`ᵀ.
fn dense_weights() -> WeightDecl {
    let size = size_of(field!(MlpConfig.intermediate_size));
    WeightDecl::linears([
        linear("layer_1", &["gate_proj", "up_proj"], hidden, size),
        linear("layer_2", &["down_proj"], size, hidden).transposed(),
    ])
}

/// The declarations of a gated, bias-free MLP on `intermediate_key`.
fn gated_mlp(section: Section, intermediate_key: &'static str) -> Section {
    section
        .rename("intermediate_size", intermediate_key)
        .constant("add_linear_biases", boolean(false))
        .constant("gated", boolean(true))
        .add("activation", activation(&["hidden_activation"]))
        .add("layers", Decl::ignored(&["layer_1", "layer_2"]))
        .validate("linear_biases", no_biases(&["layer_1", "layer_2"]))
}

/// The dense MLP of a dense block (no own norms: the block's pre/post-MLP norms apply).
pub fn dense_mlp() -> Section {
    gated_mlp(Section::of::<MlpConfig>("gemma4.mlp"), "intermediate_size")
        .constant("pre_norm", Value::Null)
        .constant("post_norm", Value::Null)
        .weight("layers", dense_weights())
}

/// The MoE block's MLP: a dense branch and a routed branch, each with its own pre/post norms.
/// Weights at the block's HF root: the dense branch under `mlp`, the routed one at the root
/// (`router.proj`, `router.scale` `[H]`, `router.per_expert_scale` `[E]`, `experts.gate_up_proj`
/// `[E, 2I, H]` reshaped to `[E·2I, H]`, `experts.down_proj` `[E, H, I]` each expert transposed
/// into `[E·I, H]`), and the branches' norms under block-level names. The router norm is a
/// weightless `fixed_rms_norm`.
pub fn hybrid_mlp() -> Section {
    let norm = hidden_norm().build();
    let dense = gated_mlp(Section::of::<MlpConfig>("gemma4.hybrid.dense"), "intermediate_size")
        .add("pre_norm", Decl::nested("pre_norm", norm.clone()))
        .add("post_norm", Decl::nested("post_norm", norm.clone()))
        .weight("layers", dense_weights())
        .build();
    let experts = size_of(field!(MoeMlpConfig.experts));
    let size = size_of(field!(MoeMlpConfig.intermediate_size));
    let routed = gated_mlp(
        Section::of::<MoeMlpConfig>("gemma4.hybrid.routed"),
        "moe_intermediate_size",
    )
    .add("pre_norm", Decl::nested("pre_norm", norm.clone()))
    .add("post_norm", Decl::nested("post_norm", norm.clone()))
    .rename("experts", "num_experts")
    .rename("experts_per_token", "top_k_experts")
    .constant("shared_experts", int(0))
    .constant("routing", text("aux_loss"))
    .ignore(&["router"])
    .add(
        "router_normalization",
        Decl::nested("router_normalization", fixed_rms_norm().build()),
    )
    // Parameter settings only; whether the scales exist is pinned by the two ConstImports.
    .add(
        "router_scales",
        Decl::ignored(&["router_scale", "router_per_expert_scale"]),
    )
    .add(
        "router_scale",
        Decl::const_import("router_scale.enabled", boolean(true)),
    )
    // Exported only if it is exactly `hidden_size ** -0.5` (a root rule: it needs hidden_size).
    .add("router_input_scale", hidden_size_scale(&["router_input_scale"], -0.5))
    .add(
        "router_per_expert_scale",
        Decl::const_import("router_per_expert_scale.enabled", boolean(true)),
    )
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
    .build();
    Section::of::<HybridMoeMlpConfig>("gemma4.hybrid_mlp")
        .constant("pre_norm", Value::Null)
        .constant("post_norm", Value::Null)
        .add("dense", Decl::nested("dense", dense.clone()))
        .add("routed", Decl::nested("routed", routed.clone()))
        .weight("dense", nested(field!(HybridMoeMlpConfig.dense), "mlp", &dense))
        .weight(
            "dense_pre_norm",
            nested(
                field!(HybridMoeMlpConfig.dense.pre_norm),
                "pre_feedforward_layernorm",
                &norm,
            ),
        )
        .weight(
            "dense_post_norm",
            nested(
                field!(HybridMoeMlpConfig.dense.post_norm),
                "post_feedforward_layernorm_1",
                &norm,
            ),
        )
        .weight("routed", nested(field!(HybridMoeMlpConfig.routed), "", &routed))
        .weight(
            "routed_pre_norm",
            nested(
                field!(HybridMoeMlpConfig.routed.pre_norm),
                "pre_feedforward_layernorm_2",
                &norm,
            ),
        )
        .weight(
            "routed_post_norm",
            nested(
                field!(HybridMoeMlpConfig.routed.post_norm),
                "post_feedforward_layernorm_2",
                &norm,
            ),
        )
}

/// HF MoE keys, which a dense model must leave `null` (they would describe experts it lacks).
const MOE_KEYS: &[&str] = &["num_experts", "top_k_experts", "moe_intermediate_size"];

fn moe_keys_unset(hf: &Map, _: &ImportContext) -> Writes {
    let problems: Vec<Problem> = MOE_KEYS
        .iter()
        .filter_map(|key| match hf.get(*key) {
            None | Some(Value::Null) => None,
            Some(found) => Some(Problem::at_hf(
                *key,
                format!("{} set, but enable_moe_block is false", show(found)),
            )),
        })
        .collect();
    if problems.is_empty() { Ok(vec![]) } else { Err(problems) }
}

/// The block's effective pre-MLP norm (`pre_mlp_normalization`, else `normalization`) is not a
/// `none` norm: Fast-LLM then builds `norm_2`. The config accepts only an RMS norm equal to
/// `normalization` (dense blocks) or `none` (MoE blocks).
fn has_pre_mlp_norm(c: &WeightContext) -> bool {
    c.config::<DecoderBlockConfig>().is_some_and(|block| {
        let norm = block.pre_mlp_normalization.as_ref().unwrap_or(&block.normalization);
        !matches!(norm, NormalizationConfig::None(_))
    })
}

/// A block's weights (under `model.layers.{i}`), the same for every layer type and MLP kind: a
/// block's tensors depend only on its config's values (`head_size`, `shared_key_value`, the MLP
/// `type`), so each block table declares them all and the planner reads them off any of the
/// four. `norm_1` ↔ `input_layernorm`, the attention under `self_attn`, in dense blocks `norm_2`
/// ↔ `pre_feedforward_layernorm` (MoE blocks have a `none` pre-MLP norm), `post_mixer_norm` ↔
/// `post_attention_layernorm`, the dense MLP under `mlp` or the hybrid MoE at the block root,
/// `post_mlp_norm` ↔ `post_feedforward_layernorm`, `output_scale` `[1]` ↔ the `layer_scalar`
/// buffer.
fn block_weights(section: Section, mixer: &Arc<Section>, norm: &Arc<Section>) -> Section {
    section
        .weight(
            "norm_1",
            nested_as(
                field!(DecoderBlockConfig.normalization),
                "norm_1",
                "input_layernorm",
                norm,
            ),
        )
        .weight("mixer", nested(field!(DecoderBlockConfig.mixer), "self_attn", mixer))
        .weight(
            "norm_2",
            vector("norm_2.weight", "pre_feedforward_layernorm.weight", hidden).when(has_pre_mlp_norm),
        )
        .weight(
            "post_mixer_norm",
            nested_as(
                field!(DecoderBlockConfig.post_mixer_normalization),
                "post_mixer_norm",
                "post_attention_layernorm",
                norm,
            ),
        )
        .weight(
            "mlp",
            WeightDecl::Dispatch {
                config: field!(DecoderBlockConfig.mlp).into(),
                fast_llm: "mlp",
                sections: vec![("mlp", dense_mlp().build()), ("", hybrid_mlp().build())],
            },
        )
        .weight(
            "post_mlp_norm",
            nested_as(
                field!(DecoderBlockConfig.post_mlp_normalization),
                "post_mlp_norm",
                "post_feedforward_layernorm",
                norm,
            ),
        )
        // HF's frozen `layer_scalar` buffer; the config requires `output_scale.enabled`.
        .weight(
            "output_scale",
            WeightDecl::param("output_scale", &["layer_scalar"], Transform::Copy, |_| vec![1]),
        )
}

/// A decoder block of one layer type, dense (`enable_moe_block: false`) or MoE.
pub fn block(layer: LayerType, mlp: MlpKind) -> Section {
    let moe = mlp == MlpKind::Moe;
    let name = match (layer, mlp) {
        (LayerType::Sliding, MlpKind::Dense) => "gemma4.sliding_block",
        (LayerType::Sliding, MlpKind::Moe) => "gemma4.sliding_moe_block",
        (LayerType::Full, MlpKind::Dense) => "gemma4.full_block",
        (LayerType::Full, MlpKind::Moe) => "gemma4.full_moe_block",
    };
    let norm = hidden_norm().build();
    let mixer = attention(layer).build();
    let section = block_weights(Section::of::<DecoderBlockConfig>(name), &mixer, &norm)
        .add("mixer", Decl::nested("mixer", mixer))
        .add("normalization", Decl::nested("normalization", norm.clone()))
        .ignore(&["pre_mixer_normalization"])
        .add(
            "post_mixer_normalization",
            Decl::nested("post_mixer_normalization", norm.clone()),
        )
        .add("post_mlp_normalization", Decl::nested("post_mlp_normalization", norm))
        // HF's `layer_scalar` is a frozen buffer: the scale exists and is not trained.
        .add(
            "output_scale",
            Decl::import_only(&["output_scale"], &[], Covers::Subtree, |_, _| {
                Ok(vec![
                    ("output_scale.enabled".into(), boolean(true)),
                    ("output_scale.lr_scale".into(), float(0.0)),
                ])
            }),
        )
        .add("enable_moe_block", Decl::const_export("enable_moe_block", boolean(moe)))
        .validate(
            "pre_mixer_normalization",
            same_as_normalization("pre_mixer_normalization", |block| &block.pre_mixer_normalization),
        )
        .validate("output_scale", |fl| {
            match fl.config::<DecoderBlockConfig>()?.output_scale.enabled {
                Some(true) => Ok(()),
                found => Err(vec![Problem::at_fast_llm(
                    "output_scale.enabled",
                    format!(
                        "{}, but Gemma 4 scales every block output (layer_scalar)",
                        show(&found.map_or(Value::Null, Value::Bool))
                    ),
                )]),
            }
        });
    if moe {
        section.add("mlp", Decl::nested("mlp", hybrid_mlp().build())).add(
            "pre_mlp_normalization",
            Decl::nested("pre_mlp_normalization", no_norm().build()),
        )
    } else {
        section
            .add("mlp", Decl::nested("mlp", dense_mlp().build()))
            .add(
                "pre_mlp_normalization",
                Decl::import_only(&["pre_mlp_normalization"], &[], Covers::Subtree, |hf, _| {
                    let epsilon = hf.get("rms_norm_eps").cloned().unwrap_or(Value::Null);
                    Ok(vec![
                        ("pre_mlp_normalization.type".into(), text("rms_norm")),
                        ("pre_mlp_normalization.epsilon".into(), epsilon),
                    ])
                }),
            )
            .add(
                "moe_keys",
                Decl::import_only(&[], MOE_KEYS, Covers::Exact, moe_keys_unset),
            )
            .validate(
                "pre_mlp_normalization",
                same_as_normalization("pre_mlp_normalization", |block| &block.pre_mlp_normalization),
            )
    }
}

/// The token embeddings, scaled by `hidden_size ** 0.5` (checked on export by the root).
pub fn embeddings() -> Section {
    rules::token_embeddings("gemma4.embeddings", "Gemma 4 has no position embeddings")
        .add("embedding_scale", hidden_size_scale(&["embedding_scale"], 0.5))
}

/// The head: final norm, optional logit softcap, one prediction head.
pub fn head(norm: Arc<Section>) -> Section {
    Section::of::<LanguageModelHeadConfig>("gemma4.head")
        .add("normalization", Decl::nested("normalization", norm))
        .ignore(&["output_weight"])
        .constant("prediction_heads", int(1))
        .optional("final_logit_softcap", "final_logit_softcapping", Value::Null)
}

/// `use_bidirectional_attention`: `"vision"` affects only vision tokens, so a text model reads
/// it like `null`; `"all"` (a non-causal text decoder) is not representable. An HF-only value
/// set (not one constant), hence a Custom.
fn bidirectional_attention() -> Decl {
    Decl::custom(
        Claims::exact(&[], &["use_bidirectional_attention"]),
        |_, _| Ok(vec![("use_bidirectional_attention".to_string(), Value::Null).into()]),
        |hf, _| match hf.get("use_bidirectional_attention") {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Str(s)) if s == "vision" => Ok(vec![]),
            Some(found) => Err(vec![Problem::at_hf(
                "use_bidirectional_attention",
                format!(
                    "{}: Fast-LLM's text decoder is causal (supported: null, \"vision\")",
                    show(found)
                ),
            )]),
        },
    )
    .into()
}

/// `expert_intermediate_size`: the pre-release name of `moe_intermediate_size`, still in the
/// published `google/gemma-4-31B-it` config as `null`. transformers 5 no longer reads it, so a
/// value would describe experts the HF model does not build: only `null` is accepted.
fn expert_intermediate_size(hf: &Map, _: &ImportContext) -> Writes {
    match hf.get("expert_intermediate_size") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(found) => Err(vec![Problem::at_hf(
            "expert_intermediate_size",
            format!(
                "{}: the pre-release name of moe_intermediate_size, which transformers ignores (set \
                 moe_intermediate_size instead)",
                show(found)
            ),
        )]),
    }
}

/// The scale `found` at `path` must be exactly `expected` (Gemma 4 hard-codes `hidden_size ** ±0.5`
/// scales).
fn scale_rule(found: f64, path: String, expected: f64, formula: &str) -> Option<Problem> {
    (found != expected).then(|| Problem::at_fast_llm(path, format!("{found:?} (must be {formula} = {expected:?})")))
}

/// The text model's root: embeddings, decoder, head, and the Gemma 4 features Fast-LLM lacks,
/// pinned off. Weights, relative to the text model's HF module (`model` in `gemma4`,
/// `model.language_model` in `gemma4_conditional`): `embed_tokens`, the blocks under `layers`
/// (the weights of any block table: they are the same), the final norm `norm`. The output
/// weights are at the HF root ([`output_weights`]).
pub fn base_model() -> Section {
    let (sections, norm) = (block_sections(), hidden_norm().build());
    let block = sections.sliding.clone();
    Section::of::<GptBaseModelConfig>("gemma4.base_model")
        .weight(
            "embeddings",
            WeightDecl::param(
                "embeddings.word_embeddings_weight",
                &["embed_tokens.weight"],
                Transform::Copy,
                vocabulary,
            ),
        )
        .weight("decoder", blocks(field!(TextModel.decoder), "layers", &block))
        .weight(
            "final_norm",
            nested_as(field!(TextModel.head.normalization), "head.final_norm", "norm", &norm),
        )
        .add("embeddings", Decl::nested("embeddings", embeddings().build()))
        .add("decoder", decoder::declaration(sections))
        .add("head", Decl::nested("head", head(norm).build()))
        .same("hidden_size")
        .rename("tied_embedding_weight", "tie_word_embeddings")
        .ignore(&["peft"])
        // Per-layer embeddings, KV sharing across layers and double-wide MLPs have no Fast-LLM form.
        .add(
            "hidden_size_per_layer_input",
            Decl::const_export("hidden_size_per_layer_input", int(0)),
        )
        .add(
            "num_kv_shared_layers",
            Decl::const_export("num_kv_shared_layers", int(0)),
        )
        .add(
            "use_double_wide_mlp",
            Decl::const_export("use_double_wide_mlp", boolean(false)),
        )
        .add("use_bidirectional_attention", bidirectional_attention())
        // The per-layer-embedding vocabulary: inert once hidden_size_per_layer_input is 0.
        .add(
            "vocab_size_per_layer_input",
            Decl::ignored_hf(&["vocab_size_per_layer_input"]),
        )
        .add(
            "per_layer_config",
            Decl::import_only(&[], per_layer::CLAIMS, Covers::Exact, per_layer::check),
        )
        .add(
            "expert_intermediate_size",
            Decl::import_only(
                &[],
                &["expert_intermediate_size"],
                Covers::Exact,
                expert_intermediate_size,
            ),
        )
        .validate("embedding_scale", |fl| {
            let text = fl.text_model()?;
            let expected = hidden_power(text.hidden_size, 0.5);
            let found = text.embeddings.embedding_scale;
            let path = "embeddings.embedding_scale".to_string();
            checked(
                scale_rule(found, path, expected, "sqrt(hidden_size)")
                    .into_iter()
                    .collect(),
            )
        })
        .validate("router_input_scale", |fl| {
            let text = fl.text_model()?;
            let expected = hidden_power(text.hidden_size, -0.5);
            let problems = (text.decoder.distinct().into_iter())
                .filter_map(|(name, block)| {
                    let BlockConfig::Decoder(DecoderBlockConfig {
                        mlp: MlpBaseConfig::HybridMoe(mlp),
                        ..
                    }) = block
                    else {
                        return None;
                    };
                    let path = format!("decoder.{}.mlp.routed.router_input_scale", block_path(name));
                    scale_rule(mlp.routed.router_input_scale, path, expected, "hidden_size ** -0.5")
                })
                .collect();
            checked(problems)
        })
        .validate("peft", rules::no_peft)
}

/// `Gemma4ForCausalLM`'s root: the text model's table, its weights under `model`, then the
/// output weights.
pub fn causal_lm() -> Section {
    base_model()
        .weights_under("text_model", "model")
        .weight("output", output_weights())
}

/// The output weights `lm_head` ↔ `head.output_weights`, at the HF root of both formats (absent
/// when tied to the embeddings).
pub fn output_weights() -> WeightDecl {
    WeightDecl::param("head.output_weights", &["lm_head.weight"], Transform::Copy, vocabulary)
        .when(|c| !c.holds(field!(TextModel.tied_embedding_weight)))
}

/// The four block sections, by layer type and MLP kind.
pub fn block_sections() -> decoder::Blocks {
    decoder::Blocks {
        sliding: block(LayerType::Sliding, MlpKind::Dense).build(),
        sliding_moe: block(LayerType::Sliding, MlpKind::Moe).build(),
        full: block(LayerType::Full, MlpKind::Dense).build(),
        full_moe: block(LayerType::Full, MlpKind::Moe).build(),
    }
}
