//! The Apriel family's weight declarations, on its config tables. The tables reused from the
//! Llama family bring Llama's weights (embeddings, norms, head, a block's MLP and norms); these
//! add the mixers' and replace what the Apriel layouts name differently.
//!
//! Every parameter exists exactly when Fast-LLM's layer creates it: a linear layer's bias is its
//! *effective* bias (`<layer>.bias.enabled`, else the mixer's or MLP's default), as
//! `fastllm_layout` derives it. Where the HF model could not hold such a bias, the config
//! export already rejects the config (Apriel2 Mamba `conv_bias` / `dt_proj_bias`, attention K/V
//! biases that differ), so every planned tensor has its HF counterpart.
//!
//! HF names (relative to each section's HF prefix):
//! - `apriel_hybrid_ssm`: `model.layers.{i}`; attention under `self_attn` (Mistral's names), Mamba
//!   and GDN under `mixer` (Mamba's convolution is `conv1d`).
//! - `apriel2_text`: `model.decoder.blocks.{i}`, every mixer under `mixer`, stochastic sub-mixers
//!   under `mixer.mixers.{name}`; the MLP's `layer_1` is `gate_proj` + `up_proj` when gated, else
//!   `up_proj`.
//! - `apriel2`: apriel2_text's, plus `model.vision_encoder.{embeddings, encoder.blocks.{i},
//!   adapter}`; the patch embeddings are a `[Hv, 3, p, p]` convolution in HF; the adapter is
//!   `linear_1` / `linear_2`.

use std::sync::Arc;

use fastllm_core::Section;
use fastllm_core::weights::{Transform, WeightContext, WeightDecl, blocks, linear, nested, norm};
use fastllm_llama::sections::{self as llama, attention_weights, mlp_weights, text_hidden};

use crate::{apriel2, hybrid, multimodal};

fn vision_hidden(c: &WeightContext) -> usize {
    c.root_int("vision_encoder.hidden_size")
}

/// A parameter with the same name on both sides.
fn plain(
    name: &'static str,
    hf: &'static [&'static str],
    shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
) -> WeightDecl {
    WeightDecl::param(name, hf, Transform::Copy, shape)
}

/// Mamba (both formats): `in_proj`, `dt_in_proj`, `dt_proj`, `convolution` ↔ `conv1d`, `A_log`,
/// `D`, `out_proj`; each bias is its layer's effective bias (default `add_linear_biases`).
pub fn mamba(section: Section) -> Section {
    let inner = |c: &WeightContext| c.int("d_inner");
    let xb = |c: &WeightContext| c.int("d_xb");
    let rank = |c: &WeightContext| c.int("dt_rank");
    let conv = move |c: &WeightContext| {
        if c.flag("repeat_kv_before_conv") {
            inner(c)
        } else {
            xb(c)
        }
    };
    let in_proj = move |c: &WeightContext| inner(c).saturating_add(xb(c)).saturating_mul(2);
    section
        .weight(
            "in_proj",
            linear("in_proj", &["in_proj"], text_hidden, in_proj).bias_from("z_layer"),
        )
        .weight(
            "dt_in_proj",
            linear("dt_in_proj", &["dt_in_proj"], text_hidden, rank).bias_from("dt_input_layer"),
        )
        .weight(
            "dt_proj",
            linear("dt_proj", &["dt_proj"], rank, inner).bias_from("dt_layer"),
        )
        .weight(
            "convolution",
            plain("convolution.weight", &["conv1d.weight"], move |c| {
                vec![conv(c), 1, c.int("convolution_layer.kernel_size")]
            }),
        )
        .weight(
            "convolution.bias",
            plain("convolution.bias", &["conv1d.bias"], move |c| vec![conv(c)])
                .when(move |c| fastllm_core::weights::effective_bias(c, "convolution_layer")),
        )
        .weight(
            "A_log",
            plain("A_log", &["A_log"], move |c| vec![inner(c), c.int("state_size")]),
        )
        .weight("D", plain("D", &["D"], move |c| vec![inner(c)]))
        .weight(
            "out_proj",
            linear("out_proj", &["out_proj"], inner, text_hidden).bias_from("output_layer"),
        )
}

/// The gated delta-net (both formats): `in_proj_qkvz`, `in_proj_ba`, `convolution`, `out_proj`,
/// `dt_bias`, `A_log`, `norm.weight`. No biases: the config rejects enabling any.
pub fn gdn(section: Section) -> Section {
    let q = |c: &WeightContext| c.int("key_heads").saturating_mul(c.int("key_head_dim"));
    let v = |c: &WeightContext| c.int("value_heads").saturating_mul(c.int("value_head_dim"));
    let qkvz = move |c: &WeightContext| q(c).saturating_add(v(c)).saturating_mul(2);
    let ba = |c: &WeightContext| c.int("value_heads").saturating_mul(2);
    section
        .weight(
            "in_proj_qkvz",
            linear("in_proj_qkvz", &["in_proj_qkvz"], text_hidden, qkvz),
        )
        .weight("in_proj_ba", linear("in_proj_ba", &["in_proj_ba"], text_hidden, ba))
        .weight(
            "convolution",
            plain("convolution.weight", &["convolution.weight"], move |c| {
                vec![
                    q(c).saturating_mul(2).saturating_add(v(c)),
                    1,
                    c.int("convolution_layer.kernel_size"),
                ]
            }),
        )
        .weight("out_proj", linear("out_proj", &["out_proj"], v, text_hidden))
        .weight(
            "dt_bias",
            plain("dt_bias", &["dt_bias"], |c| vec![c.int("value_heads")]),
        )
        .weight("A_log", plain("A_log", &["A_log"], |c| vec![c.int("value_heads")]))
        .weight(
            "norm",
            plain("norm.weight", &["norm.weight"], |c| vec![c.int("value_head_dim")]),
        )
}

/// Kimi delta attention (apriel2): twelve projections and convolutions, `A_log`, `dt_bias`,
/// `norm.weight`. No biases: the config rejects enabling any.
pub fn kda(section: Section) -> Section {
    let projection = |c: &WeightContext| c.int("heads").saturating_mul(c.int("head_dim"));
    let head_dim = |c: &WeightContext| c.int("head_dim");
    let conv = move |c: &WeightContext| vec![projection(c), 1, c.int("convolution_layer.kernel_size")];
    section
        .weight(
            "projections",
            WeightDecl::linears([
                linear("q_proj", &["q_proj"], text_hidden, projection),
                linear("k_proj", &["k_proj"], text_hidden, projection),
                linear("v_proj", &["v_proj"], text_hidden, projection),
            ]),
        )
        .weight("q_conv", plain("q_conv.weight", &["q_conv.weight"], conv))
        .weight("k_conv", plain("k_conv.weight", &["k_conv.weight"], conv))
        .weight("v_conv", plain("v_conv.weight", &["v_conv.weight"], conv))
        .weight(
            "gates",
            WeightDecl::linears([
                linear("f_a_proj", &["f_a_proj"], text_hidden, head_dim),
                linear("f_b_proj", &["f_b_proj"], head_dim, projection),
                linear("g_a_proj", &["g_a_proj"], text_hidden, head_dim),
                linear("g_b_proj", &["g_b_proj"], head_dim, projection),
                linear("beta_proj", &["beta_proj"], text_hidden, |c| c.int("heads")),
                linear("o_proj", &["o_proj"], projection, text_hidden),
            ]),
        )
        .weight("A_log", plain("A_log", &["A_log"], |c| vec![c.int("heads")]))
        .weight("dt_bias", plain("dt_bias", &["dt_bias"], move |c| vec![projection(c)]))
        .weight(
            "norm",
            plain("norm.weight", &["norm.weight"], |c| vec![c.int("head_dim")]),
        )
}

/// A block's weights: the mixer chosen by its type (each with its HF prefix), the MLP under
/// `mlp`, `norm_1` ↔ `input_layernorm`, `norm_2` ↔ `post_attention_layernorm` (replacing what
/// Llama's block table declares, whose sections these tables replace).
fn block(
    section: Section,
    mixers: Vec<(&'static str, Arc<Section>)>,
    mlp: &Arc<Section>,
    norm: &Arc<Section>,
) -> Section {
    section
        .replace_weight(
            "mixer",
            WeightDecl::Dispatch {
                config: "mixer",
                fast_llm: "mixer",
                sections: mixers,
            },
        )
        .replace_weight("mlp", nested("mlp", "mlp", "mlp", mlp))
        .replace_weight("norm_1", nested("normalization", "norm_1", "input_layernorm", norm))
        .replace_weight(
            "norm_2",
            nested("normalization", "norm_2", "post_attention_layernorm", norm),
        )
}

/// The sections' copy without shared ownership, to change.
fn owned(section: Arc<Section>) -> Section {
    Arc::unwrap_or_clone(section)
}

/// `apriel_hybrid_ssm` with weights: Mistral's root, blocks under `model.layers` dispatched per
/// position on the mixer type (`t` → `self_attn`, `m2` / `gdn` → `mixer`).
pub fn hybrid_base_model() -> Section {
    let norm = llama::normalization().build();
    let mlp = llama::mistral_mlp().build();
    let mixers = vec![
        ("self_attn", llama::mistral_attention().build()),
        ("mixer", mamba(hybrid::mamba()).build()),
        ("mixer", gdn(hybrid::gdn()).build()),
    ];
    let block = block(owned(hybrid::block(llama::mistral_attention())), mixers, &mlp, &norm).build();
    // Llama's root weights (embeddings, these blocks under `model.layers`, the head) on the
    // hybrid root's config table.
    hybrid::base_model().with_weights_of(llama::base_model(block, llama::head(norm).build()))
}

/// The apriel2 text weights on `root` (an apriel2_text-shaped root table, which brings Llama's
/// embeddings and head): the blocks under `model.decoder.blocks`, each mixer under `mixer`
/// whatever its type.
fn apriel2_text_weights(root: Section) -> Section {
    let norm = apriel2::normalization().build();
    let leaf = || {
        vec![
            (
                "mixer",
                apriel2::attention()
                    .weight("layers", attention_weights(text_hidden))
                    .build(),
            ),
            ("mixer", mamba(apriel2::mamba()).build()),
            ("mixer", gdn(apriel2::gdn()).build()),
            ("mixer", kda(apriel2::kda()).build()),
        ]
    };
    let stochastic = apriel2::stochastic()
        .weight(
            "mixers",
            WeightDecl::TypedDict {
                config: "mixers",
                fast_llm: "mixers",
                hf: "mixers",
                sections: leaf().into_iter().map(|(_, s)| s).collect(),
            },
        )
        .build();
    let mut mixers = leaf();
    mixers.push(("mixer", stochastic));
    let mlp = apriel2::mlp().weight("layers", mlp_weights(text_hidden)).build();
    let block = block(owned(apriel2::text_block()), mixers, &mlp, &norm).build();
    root.replace_weight("decoder", blocks("decoder", "decoder", "model.decoder.blocks", &block))
}

/// `apriel2_text` with weights.
pub fn apriel2_base_model() -> Section {
    apriel2_text_weights(apriel2::base_model())
}

/// The vision adapter: `layer_1` ↔ `linear_1`, `layer_2` ↔ `linear_2`ᵀ (to the text hidden size);
/// biases follow `add_linear_biases` (the config rejects per-layer overrides).
fn adapter(section: Section) -> Section {
    let size = |c: &WeightContext| c.int("intermediate_size");
    let layer_1 = move |c: &WeightContext| {
        if c.flag("gated") {
            size(c).saturating_mul(2)
        } else {
            size(c)
        }
    };
    section
        .weight(
            "layer_1",
            linear("layer_1", &["linear_1"], vision_hidden, layer_1).bias_from("layer_1"),
        )
        .weight(
            "layer_2",
            (linear("layer_2", &["linear_2"], size, text_hidden).transposed()).bias_from("layer_2"),
        )
}

/// The vision encoder's weights (relative to `vision_encoder` / `model.vision_encoder`).
fn vision_encoder() -> Section {
    let norm = (apriel2::normalization())
        .replace_weight("weight", norm(vision_hidden))
        .build();
    let patch = multimodal::patch_embeddings()
        .weight(
            "patch_embeddings",
            WeightDecl::reshaped(
                "patch_embeddings.weight",
                "patch_embeddings.weight",
                |c| {
                    vec![
                        vision_hidden(c),
                        c.int("patch_height")
                            .saturating_mul(c.int("patch_width"))
                            .saturating_mul(3),
                    ]
                },
                |c| vec![vision_hidden(c), 3, c.int("patch_height"), c.int("patch_width")],
            ),
        )
        .weight(
            "normalization",
            nested("normalization", "normalization", "normalization", &norm),
        )
        .build();
    let attention = multimodal::vision_attention().weight("layers", attention_weights(vision_hidden));
    let mlp = multimodal::vision_mlp()
        .weight("layers", mlp_weights(vision_hidden))
        .build();
    let block = block(
        apriel2::block(
            vec![multimodal::vision_attention().build()],
            multimodal::vision_mlp().build(),
            apriel2::normalization().build(),
        )
        .named("apriel2.vision_block"),
        vec![("mixer", attention.build())],
        &mlp,
        &norm,
    )
    .build();
    multimodal::vision_encoder()
        .weight("embeddings", nested("embeddings", "embeddings", "embeddings", &patch))
        .weight("encoder", blocks("encoder", "encoder", "encoder.blocks", &block))
        .weight(
            "adapter",
            nested(
                "adapter",
                "adapter",
                "adapter",
                &adapter(multimodal::vision_mlp()).build(),
            ),
        )
}

/// `apriel2` (multimodal) with weights: apriel2_text's, plus the vision encoder under
/// `model.vision_encoder`.
pub fn multimodal_base_model() -> Section {
    apriel2_text_weights(multimodal::base_model()).weight(
        "vision_encoder",
        nested(
            "vision_encoder",
            "vision_encoder",
            "model.vision_encoder",
            &vision_encoder().build(),
        ),
    )
}
