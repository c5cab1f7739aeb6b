//! The Apriel family's weight declarations, added to copies of its config tables by the three
//! formats (the shared tables stay weight-free: `llava_hybrid_ssm` reuses [`hybrid::base_model`]
//! for its config only).
//!
//! Every parameter exists exactly when Fast-LLM's layer creates it: a linear layer's bias is its
//! *effective* bias (`<layer>.bias.enabled`, else the mixer's or MLP's default), as
//! `fastllm_core::layout` derives it. Where the HF model could not hold such a bias, the config
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
use fastllm_core::weights::{Transform, WeightContext, WeightDecl};
use fastllm_llama::sections as llama;
use fastllm_llama::weights as llama_weights;
use fastllm_llama::weights::{
    attention_over as attention, linear_bias, mlp_over as mlp, norm_over as norm, text_hidden,
};

use crate::{apriel2, hybrid, multimodal};

fn vision_hidden(c: &WeightContext) -> usize {
    c.root_int("vision_encoder.hidden_size")
}

/// A linear layer's weight `[out, in]` and its bias `[out]` when `bias` holds.
fn linear(
    section: Section,
    name: &'static str,
    (weight, hf_weight): (&'static str, &'static [&'static str]),
    (bias_name, hf_bias): (&'static str, &'static [&'static str]),
    shape: impl Fn(&WeightContext) -> [usize; 2] + Send + Sync + Clone + 'static,
    bias: impl Fn(&WeightContext) -> bool + Send + Sync + 'static,
) -> Section {
    let out = shape.clone();
    section
        .weight(
            name,
            WeightDecl::param(weight, hf_weight, Transform::Copy, move |c| shape(c).to_vec()),
        )
        .weight(
            bias_name,
            WeightDecl::param(bias_name, hf_bias, Transform::Copy, move |c| vec![out(c)[0]]).when(bias),
        )
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
    let section = linear(
        section,
        "in_proj",
        ("in_proj.weight", &["in_proj.weight"]),
        ("in_proj.bias", &["in_proj.bias"]),
        move |c| [inner(c).saturating_add(xb(c)).saturating_mul(2), text_hidden(c)],
        linear_bias("z_layer"),
    );
    let section = linear(
        section,
        "dt_in_proj",
        ("dt_in_proj.weight", &["dt_in_proj.weight"]),
        ("dt_in_proj.bias", &["dt_in_proj.bias"]),
        move |c| [rank(c), text_hidden(c)],
        linear_bias("dt_input_layer"),
    );
    let section = linear(
        section,
        "dt_proj",
        ("dt_proj.weight", &["dt_proj.weight"]),
        ("dt_proj.bias", &["dt_proj.bias"]),
        move |c| [inner(c), rank(c)],
        linear_bias("dt_layer"),
    );
    let section = section
        .weight(
            "convolution",
            plain("convolution.weight", &["conv1d.weight"], move |c| {
                vec![conv(c), 1, c.int("convolution_layer.kernel_size")]
            }),
        )
        .weight(
            "convolution.bias",
            plain("convolution.bias", &["conv1d.bias"], move |c| vec![conv(c)]).when(linear_bias("convolution_layer")),
        )
        .weight(
            "A_log",
            plain("A_log", &["A_log"], move |c| vec![inner(c), c.int("state_size")]),
        )
        .weight("D", plain("D", &["D"], move |c| vec![inner(c)]));
    linear(
        section,
        "out_proj",
        ("out_proj.weight", &["out_proj.weight"]),
        ("out_proj.bias", &["out_proj.bias"]),
        move |c| [text_hidden(c), inner(c)],
        linear_bias("output_layer"),
    )
}

/// The gated delta-net (both formats): `in_proj_qkvz`, `in_proj_ba`, `convolution`, `out_proj`,
/// `dt_bias`, `A_log`, `norm.weight`. No biases: the config rejects enabling any.
pub fn gdn(section: Section) -> Section {
    let q = |c: &WeightContext| c.int("key_heads").saturating_mul(c.int("key_head_dim"));
    let v = |c: &WeightContext| c.int("value_heads").saturating_mul(c.int("value_head_dim"));
    section
        .weight(
            "in_proj_qkvz",
            plain("in_proj_qkvz.weight", &["in_proj_qkvz.weight"], move |c| {
                vec![q(c).saturating_add(v(c)).saturating_mul(2), text_hidden(c)]
            }),
        )
        .weight(
            "in_proj_ba",
            plain("in_proj_ba.weight", &["in_proj_ba.weight"], |c| {
                vec![c.int("value_heads").saturating_mul(2), text_hidden(c)]
            }),
        )
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
        .weight(
            "out_proj",
            plain("out_proj.weight", &["out_proj.weight"], move |c| {
                vec![text_hidden(c), v(c)]
            }),
        )
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
    let kernel = |c: &WeightContext| c.int("convolution_layer.kernel_size");
    section
        .weight(
            "q_proj",
            plain("q_proj.weight", &["q_proj.weight"], move |c| {
                vec![projection(c), text_hidden(c)]
            }),
        )
        .weight(
            "k_proj",
            plain("k_proj.weight", &["k_proj.weight"], move |c| {
                vec![projection(c), text_hidden(c)]
            }),
        )
        .weight(
            "v_proj",
            plain("v_proj.weight", &["v_proj.weight"], move |c| {
                vec![projection(c), text_hidden(c)]
            }),
        )
        .weight(
            "q_conv",
            plain("q_conv.weight", &["q_conv.weight"], move |c| {
                vec![projection(c), 1, kernel(c)]
            }),
        )
        .weight(
            "k_conv",
            plain("k_conv.weight", &["k_conv.weight"], move |c| {
                vec![projection(c), 1, kernel(c)]
            }),
        )
        .weight(
            "v_conv",
            plain("v_conv.weight", &["v_conv.weight"], move |c| {
                vec![projection(c), 1, kernel(c)]
            }),
        )
        .weight(
            "f_a_proj",
            plain("f_a_proj.weight", &["f_a_proj.weight"], |c| {
                vec![c.int("head_dim"), text_hidden(c)]
            }),
        )
        .weight(
            "f_b_proj",
            plain("f_b_proj.weight", &["f_b_proj.weight"], move |c| {
                vec![projection(c), c.int("head_dim")]
            }),
        )
        .weight(
            "g_a_proj",
            plain("g_a_proj.weight", &["g_a_proj.weight"], |c| {
                vec![c.int("head_dim"), text_hidden(c)]
            }),
        )
        .weight(
            "g_b_proj",
            plain("g_b_proj.weight", &["g_b_proj.weight"], move |c| {
                vec![projection(c), c.int("head_dim")]
            }),
        )
        .weight(
            "beta_proj",
            plain("beta_proj.weight", &["beta_proj.weight"], |c| {
                vec![c.int("heads"), text_hidden(c)]
            }),
        )
        .weight(
            "o_proj",
            plain("o_proj.weight", &["o_proj.weight"], move |c| {
                vec![text_hidden(c), projection(c)]
            }),
        )
        .weight("A_log", plain("A_log", &["A_log"], |c| vec![c.int("heads")]))
        .weight("dt_bias", plain("dt_bias", &["dt_bias"], move |c| vec![projection(c)]))
        .weight(
            "norm",
            plain("norm.weight", &["norm.weight"], |c| vec![c.int("head_dim")]),
        )
}

/// A block's weights: the mixer chosen by its type (each with its HF prefix), the MLP under
/// `mlp`, `norm_1` ↔ `input_layernorm`, `norm_2` ↔ `post_attention_layernorm`.
fn block(
    section: Section,
    mixers: Vec<(&'static str, Arc<Section>)>,
    mlp: &Arc<Section>,
    norm: &Arc<Section>,
) -> Section {
    section
        .weight(
            "mixer",
            WeightDecl::Dispatch {
                config: "mixer",
                fast_llm: "mixer",
                sections: mixers,
            },
        )
        .weight(
            "mlp",
            WeightDecl::Nested {
                config: "mlp",
                fast_llm: "mlp",
                hf: "mlp",
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

/// The sections' copy without shared ownership, to add weights to.
fn owned(section: Arc<Section>) -> Section {
    Arc::unwrap_or_clone(section)
}

/// `apriel_hybrid_ssm` with weights: Mistral's root, blocks under `model.layers` dispatched per
/// position on the mixer type (`t` → `self_attn`, `m2` / `gdn` → `mixer`).
pub fn hybrid_base_model() -> Section {
    let norm = llama_weights::norm(llama::normalization()).build();
    let mlp = llama_weights::mlp(llama::mistral_mlp()).build();
    let mixers = vec![
        (
            "self_attn",
            llama_weights::attention(llama::mistral_attention()).build(),
        ),
        ("mixer", mamba(hybrid::mamba()).build()),
        ("mixer", gdn(hybrid::gdn()).build()),
    ];
    let block = block(owned(hybrid::block(llama::mistral_attention())), mixers, &mlp, &norm).build();
    llama_weights::base_model(hybrid::base_model(), &block, &norm)
}

/// The apriel2 text weights on `root` (an apriel2_text-shaped root table): Llama's root with the
/// blocks under `model.decoder.blocks`, each mixer under `mixer` whatever its type.
fn apriel2_text_weights(root: Section) -> Section {
    let norm = norm(apriel2::normalization(), text_hidden).build();
    let leaf = || {
        vec![
            ("mixer", attention(apriel2::attention(), text_hidden).build()),
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
    let mlp = mlp(apriel2::mlp(), text_hidden).build();
    let block = block(owned(apriel2::text_block()), mixers, &mlp, &norm).build();
    llama_weights::base_model(root, &block, &norm).replace_weight(
        "decoder",
        WeightDecl::Blocks {
            config: "decoder",
            fast_llm: "decoder",
            hf: "model.decoder.blocks",
            block,
        },
    )
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
            plain("layer_1.weight", &["linear_1.weight"], move |c| {
                vec![layer_1(c), vision_hidden(c)]
            }),
        )
        .weight(
            "layer_1_bias",
            plain("layer_1.bias", &["linear_1.bias"], move |c| vec![layer_1(c)]).when(linear_bias("layer_1")),
        )
        .weight(
            "layer_2",
            WeightDecl::param("layer_2.weight", &["linear_2.weight"], Transform::Transpose, move |c| {
                vec![size(c), text_hidden(c)]
            }),
        )
        .weight(
            "layer_2_bias",
            plain("layer_2.bias", &["linear_2.bias"], |c| vec![text_hidden(c)]).when(linear_bias("layer_2")),
        )
}

/// The vision encoder's weights (relative to `vision_encoder` / `model.vision_encoder`).
fn vision_encoder() -> Section {
    let norm = norm(apriel2::normalization(), vision_hidden).build();
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
            WeightDecl::Nested {
                config: "normalization",
                fast_llm: "normalization",
                hf: "normalization",
                section: norm.clone(),
            },
        )
        .build();
    let mixers = vec![(
        "mixer",
        attention(multimodal::vision_attention(), vision_hidden).build(),
    )];
    let mlp = mlp(multimodal::vision_mlp(), vision_hidden).build();
    let block = block(
        apriel2::block(
            vec![multimodal::vision_attention().build()],
            multimodal::vision_mlp().build(),
            apriel2::normalization().build(),
        )
        .named("apriel2.vision_block"),
        mixers,
        &mlp,
        &norm,
    )
    .build();
    multimodal::vision_encoder()
        .weight(
            "embeddings",
            WeightDecl::Nested {
                config: "embeddings",
                fast_llm: "embeddings",
                hf: "embeddings",
                section: patch,
            },
        )
        .weight(
            "encoder",
            WeightDecl::Blocks {
                config: "encoder",
                fast_llm: "encoder",
                hf: "encoder.blocks",
                block,
            },
        )
        .weight(
            "adapter",
            WeightDecl::Nested {
                config: "adapter",
                fast_llm: "adapter",
                hf: "adapter",
                section: adapter(multimodal::vision_mlp()).build(),
            },
        )
}

/// `apriel2` (multimodal) with weights: apriel2_text's, plus the vision encoder under
/// `model.vision_encoder`.
pub fn multimodal_base_model() -> Section {
    apriel2_text_weights(multimodal::base_model()).weight(
        "vision_encoder",
        WeightDecl::Nested {
            config: "vision_encoder",
            fast_llm: "vision_encoder",
            hf: "model.vision_encoder",
            section: vision_encoder().build(),
        },
    )
}
