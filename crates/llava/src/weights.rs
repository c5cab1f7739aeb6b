//! The Llava roots' weights: where the vision encoder, the adapter and the text model (each
//! declaring its own) sit in the HF checkpoint.
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

use fastllm_core::config::MultiModalBaseModelConfig;
use fastllm_core::weights::{nested, under_hf};
use fastllm_core::{Section, field};

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
            nested(field!(MultiModalBaseModelConfig.vision_encoder), "vision_tower", vision),
        )
        .weight(
            "adapter",
            nested(
                field!(MultiModalBaseModelConfig.vision_encoder.adapter),
                "multi_modal_projector",
                adapter,
            ),
        )
}

/// A Llava root's weights: the vision encoder and adapter of `parts` (`vision_weights`), then its `text` (the
/// text model's root: Llama's, or the `apriel_hybrid_ssm` one with its blocks dispatched per
/// mixer type) on the same (root) config, mounted under `language_model`
/// (`language_model.model.*`, `language_model.lm_head.weight`).
///
/// `head.output_weights` ↔ `language_model.lm_head.weight` only without tied embeddings: Fast-LLM
/// never stores the tied duplicate. (The reference declares it unconditionally, so a tied model
/// would expect or emit a tensor Fast-LLM does not have; formats.md §12.4.) The reference also
/// names every `llava_hybrid_ssm` text block with attention names and puts its head outside
/// `language_model` (formats.md §13): Mamba and GDN blocks could not convert and the head would
/// miss the HF model's tensors. Declared here as the HF model holds them.
pub fn base_model(section: Section, parts: crate::Parts) -> Section {
    text_under_language_model(vision_weights(section, &parts.vision, &parts.adapter), parts.text)
}

/// `text` (a text model's root weights, read on the multimodal root config, where Fast-LLM keeps
/// the text fields) under the HF prefix `language_model`.
fn text_under_language_model(section: Section, text: Arc<Section>) -> Section {
    section.weight("language_model", under_hf("language_model", &text))
}
