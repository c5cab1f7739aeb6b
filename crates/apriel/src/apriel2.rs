//! `apriel2_text`: an HF layout mirroring Fast-LLM's modular config — a typed `decoder`
//! (`fixed` / `pattern`), typed mixers (`attention`, `mamba`, `gdn`, `kda`, `stochastic`), typed
//! rotary, MLP and norms — so it is built almost entirely from Rename, Optional, Nested, Dispatch
//! and TypedDict, reusing the Llama tables for the block, embeddings, head and root.
//!
//! Custom pieces, and why they are not primitives:
//! - `activation` — a value mapping (`gelu` ↔ `gelu_pytorch_tanh`, `squared_relu` ↔ `relu2`).
//!
//! Deliberately stricter than the reference: `causal`, `softmax_scale_power`, Mamba
//! `repeat_kv_before_conv`, the GDN norm and the KDA norm's `zero_centered` have no HF key, so
//! export requires the value import implies (ConstImport) instead of dropping them; a block or
//! head norm other than RMS is rejected both ways (the weights have RMS norms only). Export also
//! rejects what the HF model cannot hold as weights: attention key and value biases that differ
//! (Fast-LLM fuses them, with the key layer's bias; refused on import too) and, with Mamba `add_linear_biases`, an unset
//! convolution or dt-projection bias flag (HF reads `null` as no bias; Fast-LLM as the default).

use std::sync::Arc;

use fastllm_core::activation::activation;
use fastllm_core::config::{
    AffineLinearConfig, AttentionConfig, DecoderBlockConfig, DefaultBias, DefaultRotaryConfig,
    FixedBlockSequenceConfig, GatedDeltaNetConfig, KimiDeltaAttentionConfig, Llama3RotaryConfig, MambaConfig,
    MlpConfig, OptionalParameterConfig, PatternBlockSequenceConfig, StochasticMixerConfig, Value, YarnRotaryConfig,
};
use fastllm_core::values::{boolean, float, int, text};
use fastllm_core::weights::{WeightContext, WeightDecl, blocks, linear, size_of, text_hidden};
use fastllm_core::{Covers, Decl, Problem, Section, checked, field};
use fastllm_llama::sections::{self as llama, LINEAR_LAYERS, attention_weights, mlp_weights};

use crate::hybrid;

/// `<layer>.bias.enabled` ↔ HF `<layer>.bias.enabled`, written only when set; the layers' other
/// sub-configs (weights) carry nothing to convert.
fn per_layer_biases(section: Section, layers: &'static [&'static str], paths: &'static [&'static str]) -> Section {
    let section = section.add("linear_layers", Decl::ignored(layers));
    paths.iter().fold(section, |section, &path| {
        section.add(path, Decl::optional(path, path, Value::Null))
    })
}

/// The typed rotary: `default` ↔ `mistral_1d` (HF `default` also read), `llama3`, `yarn`, with
/// Fast-LLM field names.
pub fn rotary_sections() -> Vec<Arc<Section>> {
    let theta = || Decl::default("theta", "theta", |_| Ok(float(10000.0)));
    let default = |hf_type: &'static str| {
        Section::of::<DefaultRotaryConfig>("apriel2.rotary_default")
            .hf_type(hf_type)
            .add("theta", theta())
            .build()
    };
    let llama3 = Section::of::<Llama3RotaryConfig>("apriel2.rotary_llama3")
        .hf_type("llama3")
        .add("theta", theta())
        .same("scale_factor")
        .same("low_frequency_factor")
        .same("high_frequency_factor")
        .same("original_context_length")
        .build();
    let yarn = Section::of::<YarnRotaryConfig>("apriel2.rotary_yarn")
        .hf_type("yarn")
        .add("theta", theta())
        .same("scale_factor")
        .same("attention_factor")
        .same("beta_fast")
        .same("beta_slow")
        .same("original_context_length")
        .build();
    vec![default("mistral_1d"), llama3, yarn, default("default")]
}

/// `rotary` ↔ HF `rotary`, dispatched on its type.
pub fn rotary(sections: Vec<Arc<Section>>) -> Decl {
    Decl::dispatch("rotary", Some("rotary"), "type", sections)
}

/// Attention (`type: attention`): heads, typed rotary, biases (shared and per layer), window.
pub fn attention() -> Section {
    let section = Section::of::<AttentionConfig>("apriel2.attention")
        .hf_type("attention")
        .same("heads")
        .same("head_groups")
        .same("head_size")
        .add("rotary", rotary(rotary_sections()))
        .optional("add_linear_biases", "add_linear_biases", boolean(true))
        .optional("window_size", "window_size", Value::Null)
        .constant("causal", boolean(true))
        .constant("softmax_scale_power", float(0.5))
        .constant("query_norm", Value::Null)
        .constant("key_norm", Value::Null)
        .constant("value_norm", Value::Null)
        .constant("shared_key_value", boolean(false));
    per_layer_biases(
        section,
        LINEAR_LAYERS,
        &[
            "query_layer.bias.enabled",
            "key_layer.bias.enabled",
            "value_layer.bias.enabled",
            "dense_layer.bias.enabled",
        ],
    )
    .validate("key_value_bias", |fl| {
        let attention = fl.config::<AttentionConfig>()?;
        let shared = DefaultBias::from_flag(attention.add_linear_biases);
        let biases = KeyValueBias {
            key: shared.resolve(attention.key_layer.bias.enabled),
            value: shared.resolve(attention.value_layer.bias.enabled),
        };
        match biases.mismatch() {
            Some(message) => Err(vec![Problem::at_fast_llm("value_layer.bias.enabled", message)]),
            None => Ok(()),
        }
    })
    // The same rule on import (the HF keys mirror the Fast-LLM paths; an absent
    // `add_linear_biases` is true): a config Fast-LLM cannot hold is refused, not converted into
    // one that cannot be exported back.
    .add(
        "key_value_bias",
        Decl::import_only(&[], &[], Covers::Exact, |hf, _| {
            let flags = [
                hf_flag(hf, "add_linear_biases"),
                hf_flag(hf, "key_layer.bias.enabled"),
                hf_flag(hf, "value_layer.bias.enabled"),
            ];
            let [Ok(shared), Ok(key), Ok(value)] = flags else {
                return Err(flags.into_iter().filter_map(Result::err).collect());
            };
            let shared = DefaultBias::from_flag(shared.unwrap_or(true));
            let biases = KeyValueBias {
                key: shared.resolve(key),
                value: shared.resolve(value),
            };
            match biases.mismatch() {
                None => Ok(Vec::new()),
                Some(message) => Err(vec![Problem::at_hf("value_layer.bias.enabled", message)]),
            }
        }),
    )
    .weight("layers", attention_weights(text_hidden))
}

/// Whether the key and the value projections have a bias, each after its default.
struct KeyValueBias {
    key: bool,
    value: bool,
}

impl KeyValueBias {
    /// Fast-LLM packs K and V in one layer whose bias is the key layer's; the HF model has a bias
    /// per projection, so the two effective biases must agree.
    fn mismatch(&self) -> Option<String> {
        let &KeyValueBias { key, value } = self;
        (key != value).then(|| {
            format!(
                "value bias {value} differs from key bias {key}: Fast-LLM's fused key_value layer has one bias \
                 (the key layer's), the format's k_proj / v_proj one each"
            )
        })
    }
}

/// The bool flag at `key` of the attention's HF dict: `None` when absent or `null`; anything
/// else is a problem naming the key (read as unset, it would make the biases disagree, or agree,
/// for a value the import then refuses).
fn hf_flag(hf: &fastllm_core::config::Map, key: &str) -> Result<Option<bool>, Problem> {
    match fastllm_core::dict::get(hf, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(enabled)) => Ok(Some(*enabled)),
        Some(other) => Err(Problem::at_hf(
            key,
            format!("expected a bool (or null), found {}", other.describe()),
        )),
    }
}

/// A bias flag (`OptionalParameterConfig.enabled`) ↔ an HF key written even when `null`
/// (absent on import: unset).
fn bias_flag(hf: &'static str) -> Arc<Section> {
    Section::of::<OptionalParameterConfig>("apriel2.bias")
        .add("enabled", Decl::default("enabled", hf, |_| Ok(Value::Null)))
        .build()
}

/// Mamba (`type: mamba`): dimensions by name, `d_conv`, raw `conv_bias` / `dt_proj_bias`.
pub fn mamba() -> Section {
    Section::of::<MambaConfig>("apriel2.mamba")
        .hf_type("mamba")
        .same("state_size")
        .same("d_inner")
        .same("add_linear_biases")
        .same("d_xb")
        .same("dt_rank")
        .add(
            "convolution_layer",
            Decl::nested(
                "convolution_layer",
                hybrid::convolution(Decl::default("kernel_size", "d_conv", |_| Ok(int(4))))
                    .replace("weight", Decl::ignored(&["weight"]))
                    .add("bias", Decl::nested("bias", bias_flag("conv_bias")))
                    .build(),
            ),
        )
        .add(
            "dt_layer",
            Decl::nested(
                "dt_layer",
                Section::of::<AffineLinearConfig>("apriel2.dt_layer")
                    .ignore(&["weight"])
                    .add("bias", Decl::nested("bias", bias_flag("dt_proj_bias")))
                    .build(),
            ),
        )
        .constant("repeat_kv_before_conv", boolean(true))
        .add("layers_unmapped", Decl::ignored(hybrid::MAMBA_LINEAR_LAYERS))
        .add("parameters_unmapped", Decl::ignored(hybrid::MAMBA_PARAMETERS))
        .validate("raw_bias_flags", |fl| {
            // HF reads `conv_bias` / `dt_proj_bias` as the layer's bias, `null` meaning none, while
            // Fast-LLM's unset flag means `add_linear_biases`: with that true, the HF model would
            // lack a bias Fast-LLM has.
            let mamba = fl.config::<MambaConfig>()?;
            if !mamba.add_linear_biases {
                return Ok(());
            }
            let layers = [
                ("convolution_layer", "conv_bias", &mamba.convolution_layer.bias),
                ("dt_layer", "dt_proj_bias", &mamba.dt_layer.bias),
            ];
            let problems = (layers.into_iter())
                .filter(|(_, _, bias)| bias.enabled.is_none())
                .map(|(layer, hf, _)| {
                    Problem::at_fast_llm(
                        format!("{layer}.bias.enabled"),
                        format!(
                            "unset, so the layer has a bias (add_linear_biases is true), but the format's \
                             `{hf}: null` means none: set it explicitly"
                        ),
                    )
                })
                .collect();
            checked(problems)
        })
        .weight("layers", hybrid::mamba_weights())
}

/// GDN (`type: gdn`): heads and dims by name, `convolution_layer.kernel_size`.
pub fn gdn() -> Section {
    Section::of::<GatedDeltaNetConfig>("apriel2.gdn")
        .hf_type("gdn")
        .same("value_heads")
        .same("key_heads")
        .same("key_head_dim")
        .same("value_head_dim")
        .add("convolution_layer", conv_kernel())
        .add(
            "normalization",
            Decl::nested("normalization", hybrid::gdn_normalization().build()),
        )
        .add("layers_unmapped", Decl::ignored(hybrid::GDN_UNMAPPED))
        .validate("no_biases", hybrid::no_biases(hybrid::GDN_LINEAR_LAYERS))
        .weight("layers", hybrid::gdn_weights())
}

/// `convolution_layer.kernel_size` ↔ HF `convolution_layer.kernel_size` (absent: 4).
fn conv_kernel() -> Decl {
    Decl::nested(
        "convolution_layer",
        hybrid::convolution(Decl::default("kernel_size", "convolution_layer.kernel_size", |_| {
            Ok(int(4))
        }))
        .build(),
    )
}

/// KDA (`type: kda`): heads, head dim, conv kernel, norm epsilon.
pub fn kda() -> Section {
    Section::of::<KimiDeltaAttentionConfig>("apriel2.kda")
        .hf_type("kda")
        .same("heads")
        .same("head_dim")
        .add("convolution_layer", conv_kernel())
        .add(
            "normalization",
            Decl::nested(
                "normalization",
                hybrid::gdn_normalization()
                    .named("apriel2.kda_normalization")
                    .replace(
                        "epsilon",
                        Decl::default("epsilon", "normalization.epsilon", |_| Ok(float(1e-5))),
                    )
                    .build(),
            ),
        )
        .add("layers_unmapped", Decl::ignored(KDA_PROJECTIONS))
        .add(
            "parameters_unmapped",
            Decl::ignored(&["dt_bias_weight", "a_log_weight"]),
        )
        .validate("no_biases", hybrid::no_biases(KDA_LAYERS))
        .weight("layers", kda_weights())
}

/// KDA's weights: twelve projections and convolutions, `A_log`, `dt_bias`, `norm.weight`. No
/// biases: the config rejects enabling any.
fn kda_weights() -> WeightDecl {
    let heads = size_of(field!(KimiDeltaAttentionConfig.heads));
    let head_dim = size_of(field!(KimiDeltaAttentionConfig.head_dim));
    let projection = move |c: &WeightContext| heads(c).saturating_mul(head_dim(c));
    let kernel = size_of(field!(KimiDeltaAttentionConfig.convolution_layer.kernel_size));
    let conv = move |c: &WeightContext| vec![projection(c), 1, kernel(c)];
    WeightDecl::Group(vec![
        WeightDecl::linears([
            linear("q_proj", &["q_proj"], text_hidden, projection),
            linear("k_proj", &["k_proj"], text_hidden, projection),
            linear("v_proj", &["v_proj"], text_hidden, projection),
        ]),
        hybrid::plain("q_conv.weight", &["q_conv.weight"], conv),
        hybrid::plain("k_conv.weight", &["k_conv.weight"], conv),
        hybrid::plain("v_conv.weight", &["v_conv.weight"], conv),
        WeightDecl::linears([
            linear("f_a_proj", &["f_a_proj"], text_hidden, head_dim),
            linear("f_b_proj", &["f_b_proj"], head_dim, projection),
            linear("g_a_proj", &["g_a_proj"], text_hidden, head_dim),
            linear("g_b_proj", &["g_b_proj"], head_dim, projection),
            linear("beta_proj", &["beta_proj"], text_hidden, heads),
            linear("o_proj", &["o_proj"], projection, text_hidden),
        ]),
        hybrid::plain("A_log", &["A_log"], move |c| vec![heads(c)]),
        hybrid::plain("dt_bias", &["dt_bias"], move |c| vec![projection(c)]),
        hybrid::plain("norm.weight", &["norm.weight"], move |c| vec![head_dim(c)]),
    ])
}

/// The KDA projections: its layers but the convolution, which the table maps.
const KDA_PROJECTIONS: &[&str] = KDA_LAYERS.split_last().expect("KDA has layers").1;

/// The KDA layers, none of which has a bias in the format: the projections, then the
/// convolution.
const KDA_LAYERS: &[&str] = &[
    "q_projection_layer",
    "k_projection_layer",
    "v_projection_layer",
    "f_a_projection_layer",
    "f_b_projection_layer",
    "g_a_projection_layer",
    "g_b_projection_layer",
    "beta_projection_layer",
    "output_projection_layer",
    "convolution_layer",
];

/// The leaf mixers a stochastic mixer may hold.
pub fn leaf_mixers() -> Vec<Arc<Section>> {
    vec![attention().build(), mamba().build(), gdn().build(), kda().build()]
}

/// Stochastic (`type: stochastic`): a typed dict of leaf mixers, the main one, the sampling;
/// each mixer's weights under `mixers.<name>`.
pub fn stochastic() -> Section {
    Section::of::<StochasticMixerConfig>("apriel2.stochastic")
        .hf_type("stochastic")
        .add("mixers", Decl::typed_dict("mixers", "mixers", "type", leaf_mixers()))
        .same("main_mixer_name")
        .optional("sampling_strategy", "sampling_strategy", text("uniform"))
        .weight(
            "mixers",
            WeightDecl::TypedDict {
                config: field!(StochasticMixerConfig.mixers).into(),
                fast_llm: "mixers",
                hf: "mixers",
                sections: leaf_mixers(),
            },
        )
}

/// The typed RMS norm (`{type: rms_norm, epsilon}`).
pub fn normalization() -> Section {
    llama::normalization()
        .named("apriel2.normalization")
        .hf_type("rms_norm")
        .replace("epsilon", Decl::rename("epsilon", "epsilon"))
}

/// The MLP (`type: mlp`): sizes, gating, biases (shared and per layer), activation.
pub fn mlp() -> Section {
    let section = Section::of::<MlpConfig>("apriel2.mlp")
        .hf_type("mlp")
        .same("intermediate_size")
        .same("gated")
        .same("add_linear_biases")
        .add("activation", activation(&["activation"]))
        .constant("pre_norm", Value::Null)
        .constant("post_norm", Value::Null);
    per_layer_biases(
        section,
        &["layer_1", "layer_2"],
        &["layer_1.bias.enabled", "layer_2.bias.enabled"],
    )
    .weight("layers", mlp_weights(text_hidden))
}

/// A block: `mixer` dispatched on its type, `mlp` and `normalization` typed sub-dicts (Llama's
/// block table with those three entries replaced); every mixer's weights under `mixer`.
pub fn block(mixers: Vec<Arc<Section>>, mlp: Arc<Section>, norm: Arc<Section>) -> Section {
    let weights = WeightDecl::Dispatch {
        config: field!(DecoderBlockConfig.mixer).into(),
        fast_llm: "mixer",
        sections: mixers.iter().map(|mixer| ("mixer", mixer.clone())).collect(),
    };
    llama::block(norm.clone(), mlp.clone(), norm.clone())
        .named("apriel2.block")
        .replace("mixer", Decl::dispatch("mixer", Some("mixer"), "type", mixers))
        .replace_weight("mixer", weights)
        .replace("mlp", Decl::nested_under("mlp", mlp, "mlp"))
        .replace(
            "normalization",
            Decl::nested_under("normalization", norm, "normalization"),
        )
}

/// The text block: every leaf mixer plus stochastic.
pub fn text_block() -> Arc<Section> {
    let mut mixers = leaf_mixers();
    mixers.push(stochastic().build());
    block(mixers, mlp().build(), normalization().build()).build()
}

/// A `fixed` block sequence: `num_blocks`, `block`.
pub fn fixed_blocks(block: Arc<Section>) -> Section {
    Section::of::<FixedBlockSequenceConfig>("apriel2.decoder_fixed")
        .hf_type("fixed")
        .same("num_blocks")
        .add("block", Decl::nested_under("block", block, "block"))
}

/// The typed decoder: `fixed` (`num_blocks`, `block`) or `pattern` (`num_blocks`, `pattern`,
/// `blocks` by name).
pub fn decoder(block: Arc<Section>) -> Decl {
    let fixed = fixed_blocks(block.clone()).build();
    let pattern = Section::of::<PatternBlockSequenceConfig>("apriel2.decoder_pattern")
        .hf_type("pattern")
        .same("num_blocks")
        .same("pattern")
        .add("blocks", Decl::typed_dict("blocks", "blocks", "type", vec![block]))
        .build();
    Decl::dispatch("decoder", Some("decoder"), "type", vec![fixed, pattern])
}

/// The head: Llama's, with the norm a typed sub-dict.
pub fn head() -> Section {
    llama::head(normalization().build()).named("apriel2.head").replace(
        "normalization",
        Decl::nested_under("normalization", normalization().build(), "normalization"),
    )
}

/// The apriel2_text root (`GPTBaseModelConfig`): Llama's root with the typed `decoder` and `head`;
/// `vocab_size`, `hidden_size` and `tie_word_embeddings` at the top; the blocks' weights under
/// `model.decoder.blocks`.
pub fn base_model() -> Section {
    let block = text_block();
    let head = head().build();
    llama::base_model(block.clone(), head.clone())
        .named("apriel2_text.base_model")
        .replace_weight(
            "decoder",
            blocks(field!(TextModel.decoder), "model.decoder.blocks", &block),
        )
        .replace("decoder", decoder(block))
        .replace("head", Decl::nested_under("head", head, "head"))
        // Apriel2TextConfig injects `{"embeddings": {"max_position_embeddings": 2048}}`.
        .add(
            "embeddings_metadata",
            Decl::ignored_hf(&["embeddings.max_position_embeddings"]),
        )
}

/// Apriel2TextConfig's default decoder (substituted when `decoder` is absent or `null`).
pub fn default_decoder() -> Value {
    Value::from_json_str(
        r#"{"type": "fixed", "num_blocks": 32, "block": {
            "mixer": {"type": "attention", "heads": 32, "head_groups": 32, "head_size": 128,
                      "rotary": {"type": "default", "theta": 10000.0}, "add_linear_biases": false},
            "mlp": {"type": "mlp", "intermediate_size": 16384, "activation": "silu", "gated": true,
                    "add_linear_biases": false},
            "normalization": {"type": "rms_norm", "epsilon": 1e-5}}}"#,
    )
    .expect("valid JSON")
}

/// Apriel2TextConfig's default head.
pub fn default_head() -> Value {
    Value::from_json_str(r#"{"normalization": {"type": "rms_norm", "epsilon": 1e-5}}"#).expect("valid JSON")
}

/// Apriel2TextConfig's default `embeddings`.
pub fn default_embeddings() -> Value {
    Value::from_json_str(r#"{"max_position_embeddings": 2048}"#).expect("valid JSON")
}
