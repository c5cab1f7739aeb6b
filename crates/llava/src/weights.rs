//! The Llava formats' weight declarations, added to the config tables by the formats that
//! convert weights (see `fastllm_llama::weights` for the convention).
//!
//! Names are the legacy Llava ones (transformers < 4.52), as Fast-LLM reads and writes them:
//! `language_model.model.*` / `language_model.lm_head.weight` for the text model,
//! `vision_tower.*` for the Pixtral encoder, `multi_modal_projector.*` for the adapter.
//! Checkpoints saved by transformers >= 4.52 (`model.language_model.*`, `lm_head.weight`,
//! `model.vision_tower.*`, `model.multi_modal_projector.*`) import too; exports write the legacy
//! names, which every transformers version loads.
//! The Pixtral sections' shapes are over the vision hidden size `Hv`
//! (`vision_encoder.hidden_size`), the text ones over the root `hidden_size`.

use std::sync::Arc;

use fastllm_core::Section;
use fastllm_core::config::GptBaseModelConfig;
use fastllm_core::weights::{Transform, WeightContext, WeightDecl};
use fastllm_llama::weights::{self as llama_weights, text_hidden};

/// The vision hidden size `Hv`.
fn vision_hidden(c: &WeightContext) -> usize {
    c.root_int("vision_encoder.hidden_size")
}

fn linear_biases(c: &WeightContext) -> bool {
    c.flag("add_linear_biases")
}

/// Pixtral's image channels (Fast-LLM's `PatchEmbeddingsConfig.input_channels`, RGB).
const CHANNELS: usize = 3;

/// A vision norm's weight (`[Hv]`).
pub fn vision_norm(section: Section) -> Section {
    llama_weights::norm_over(section, vision_hidden)
}

/// Pixtral's attention over `Hv` (biases pinned off by the config side).
pub fn vision_attention(section: Section) -> Section {
    llama_weights::attention_over(section, vision_hidden)
}

/// Pixtral's gated MLP over `Hv`.
pub fn vision_mlp(section: Section) -> Section {
    llama_weights::mlp_over(section, vision_hidden)
}

/// A Pixtral block: `attention`, `feed_forward`, `attention_norm`, `ffn_norm`.
pub fn vision_block(section: Section, mixer: &Arc<Section>, mlp: &Arc<Section>, norm: &Arc<Section>) -> Section {
    let nested =
        |config: &'static str, fast_llm: &'static str, hf: &'static str, section: &Arc<Section>| WeightDecl::Nested {
            config,
            fast_llm,
            hf,
            section: section.clone(),
        };
    section
        .weight("mixer", nested("mixer", "mixer", "attention", mixer))
        .weight("mlp", nested("mlp", "mlp", "feed_forward", mlp))
        .weight("norm_1", nested("normalization", "norm_1", "attention_norm", norm))
        .weight("norm_2", nested("normalization", "norm_2", "ffn_norm", norm))
}

/// Pixtral's patch embeddings: the conv kernel `patch_conv.weight` `[Hv, 3, ph, pw]` is
/// Fast-LLM's linear `patch_embeddings.weight` `[Hv, 3·ph·pw]` (same bytes, channel-major), no
/// bias (the config side rejects one); then `ln_pre`.
pub fn patch_embeddings(section: Section, norm: &Arc<Section>) -> Section {
    section
        .weight(
            "patch_embeddings",
            WeightDecl::reshaped(
                "patch_embeddings.weight",
                "patch_conv.weight",
                |c| {
                    vec![
                        vision_hidden(c),
                        c.int("patch_height")
                            .saturating_mul(c.int("patch_width"))
                            .saturating_mul(CHANNELS),
                    ]
                },
                |c| vec![vision_hidden(c), CHANNELS, c.int("patch_height"), c.int("patch_width")],
            ),
        )
        .weight(
            "normalization",
            WeightDecl::Nested {
                config: "normalization",
                fast_llm: "normalization",
                hf: "ln_pre",
                section: norm.clone(),
            },
        )
}

/// The vision encoder: embeddings (flat under `vision_tower`), blocks under
/// `vision_tower.transformer.layers`. The adapter is declared at the root ([`adapter`]).
pub fn vision_model(section: Section, embeddings: &Arc<Section>, block: &Arc<Section>) -> Section {
    section
        .weight(
            "embeddings",
            WeightDecl::Nested {
                config: "embeddings",
                fast_llm: "embeddings",
                hf: "",
                section: embeddings.clone(),
            },
        )
        .weight(
            "encoder",
            WeightDecl::Blocks {
                config: "encoder",
                fast_llm: "encoder",
                hf: "transformer.layers",
                block: block.clone(),
            },
        )
}

/// The projector `Hv → I_a → H` (not gated): `layer_1` ↔ `linear_1`, `layer_2` ↔ `linear_2`ᵀ
/// (Fast-LLM stores `layer_2` as `[I_a, H]`); biases with `add_linear_biases`.
pub fn adapter(section: Section) -> Section {
    let size = |c: &WeightContext| c.int("intermediate_size");
    section
        .weight(
            "layer_1",
            WeightDecl::param("layer_1.weight", &["linear_1.weight"], Transform::Copy, move |c| {
                vec![size(c), vision_hidden(c)]
            }),
        )
        .weight(
            "layer_1_bias",
            WeightDecl::param("layer_1.bias", &["linear_1.bias"], Transform::Copy, move |c| {
                vec![size(c)]
            })
            .when(linear_biases),
        )
        .weight(
            "layer_2",
            WeightDecl::param("layer_2.weight", &["linear_2.weight"], Transform::Transpose, move |c| {
                vec![size(c), text_hidden(c)]
            }),
        )
        .weight(
            "layer_2_bias",
            WeightDecl::param("layer_2.bias", &["linear_2.bias"], Transform::Copy, |c| {
                vec![text_hidden(c)]
            })
            .when(linear_biases),
        )
}

/// The vision side of a Llava root: the encoder under `vision_tower`, the adapter (at
/// `vision_encoder.adapter`) under `multi_modal_projector`.
fn vision_weights(section: Section, vision: &Arc<Section>, adapter: &Arc<Section>) -> Section {
    section
        // transformers >= 4.52 saves the same tensors under these names (its
        // `_checkpoint_conversion_mapping` for Llava); both spellings import.
        .hf_prefix_alias("language_model.model.", "model.language_model.")
        .hf_prefix_alias("language_model.lm_head.", "lm_head.")
        .hf_prefix_alias("vision_tower.", "model.vision_tower.")
        .hf_prefix_alias("multi_modal_projector.", "model.multi_modal_projector.")
        .weight(
            "vision_encoder",
            WeightDecl::Nested {
                config: "vision_encoder",
                fast_llm: "vision_encoder",
                hf: "vision_tower",
                section: vision.clone(),
            },
        )
        .weight(
            "adapter",
            WeightDecl::Nested {
                config: "vision_encoder.adapter",
                fast_llm: "vision_encoder.adapter",
                hf: "multi_modal_projector",
                section: adapter.clone(),
            },
        )
}

/// The Llava root: the vision encoder and adapter ([`vision_weights`]), then Llama's root weights
/// on the same (root) config mounted under `language_model` (`language_model.model.*`,
/// `language_model.lm_head.weight`).
///
/// `head.output_weights` ↔ `language_model.lm_head.weight` only without tied embeddings: Fast-LLM
/// never stores the tied duplicate. (The reference declares it unconditionally, so a tied model
/// would expect or emit a tensor Fast-LLM does not have; formats.md §12.4.)
pub fn base_model(
    section: Section,
    block: &Arc<Section>,
    norm: &Arc<Section>,
    vision: &Arc<Section>,
    adapter: &Arc<Section>,
) -> Section {
    let text = llama_weights::base_model(Section::of::<GptBaseModelConfig>("llava.text_weights"), block, norm);
    text_under_language_model(vision_weights(section, vision, adapter), text.build())
}

/// The `llava_hybrid_ssm` root: the vision encoder and adapter ([`vision_weights`]), then
/// `text`, the `apriel_hybrid_ssm` root's weight tree (`model.embed_tokens`, `model.layers.{i}`
/// dispatched per mixer type, `model.norm`, `lm_head` unless tied), mounted under
/// `language_model` on the same (root) config.
///
/// The reference names every text block with attention names (its Llava block class) and puts
/// the head at `model.norm` / `lm_head` outside `language_model` (formats.md §13): Mamba and GDN
/// blocks could not convert and the head would miss the HF model's tensors. Declared here as the
/// HF model holds them: the Apriel hybrid names, all under `language_model`.
pub fn hybrid_base_model(
    section: Section,
    vision: &Arc<Section>,
    adapter: &Arc<Section>,
    text: Arc<Section>,
) -> Section {
    text_under_language_model(vision_weights(section, vision, adapter), text)
}

/// `text` (a text model's root weights, read on the multimodal root config, where Fast-LLM keeps
/// the text fields) under the HF prefix `language_model`.
fn text_under_language_model(section: Section, text: Arc<Section>) -> Section {
    section.weight(
        "language_model",
        WeightDecl::Nested {
            config: "",
            fast_llm: "",
            hf: "language_model",
            section: text,
        },
    )
}
