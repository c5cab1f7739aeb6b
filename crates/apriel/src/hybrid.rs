//! `apriel_hybrid_ssm`: Mistral's tables with the decoder replaced by a `ListDispatch` over
//! `hybrid_block_layout` (`t` attention, `m2` Mamba2, `gdn` gated delta-net). Every block is a
//! Mistral block with its mixer swapped; all blocks flat-merge into the HF root, the Mamba keys
//! under `ssm_cfg`, the GDN keys under `linear_attn_config`.
//!
//! Custom pieces, and why they are not primitives:
//! - `d_xb` — `ssm_cfg.d_xb` absent *or null* means `hidden_size` (a nested key the HF class
//!   cannot fill, derived from another key); export is a plain rename.
//! - `dt_rank` — `"auto"` (or absent) means `ceil(hidden_size / 16)`: a value mapping.
//! - `conv_bias` / `dt_proj_bias` — the HF flag is the *effective* bias of the layer
//!   (`bias.enabled`, else `add_linear_biases`); import sets `bias.enabled` explicitly.
//!
//! Import-only check: `ssm_cfg.d_conv` must be 4 (the kernel size the format implies; export
//! pins `convolution_layer.kernel_size` to 4 with a ConstImport and writes no key, as the
//! reference does).
//!
//! A KDA mixer has no layout name in the format: it is rejected on export by the `ListDispatch`.

use std::sync::Arc;

use fastllm_core::config::{
    CausalConv1dConfig, DecoderBlockConfig, GatedDeltaNetConfig, GatedRmsNormalizationConfig, MambaConfig, Map, Value,
};
use fastllm_core::dict::{self, show};
use fastllm_core::values::{boolean, float, int, text};
use fastllm_core::weights::{
    Transform, WeightContext, WeightDecl, effective_bias as bias_of, linear, size_of, text_hidden,
};
use fastllm_core::{
    Checked, Claims, Covers, Decl, ExportContext, Fl, HfWrites, LayoutEntry, Problem, Section, Writes, field,
};
use fastllm_llama::sections::{self as llama, biases_follow};

/// `ssm_cfg` keys AprielHybridSSMConfig always writes that do not affect Mamba2 layers.
pub const SSM_CFG_UNUSED: &[&str] = &[
    "ssm_cfg.expand",
    "ssm_cfg.n_v_heads",
    "ssm_cfg.n_qk_heads",
    "ssm_cfg.chunk_size",
    "ssm_cfg.activation",
    "ssm_cfg.dt_min",
    "ssm_cfg.dt_max",
    "ssm_cfg.dt_init",
    "ssm_cfg.dt_scale",
    "ssm_cfg.dt_init_floor",
];

/// The Mamba linear layers whose biases follow `add_linear_biases` (`ssm_cfg.bias`).
pub(crate) const MAMBA_LINEAR_LAYERS: &[&str] = &[
    "z_layer",
    "x_layer",
    "b_layer",
    "c_layer",
    "output_layer",
    "dt_input_layer",
];

/// Mamba's parameters beside its layers, whose settings carry nothing to convert.
pub(crate) const MAMBA_PARAMETERS: &[&str] = &["d_weight", "a_log_weight"];

/// The GDN's sub-configs whose settings carry nothing to convert (its projections and
/// parameters; the convolution and the norm are mapped).
pub(crate) const GDN_UNMAPPED: &[&str] = &[
    "qkv_projection_layer",
    "ba_projection_layer",
    "output_layer",
    "dt_bias_weight",
    "a_log_weight",
];

/// The GDN layers without biases in the format.
pub(crate) const GDN_LINEAR_LAYERS: &[&str] = &[
    "qkv_projection_layer",
    "ba_projection_layer",
    "output_layer",
    "convolution_layer",
];

/// `<layer>.bias.enabled` must not be true: the format has no such bias.
pub fn no_biases(layers: &'static [&'static str]) -> impl Fn(Fl) -> Checked + Send + Sync {
    fastllm_core::rules::no_biases(layers, "the format has no such bias")
}

/// The text model's `hidden_size`: the block sections read the text model's own HF dict (the root
/// here, `text_config` when reused by a multimodal format).
fn text_hidden_size(hf: &Map) -> Result<i128, String> {
    match hf.get("hidden_size") {
        Some(Value::Int(h)) => Ok(*h),
        other => Err(format!(
            "needs an int hidden_size to derive the default, found {}",
            other.map(show).unwrap_or_else(|| "nothing".into())
        )),
    }
}

/// A bias flag: export the effective bias of `layer`, import it as `layer.bias.enabled`
/// (absent: `true`, the class default).
fn effective_bias(layer: &'static str, fl_bias: &'static [&'static str], hf_key: &'static [&'static str]) -> Decl {
    let hf = hf_key[0];
    Decl::custom(
        Claims::exact(fl_bias, hf_key),
        move |fl, _| {
            let enabled = match fl.bias_enabled(layer)? {
                Some(enabled) => enabled,
                None => fl.linear_biases()?,
            };
            Ok(vec![(hf.to_string(), Value::Bool(enabled)).into()])
        },
        move |hf_dict, _| {
            let value = dict::get(hf_dict, hf).cloned().unwrap_or(Value::Bool(true));
            Ok(vec![(format!("{layer}.bias.enabled"), value)])
        },
    )
    .into()
}

/// A mixer's causal convolution: `kernel` maps the kernel size; the activation is the default;
/// the bias is the mixer's business (Mamba: `conv_bias`; GDN: none, validated by the mixer).
pub fn convolution(kernel: Decl) -> Section {
    Section::of::<CausalConv1dConfig>("apriel.convolution")
        .add("kernel_size", kernel)
        .constant("activation", Value::Null)
        .add("weight", Decl::ignored(&["weight", "bias"]))
}

/// The GDN output norm: the format has no key for it, so it holds Fast-LLM's defaults.
pub fn gdn_normalization() -> Section {
    Section::of::<GatedRmsNormalizationConfig>("apriel.gdn_normalization")
        .constant("epsilon", float(1e-5))
        .constant("zero_centered", boolean(false))
        .ignore(&["weight"])
}

/// Apriel's Mamba2 mixer (`MambaConfig`), reading the block's HF dict (the root), mostly `ssm_cfg`.
pub fn mamba() -> Section {
    Section::of::<MambaConfig>("apriel.mamba")
        .add(
            "state_size",
            Decl::default("state_size", "ssm_cfg.d_state", |_| Ok(int(64))),
        )
        .add(
            "d_inner",
            Decl::default("d_inner", "ssm_cfg.d_inner", |_| Ok(int(4096))),
        )
        .add(
            "d_xb",
            Decl::custom(
                Claims::exact(&["d_xb"], &["ssm_cfg.d_xb"]),
                export_ssm_size("d_xb", |mamba| mamba.d_xb),
                |hf, _| match dict::get(hf, "ssm_cfg.d_xb") {
                    None | Some(Value::Null) => derived_from_hidden_size(hf, "d_xb", |hidden| hidden),
                    Some(value) => Ok(vec![("d_xb".into(), value.clone())]),
                },
            ),
        )
        .add(
            "dt_rank",
            Decl::custom(
                Claims::exact(&["dt_rank"], &["ssm_cfg.dt_rank"]),
                export_ssm_size("dt_rank", |mamba| mamba.dt_rank),
                |hf, _| match dict::get(hf, "ssm_cfg.dt_rank") {
                    Some(value @ Value::Int(_)) => Ok(vec![("dt_rank".into(), value.clone())]),
                    Some(other) if !matches!(other, Value::Str(s) if s == "auto") => Err(vec![Problem::at_hf(
                        "ssm_cfg.dt_rank",
                        format!("must be an int or \"auto\", found {}", show(other)),
                    )]),
                    _ => derived_from_hidden_size(hf, "dt_rank", |hidden| (hidden + 15) / 16),
                },
            ),
        )
        .add(
            "add_linear_biases",
            Decl::default("add_linear_biases", "ssm_cfg.bias", |_| Ok(boolean(false))),
        )
        .add(
            "repeat_kv_before_conv",
            Decl::default("repeat_kv_before_conv", "ssm_cfg.repeat_kv_before_conv", |_| {
                Ok(boolean(true))
            }),
        )
        .add(
            "convolution_layer",
            Decl::nested(
                "convolution_layer",
                convolution(Decl::const_import("kernel_size", int(4))).build(),
            ),
        )
        .add(
            "convolution_layer_bias",
            effective_bias("convolution_layer", &["convolution_layer.bias"], &["ssm_cfg.conv_bias"]),
        )
        .add(
            "d_conv",
            Decl::import_only(&[], &["ssm_cfg.d_conv"], Covers::Exact, |hf, _| {
                match dict::get(hf, "ssm_cfg.d_conv") {
                    None | Some(Value::Int(4)) => Ok(vec![]),
                    Some(other) => Err(vec![Problem::at_hf(
                        "ssm_cfg.d_conv",
                        format!(
                            "must be 4 (the Mamba2 kernel size the format implies), found {}",
                            show(other)
                        ),
                    )]),
                }
            }),
        )
        .add(
            "dt_layer_bias",
            effective_bias("dt_layer", &["dt_layer", "dt_layer.bias"], &["ssm_cfg.dt_proj_bias"]),
        )
        .add("dt_layer_weight", Decl::ignored(&["dt_layer.weight"]))
        .add("linear_layers", Decl::ignored(MAMBA_LINEAR_LAYERS))
        .add("parameters", Decl::ignored(MAMBA_PARAMETERS))
        .add("unused_ssm_cfg", Decl::ignored_hf(SSM_CFG_UNUSED))
        .validate("layer_biases", biases_follow(MAMBA_LINEAR_LAYERS))
        .weight("layers", mamba_weights())
}

/// A parameter with the same name on both sides.
pub(crate) fn plain(
    name: &'static str,
    hf: &'static [&'static str],
    shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
) -> WeightDecl {
    WeightDecl::param(name, hf, Transform::Copy, shape)
}

/// Mamba's weights (both formats): `in_proj`, `dt_in_proj`, `dt_proj`, `convolution` ↔
/// `conv1d`, `A_log`, `D`, `out_proj`; each bias its layer's effective bias (default
/// `add_linear_biases`), as `fastllm_layout` derives it. Where the HF model could not hold such
/// a bias (Apriel2's `conv_bias` / `dt_proj_bias`), the config export rejects the config.
pub fn mamba_weights() -> WeightDecl {
    let inner = size_of(field!(MambaConfig.d_inner));
    let xb = size_of(field!(MambaConfig.d_xb));
    let rank = size_of(field!(MambaConfig.dt_rank));
    let conv = move |c: &WeightContext| {
        if c.holds(field!(MambaConfig.repeat_kv_before_conv)) {
            inner(c)
        } else {
            xb(c)
        }
    };
    let in_proj = move |c: &WeightContext| inner(c).saturating_add(xb(c)).saturating_mul(2);
    WeightDecl::Group(vec![
        linear("in_proj", &["in_proj"], text_hidden, in_proj)
            .bias_from(field!(MambaConfig.z_layer))
            .into(),
        linear("dt_in_proj", &["dt_in_proj"], text_hidden, rank)
            .bias_from(field!(MambaConfig.dt_input_layer))
            .into(),
        linear("dt_proj", &["dt_proj"], rank, inner)
            .bias_from(field!(MambaConfig.dt_layer))
            .into(),
        plain("convolution.weight", &["conv1d.weight"], move |c| {
            vec![conv(c), 1, c.size(field!(MambaConfig.convolution_layer.kernel_size))]
        }),
        plain("convolution.bias", &["conv1d.bias"], move |c| vec![conv(c)])
            .when(|c| bias_of(c, field!(MambaConfig.convolution_layer))),
        plain("A_log", &["A_log"], move |c| {
            vec![inner(c), c.size(field!(MambaConfig.state_size))]
        }),
        plain("D", &["D"], move |c| vec![inner(c)]),
        linear("out_proj", &["out_proj"], inner, text_hidden)
            .bias_from(field!(MambaConfig.output_layer))
            .into(),
    ])
}

/// Exports the Mamba size `name` as the typed config holds it, at `ssm_cfg.<name>`.
fn export_ssm_size(
    name: &'static str,
    read: fn(&MambaConfig) -> i64,
) -> impl Fn(Fl, &ExportContext) -> HfWrites + Send + Sync + 'static {
    move |fl, _| {
        let value = read(fl.config::<MambaConfig>()?);
        Ok(vec![(format!("ssm_cfg.{name}"), int(value.into())).into()])
    }
}

/// The Mamba size `name` an HF dict leaves to its default (`d_xb`: `hidden_size`; `dt_rank`:
/// `ceil(hidden_size / 16)`), `derive`d from the text model's `hidden_size`; without an int
/// `hidden_size`, a problem at `ssm_cfg.<name>`.
fn derived_from_hidden_size(hf: &Map, name: &str, derive: fn(i128) -> i128) -> Writes {
    text_hidden_size(hf)
        .map(|hidden| vec![(name.to_string(), int(derive(hidden)))])
        .map_err(|e| vec![Problem::at_hf(format!("ssm_cfg.{name}"), e)])
}

/// Apriel's gated delta-net mixer (`GatedDeltaNetConfig`), under `linear_attn_config.gdn_*`.
pub fn gdn() -> Section {
    Section::of::<GatedDeltaNetConfig>("apriel.gdn")
        .rename("value_heads", "linear_attn_config.gdn_num_value_heads")
        .rename("key_heads", "linear_attn_config.gdn_num_key_heads")
        .rename("key_head_dim", "linear_attn_config.gdn_key_head_dim")
        .rename("value_head_dim", "linear_attn_config.gdn_value_head_dim")
        .add(
            "convolution_layer",
            Decl::nested(
                "convolution_layer",
                convolution(Decl::rename(
                    "kernel_size",
                    "linear_attn_config.gdn_linear_conv_kernel_size",
                ))
                .build(),
            ),
        )
        .add(
            "normalization",
            Decl::nested("normalization", gdn_normalization().build()),
        )
        .add("sub_configs", Decl::ignored(GDN_UNMAPPED))
        .validate("no_biases", no_biases(GDN_LINEAR_LAYERS))
        .weight("layers", gdn_weights())
}

/// The gated delta-net's weights (both formats): `in_proj_qkvz`, `in_proj_ba`, `convolution`,
/// `out_proj`, `dt_bias`, `A_log`, `norm.weight`. No biases: the config rejects enabling any.
pub fn gdn_weights() -> WeightDecl {
    let value_heads = size_of(field!(GatedDeltaNetConfig.value_heads));
    let value_head_dim = size_of(field!(GatedDeltaNetConfig.value_head_dim));
    let q = |c: &WeightContext| {
        let key_heads = c.size(field!(GatedDeltaNetConfig.key_heads));
        key_heads.saturating_mul(c.size(field!(GatedDeltaNetConfig.key_head_dim)))
    };
    let v = move |c: &WeightContext| value_heads(c).saturating_mul(value_head_dim(c));
    let qkvz = move |c: &WeightContext| q(c).saturating_add(v(c)).saturating_mul(2);
    let ba = move |c: &WeightContext| value_heads(c).saturating_mul(2);
    WeightDecl::Group(vec![
        linear("in_proj_qkvz", &["in_proj_qkvz"], text_hidden, qkvz).into(),
        linear("in_proj_ba", &["in_proj_ba"], text_hidden, ba).into(),
        plain("convolution.weight", &["convolution.weight"], move |c| {
            vec![
                q(c).saturating_mul(2).saturating_add(v(c)),
                1,
                c.size(field!(GatedDeltaNetConfig.convolution_layer.kernel_size)),
            ]
        }),
        linear("out_proj", &["out_proj"], v, text_hidden).into(),
        plain("dt_bias", &["dt_bias"], move |c| vec![value_heads(c)]),
        plain("A_log", &["A_log"], move |c| vec![value_heads(c)]),
        plain("norm.weight", &["norm.weight"], move |c| vec![value_head_dim(c)]),
    ])
}

/// The mixers a block may hold, each with the HF module of its weights: attention under
/// `self_attn` (Mistral's names), Mamba and GDN under `mixer`.
pub fn mixers() -> Vec<(&'static str, Arc<Section>)> {
    vec![
        ("self_attn", llama::mistral_attention().build()),
        ("mixer", mamba().build()),
        ("mixer", gdn().build()),
    ]
}

/// The Mistral block (Mistral MLP, Llama RMS norm) whose mixer is any of `mixers`: the first
/// one's config, the weights of the one each position's type names.
pub fn block(mixers: Vec<(&'static str, Arc<Section>)>) -> Arc<Section> {
    let config = mixers[0].1.clone();
    llama::block(config, llama::mistral_mlp().build(), llama::normalization().build())
        .named("apriel.block")
        .replace_weight(
            "mixer",
            WeightDecl::Dispatch {
                config: field!(DecoderBlockConfig.mixer).into(),
                fast_llm: "mixer",
                sections: mixers,
            },
        )
        .build()
}

/// The `hybrid_block_layout` entries: `t` (Mistral attention), `m2` (Mamba2), `gdn`.
pub fn layout_entries() -> Vec<LayoutEntry> {
    let [attention, mamba, gdn] = <[_; 3]>::try_from(mixers()).unwrap_or_else(|_| unreachable!("three mixers"));
    vec![
        LayoutEntry {
            layout_name: "t",
            mixer_type: "attention",
            section: block(vec![attention]),
        },
        LayoutEntry {
            layout_name: "m2",
            mixer_type: "mamba",
            section: block(vec![mamba]),
        },
        LayoutEntry {
            layout_name: "gdn",
            mixer_type: "gdn",
            section: block(vec![gdn]),
        },
    ]
}

/// The apriel_hybrid_ssm text model (`GPTBaseModelConfig`): Mistral's root with the decoder a
/// `ListDispatch` over `hybrid_block_layout` / `num_hidden_layers`; its weights are Llama's
/// root's, the blocks under `model.layers` each with the weights of its mixer's type. Also the
/// text model of `llava_hybrid_ssm`.
pub fn base_model() -> Section {
    let entries = layout_entries();
    let head = llama::head(llama::normalization().build()).build();
    llama::base_model(block(mixers()), head)
        .named("apriel_hybrid_ssm.base_model")
        .replace(
            "decoder",
            Decl::list_dispatch("decoder", "hybrid_block_layout", "num_hidden_layers", entries),
        )
        .add(
            "class_written_keys",
            // Written by AprielHybridSSMConfig whatever the layout: `layer_types` is derived from
            // `hybrid_block_layout`, `linear_attn_config`'s defaults describe KDA layers the
            // layout cannot hold.
            Decl::ignored_hf(&[
                "layer_types",
                "linear_attn_config.short_conv_kernel_size",
                "linear_attn_config.head_dim",
                "linear_attn_config.num_heads",
            ]),
        )
}

/// The class default `ssm_cfg` (AprielHybridSSMConfig fills it key by key).
pub fn default_ssm_cfg() -> Value {
    let entries: [(&str, Value); 19] = [
        ("d_state", int(64)),
        ("n_v_heads", int(32)),
        ("n_qk_heads", int(32)),
        ("expand", int(1)),
        ("chunk_size", int(128)),
        ("activation", text("identity")),
        ("bias", boolean(false)),
        ("d_conv", int(4)),
        ("d_inner", int(4096)),
        ("d_xb", Value::Null),
        ("dt_rank", text("auto")),
        ("dt_min", float(0.001)),
        ("dt_max", float(0.1)),
        ("dt_init", text("random")),
        ("dt_scale", float(1.0)),
        ("dt_init_floor", float(1e-4)),
        ("conv_bias", boolean(true)),
        ("dt_proj_bias", boolean(true)),
        ("repeat_kv_before_conv", boolean(true)),
    ];
    Value::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
