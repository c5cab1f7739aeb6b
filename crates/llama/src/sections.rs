//! The Llama family's section tables, config and weights in one table per section. Each format
//! is its parent's tables with entries replaced, assembled by part with [`Llama`].

use std::sync::Arc;

use fastllm_core::activation::activation;
use fastllm_core::config::{
    AffineLinearConfig, AttentionConfig, BlockConfig, DecoderBlockConfig, GptBaseModelConfig, LanguageModelHeadConfig,
    Map, MixerConfig, MlpConfig, MoeMlpConfig, RmsNormalizationConfig, Value,
};
use fastllm_core::dict::show;
use fastllm_core::hf::class::derived_head_dim;
use fastllm_core::rules;
use fastllm_core::values::{boolean, float, int, text};
use fastllm_core::weights::{
    self, Transform, WeightContext, WeightDecl, blocks, key_value_size, linear, nested, nested_as, norm, query_size,
    size_of, text_hidden,
};
use fastllm_core::{Checked, Covers, Decl, Fl, Problem, Section, checked, field};

use crate::rotary;

/// `<layer>.bias.enabled` must be unset or equal `add_linear_biases`: the format has one flag.
pub fn biases_follow(layers: &'static [&'static str]) -> impl Fn(Fl) -> Checked + Send + Sync {
    move |fl: Fl| {
        let shared = fl.linear_biases()?;
        let mut problems = Vec::new();
        for layer in layers {
            if let Some(enabled) = fl.bias_enabled(layer)?
                && enabled != shared
            {
                let message = format!(
                    "{} differs from add_linear_biases {}; the format has one bias flag",
                    show(&Value::Bool(enabled)),
                    show(&Value::Bool(shared))
                );
                problems.push(Problem::at_fast_llm(format!("{layer}.bias.enabled"), message));
            }
        }
        checked(problems)
    }
}

/// An optional parameter that must not be enabled (the format has no such tensor).
fn not_enabled(paths: &'static [&'static str]) -> impl Fn(Fl) -> Checked + Send + Sync {
    rules::not_enabled(paths, "the format has no such parameter")
}

/// The RMS norm (`rms_norm_eps`), shared by the blocks and the head.
pub fn normalization() -> Section {
    Section::of::<RmsNormalizationConfig>("llama.normalization")
        .rename("epsilon", "rms_norm_eps")
        .ignore(&["weight"])
        .constant("zero_centered", boolean(false))
        .weight("weight", norm(text_hidden))
}

/// The dense-MLP declarations, shared by the dense and the MoE MLP sections.
fn mlp_declarations(section: Section) -> Section {
    section
        .same("intermediate_size")
        .rename("add_linear_biases", "mlp_bias")
        .add("activation", activation(&["hidden_act"]))
        .constant("gated", boolean(true))
        .add("layers", Decl::ignored(&["layer_1", "layer_2"]))
        .constant("pre_norm", Value::Null)
        .constant("post_norm", Value::Null)
        .validate("layer_biases", biases_follow(&["layer_1", "layer_2"]))
}

/// Llama's gated MLP (`intermediate_size`, `mlp_bias`, `hidden_act`).
pub fn mlp() -> Section {
    mlp_declarations(Section::of::<MlpConfig>("llama.mlp")).weight("layers", mlp_weights(text_hidden))
}

/// An MLP's weights over `hidden` features: `layer_1` ↔ [`gate_proj`; `up_proj`] when gated,
/// else `up_proj`; `layer_2` ↔ `down_proj` (Fast-LLM stores it transposed); each bias its
/// layer's effective bias.
pub fn mlp_weights(hidden: fn(&WeightContext) -> usize) -> WeightDecl {
    let size = size_of(field!(MlpConfig.intermediate_size));
    let gated = |c: &WeightContext| c.holds(field!(MlpConfig.gated));
    WeightDecl::linears([
        linear("layer_1", &["gate_proj", "up_proj"], hidden, size)
            .when(gated)
            .bias_from(field!(MlpConfig.layer_1)),
        linear("layer_1", &["up_proj"], hidden, size)
            .when(move |c| !gated(c))
            .bias_from(field!(MlpConfig.layer_1)),
        linear("layer_2", &["down_proj"], size, hidden)
            .transposed()
            .bias_from(field!(MlpConfig.layer_2)),
    ])
}

/// Mixtral's MoE MLP: the MLP declarations plus experts and routing.
pub fn moe_mlp() -> Section {
    let experts = field!(MoeMlpConfig.experts);
    let size = size_of(field!(MoeMlpConfig.intermediate_size));
    mlp_declarations(Section::of::<MoeMlpConfig>("mixtral.mlp"))
        .replace_constant("add_linear_biases", boolean(false))
        .rename("experts", "num_local_experts")
        .rename("experts_per_token", "num_experts_per_tok")
        .constant("shared_experts", int(0))
        .constant("routing", text("aux_loss"))
        .ignore(&["router"])
        .constant("router_normalization", Value::Null)
        .ignore(&["router_scale"])
        .constant("router_input_scale", float(1.0))
        .ignore(&["router_per_expert_scale"])
        // Training-only knobs of MixtralConfig.
        .add(
            "router_training",
            Decl::ignored_hf(&["router_aux_loss_coef", "router_jitter_noise", "output_router_logits"]),
        )
        .validate(
            "router_scales",
            not_enabled(&["router_scale", "router_per_expert_scale"]),
        )
        // The router, `layer_1` = [w1₀; w3₀; w1₁; w3₁; …], `layer_2` = [w2₀ᵀ; w2₁ᵀ; …].
        .weight(
            "layers",
            WeightDecl::linears([
                linear("router", &["gate"], text_hidden, move |c| c.tensor_count(experts)),
                linear("layer_1", &["w1", "w3"], text_hidden, size).experts(experts),
                (linear("layer_2", &["w2"], size, text_hidden))
                    .transposed()
                    .experts(experts),
            ]),
        )
}

/// The attention's four linear layers.
pub const LINEAR_LAYERS: &[&str] = &["query_layer", "key_layer", "value_layer", "dense_layer"];

/// What an attention table without Q/K/V norms, a shared key-value projection, per-layer bias
/// flags or a window holds; `no_window` completes the message "<window> set, but …".
pub fn plain_attention(section: Section, no_window: &'static str) -> Section {
    section
        .constant("query_norm", Value::Null)
        .constant("key_norm", Value::Null)
        .constant("value_norm", Value::Null)
        .constant("shared_key_value", boolean(false))
        .validate("layer_biases", biases_follow(LINEAR_LAYERS))
        .validate("no_window", rules::no_window(no_window))
}

/// Llama's attention: heads, KV groups, `head_dim`, biases, dropout and rotary.
pub fn attention() -> Section {
    let section = Section::of::<AttentionConfig>("llama.attention")
        .rename("heads", "num_attention_heads")
        .rename("head_groups", "num_key_value_heads")
        .add("head_size", Decl::default("head_size", "head_dim", derived_head_dim))
        .rename("add_linear_biases", "attention_bias")
        .rename("dropout", "attention_dropout")
        .constant("causal", boolean(true))
        .constant("softmax_scale_power", float(0.5))
        .add("linear_layers", Decl::ignored(LINEAR_LAYERS))
        .add("rotary", rotary::declaration());
    plain_attention(section, "the format has no sliding window").weight("layers", attention_weights(text_hidden))
}

/// Attention weights over `hidden` features: `query` ↔ `q_proj`, fused `key_value` ↔ `k_proj` +
/// `v_proj`, `dense` ↔ `o_proj`, each bias its layer's effective bias (the K/V bias is the key
/// layer's). This covers Qwen2 too (Q/K/V biases on, dense off are per-layer flags).
pub fn attention_weights(hidden: fn(&WeightContext) -> usize) -> WeightDecl {
    WeightDecl::linears([
        linear("query", &["q_proj"], hidden, query_size).bias_from(field!(AttentionConfig.query_layer)),
        (linear("key_value", &["k_proj", "v_proj"], hidden, key_value_size))
            .bias_from(field!(AttentionConfig.key_layer)),
        linear("dense", &["o_proj"], query_size, hidden).bias_from(field!(AttentionConfig.dense_layer)),
    ])
}

/// A decoder block: mixer, MLP and norm sections, flat in the HF dict; weights under
/// `self_attn`, `mlp`, `input_layernorm` and `post_attention_layernorm`.
pub fn block(mixer: Arc<Section>, mlp: Arc<Section>, norm: Arc<Section>) -> Section {
    Section::of::<DecoderBlockConfig>("llama.block")
        .weight("mixer", nested(field!(DecoderBlockConfig.mixer), "self_attn", &mixer))
        .weight("mlp", nested(field!(DecoderBlockConfig.mlp), "mlp", &mlp))
        .weight(
            "norm_1",
            nested_as(
                field!(DecoderBlockConfig.normalization),
                "norm_1",
                "input_layernorm",
                &norm,
            ),
        )
        .weight(
            "norm_2",
            nested_as(
                field!(DecoderBlockConfig.normalization),
                "norm_2",
                "post_attention_layernorm",
                &norm,
            ),
        )
        .add("mixer", Decl::nested("mixer", mixer))
        .add("mlp", Decl::nested("mlp", mlp))
        .add("normalization", Decl::nested("normalization", norm))
        .constant("pre_mixer_normalization", Value::Null)
        .constant("pre_mlp_normalization", Value::Null)
        .constant("post_mixer_normalization", Value::Null)
        .constant("post_mlp_normalization", Value::Null)
        .ignore(&["output_scale"])
        .validate("output_scale", not_enabled(&["output_scale"]))
}

/// The token embeddings (`vocab_size`).
pub fn embeddings() -> Section {
    rules::token_embeddings("llama.embeddings", "the format has no such parameter")
        .constant("embedding_scale", float(1.0))
}

/// The head: final norm; one prediction head, no logit softcap. Weights: the final norm
/// (`model.norm`) and the output projection (`lm_head`, absent when tied to the embeddings).
pub fn head(norm: Arc<Section>) -> Section {
    Section::of::<LanguageModelHeadConfig>("llama.head")
        .weight(
            "final_norm",
            nested_as(
                field!(LanguageModelHeadConfig.normalization),
                "final_norm",
                "model.norm",
                &norm,
            ),
        )
        .weight(
            "output",
            WeightDecl::param(
                "output_weights",
                &["lm_head.weight"],
                Transform::Copy,
                weights::vocabulary,
            )
            .when(|c| !c.holds(field!(TextModel.tied_embedding_weight))),
        )
        .add("normalization", Decl::nested("normalization", norm))
        .ignore(&["output_weight"])
        .constant("prediction_heads", int(1))
        .constant("final_logit_softcap", Value::Null)
}

/// The root: embeddings, head, decoder (`num_hidden_layers`), `hidden_size`, tied embeddings.
/// Weights: the embeddings, the blocks under `model.layers`, then the head's.
pub fn base_model(block: Arc<Section>, head: Arc<Section>) -> Section {
    Section::of::<GptBaseModelConfig>("llama.base_model")
        .weight(
            "embeddings",
            WeightDecl::param(
                "embeddings.word_embeddings_weight",
                &["model.embed_tokens.weight"],
                Transform::Copy,
                weights::vocabulary,
            ),
        )
        .weight("decoder", blocks(field!(TextModel.decoder), "model.layers", &block))
        .weight("head", nested(field!(TextModel.head), "", &head))
        .add("embeddings", Decl::nested("embeddings", embeddings().build()))
        .add("head", Decl::nested("head", head))
        .add("decoder", fastllm_core::decoder::uniform(block))
        .same("hidden_size")
        .rename("tied_embedding_weight", "tie_word_embeddings")
        .ignore(&["peft"])
        .validate("peft", rules::no_peft)
}

// ---------------------------------------------------------------------------------------------
// Qwen2: Q/K/V biases always, dense bias never, no `head_dim`, no sliding window.

fn qwen2_biases(fl: Fl) -> Checked {
    let attention = fl.config::<AttentionConfig>()?;
    let enabled = |layer: &AffineLinearConfig| layer.bias.enabled;
    let qkv = [&attention.query_layer, &attention.key_layer, &attention.value_layer];
    let dense = enabled(&attention.dense_layer);
    let ok = if attention.add_linear_biases {
        qkv.iter().all(|l| enabled(l) != Some(false)) && dense == Some(false)
    } else {
        qkv.iter().all(|l| enabled(l) == Some(true)) && dense != Some(true)
    };
    if ok {
        return Ok(());
    }
    Err(vec![Problem::at_fast_llm(
        "add_linear_biases",
        "the format's attention has Q/K/V biases and no dense bias: set add_linear_biases false with \
         query/key/value_layer.bias.enabled true, or add_linear_biases true with dense_layer.bias.enabled false",
    )])
}

fn import_constant(
    path: &'static str,
    value: Value,
) -> impl Fn(&Map, &fastllm_core::ImportContext) -> fastllm_core::Writes {
    move |_, _| Ok(vec![(path.to_string(), value.clone())])
}

/// The int at HF key `key`; anything else (absent, `null`) is a problem naming it, never a 0.
fn hf_int(hf: &Map, key: &str) -> Result<i128, Vec<Problem>> {
    match hf.get(key) {
        Some(Value::Int(n)) => Ok(*n),
        other => {
            let found = other.map(show).unwrap_or_else(|| "nothing".into());
            Err(vec![Problem::at_hf(key, format!("expected an int, found {found}"))])
        }
    }
}

/// Qwen2 keys describing per-layer sliding windows: accepted only when no layer slides.
fn no_sliding_layers(hf: &Map, _: &fastllm_core::ImportContext) -> fastllm_core::Writes {
    let window = !matches!(hf.get("sliding_window"), None | Some(Value::Null));
    if hf.get("use_sliding_window") == Some(&Value::Bool(true)) && window {
        let (layers, first) = (hf_int(hf, "num_hidden_layers")?, hf_int(hf, "max_window_layers")?);
        if first < layers {
            return Err(vec![Problem::at_hf(
                "use_sliding_window",
                format!("true: layers {first}..{layers} use a sliding window, which the format cannot hold per layer"),
            )]);
        }
    }
    if let Some(Value::List(types)) = hf.get("layer_types") {
        for (i, t) in types.iter().enumerate() {
            match t {
                Value::Str(s) if s == "full_attention" => {}
                Value::Str(s) if s == "sliding_attention" => {
                    return Err(vec![Problem::at_hf(
                        format!("layer_types.{i}"),
                        "sliding_attention is not representable per layer",
                    )]);
                }
                other => {
                    return Err(vec![Problem::at_hf(
                        format!("layer_types.{i}"),
                        format!("unsupported layer type {}", show(other)),
                    )]);
                }
            }
        }
    }
    Ok(vec![])
}

/// Qwen2's attention: Q/K/V biases always, dense bias never, no `head_dim`, no sliding window.
pub fn qwen2_attention() -> Section {
    attention()
        .named("qwen2.attention")
        .replace(
            "add_linear_biases",
            Decl::import_only(
                &["add_linear_biases"],
                &[],
                Covers::Exact,
                import_constant("add_linear_biases", boolean(false)),
            ),
        )
        .replace(
            "head_size",
            Decl::import_only(&["head_size"], &[], Covers::Exact, |_, context| {
                derived_head_dim(context.root)
                    .map(|v| vec![("head_size".into(), v)])
                    .map_err(|e| vec![Problem::at_hf("hidden_size", e)])
            }),
        )
        .replace(
            "linear_layers",
            Decl::import_only(LINEAR_LAYERS, &[], Covers::Subtree, |_, _| {
                Ok(vec![
                    ("query_layer.bias.enabled".into(), boolean(true)),
                    ("key_layer.bias.enabled".into(), boolean(true)),
                    ("value_layer.bias.enabled".into(), boolean(true)),
                    ("dense_layer.bias.enabled".into(), boolean(false)),
                ])
            }),
        )
        .add(
            "sliding_window",
            Decl::import_only(
                &[],
                &[
                    "sliding_window",
                    "use_sliding_window",
                    "max_window_layers",
                    "layer_types",
                ],
                Covers::Exact,
                no_sliding_layers,
            ),
        )
        .validate("layer_biases", qwen2_biases)
}

/// Qwen2's root: Llama's plus the `use_mrope` guard and the heads × head_size = hidden rule.
pub fn qwen2_base_model(base_model: Section) -> Section {
    base_model
        .add(
            "use_mrope",
            Decl::import_only(&[], &["use_mrope"], Covers::Exact, |hf, _| match hf.get("use_mrope") {
                None | Some(Value::Bool(false)) => Ok(vec![]),
                Some(found) => Err(vec![Problem::at_hf("use_mrope", format!("{}: multimodal rope is not representable", show(found)))]),
            }),
        )
        .validate("head_size", |fl| {
            // Qwen2 has no head_dim: heads × head_size must be hidden_size (checked on the first
            // block; a block that is no attention is refused by its own section).
            let text = fl.text_model()?;
            let first = text.decoder.distinct().first().map(|(_, block)| *block);
            let Some(BlockConfig::Decoder(DecoderBlockConfig {
                mixer: MixerConfig::Attention(attention),
                ..
            })) = first
            else {
                return Ok(());
            };
            let (h, s) = (i128::from(attention.heads), i128::from(attention.head_size));
            match i128::from(text.hidden_size) {
                d if h * s != d => Err(vec![Problem::at_fast_llm(
                    "decoder.block.mixer.head_size",
                    format!("heads × head_size = {h} × {s} = {} differs from hidden_size {d}, and the format has no head_dim", h * s),
                )]),
                _ => Ok(()),
            }
        })
}

// ---------------------------------------------------------------------------------------------
// Mistral: no bias keys, `sliding_window` ↔ `window_size`.

/// Mistral's attention: no bias key, `sliding_window` ↔ `window_size`.
pub fn mistral_attention() -> Section {
    attention()
        .named("mistral.attention")
        .replace_constant("add_linear_biases", boolean(false))
        .rename("window_size", "sliding_window")
        .without_validator("no_window")
}

/// Mistral's MLP: no `mlp_bias` key (biases off).
pub fn mistral_mlp() -> Section {
    mlp()
        .named("mistral.mlp")
        .replace_constant("add_linear_biases", boolean(false))
}

// ---------------------------------------------------------------------------------------------
// MTP-Llama: `prediction_heads` is a key.

/// MTP-Llama's head: `prediction_heads` is a key; the main head's final norm is
/// `model.mtp_norms.0`.
pub fn mtp_head(norm: Arc<Section>) -> Section {
    head(norm.clone())
        .named("mtp_llama.head")
        .replace("prediction_heads", Decl::same("prediction_heads"))
        .replace_weight(
            "final_norm",
            nested_as(
                field!(LanguageModelHeadConfig.normalization),
                "final_norm",
                "model.mtp_norms.0",
                &norm,
            ),
        )
}

/// The number of extra prediction heads (`head.prediction_heads - 1`), from the root.
fn extra_prediction_heads(c: &WeightContext) -> usize {
    c.tensor_count(field!(GptBaseModelConfig.head.prediction_heads))
        .saturating_sub(1)
}

/// MTP-Llama's root: per extra prediction head `k` (`0..prediction_heads - 1`) a copy of the
/// decoder's last block, fixed or pattern (Fast-LLM's `last_block_config`;
/// `multi_token_prediction.blocks.{k}` ↔ `model.mtp_heads.{k}`, Llama block names) and a final
/// norm (`multi_token_prediction.heads.{k}.final_norm` ↔ `model.mtp_norms.{k+1}`), in Fast-LLM's
/// order: before the head. The extra heads' output weights are tied duplicates of the main
/// head's, never stored.
pub fn mtp_base_model(base_model: Section, block: &Arc<Section>, norm: &Arc<Section>) -> Section {
    base_model
        .weight_before(
            "head",
            "multi_token_prediction_blocks",
            WeightDecl::RepeatLastBlock {
                config: field!(TextModel.decoder).into(),
                count: Arc::new(extra_prediction_heads),
                fast_llm: Arc::new(|k| format!("multi_token_prediction.blocks.{k}")),
                hf: Arc::new(|k| format!("model.mtp_heads.{k}")),
                block: block.clone(),
            },
        )
        .weight_before(
            "head",
            "multi_token_prediction_norms",
            WeightDecl::Repeat {
                config: field!(TextModel.head.normalization).into(),
                count: Arc::new(extra_prediction_heads),
                fast_llm: Arc::new(|k| format!("multi_token_prediction.heads.{k}.final_norm")),
                hf: Arc::new(|k| format!("model.mtp_norms.{}", k + 1)),
                section: norm.clone(),
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Each format's tree, assembled by part.

/// A Llama-shaped model, by part: a format names the parts it changes and takes Llama's for
/// the rest (`Llama { attention: mistral_attention(), ..Llama::named("mistral.base_model") }`).
pub struct Llama {
    /// The root section's name (`mistral.base_model`).
    pub name: &'static str,
    pub attention: Section,
    pub mlp: Section,
    /// The MLP's HF module in a block (`mlp`; Mixtral's `block_sparse_moe`).
    pub mlp_module: &'static str,
    pub normalization: Section,
    pub head: fn(Arc<Section>) -> Section,
    /// The root's own entries, given the built block and norm (Qwen2's guards, MTP's heads).
    pub root: fn(Section, &Arc<Section>, &Arc<Section>) -> Section,
}

impl Llama {
    /// Llama's parts, under the root section name `name`.
    pub fn named(name: &'static str) -> Self {
        Llama {
            name,
            attention: attention(),
            mlp: mlp(),
            mlp_module: "mlp",
            normalization: normalization(),
            head,
            root: |root, _, _| root,
        }
    }
}

impl From<Llama> for Arc<Section> {
    fn from(model: Llama) -> Self {
        model.build().build()
    }
}

impl Llama {
    /// The root section: its config and weight tables.
    pub fn build(self) -> Section {
        let norm = self.normalization.build();
        let mlp = self.mlp.build();
        let block = block(self.attention.build(), mlp.clone(), norm.clone())
            .replace_weight("mlp", nested(field!(DecoderBlockConfig.mlp), self.mlp_module, &mlp))
            .build();
        let root = base_model(block.clone(), (self.head)(norm.clone()).build());
        (self.root)(root.named(self.name), &block, &norm)
    }
}
