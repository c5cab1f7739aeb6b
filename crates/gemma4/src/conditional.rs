//! The published Gemma 4 checkpoints (`gemma4_conditional`, HF `model_type` `gemma4`,
//! `Gemma4ForConditionalGeneration`): the `gemma4` text model inside the multimodal wrapper.
//!
//! Every released Gemma 4 (E2B, E4B, 26B-A4B, 31B, base and `-it`) is a `Gemma4Config`: the
//! text model under `text_config` (a `Gemma4TextConfig`, the `gemma4` format's class), a vision
//! tower under `vision_config`, an audio tower under `audio_config` on the small models, and the
//! media token ids at the root. Weights: the text model under `model.language_model.*` (the
//! `gemma4` names below `model.`), `lm_head.weight` (absent when tied, as released), the towers
//! under `model.vision_tower.*` / `model.embed_vision.*` and `model.audio_tower.*` /
//! `model.embed_audio.*`.
//!
//! The text model converts with the `gemma4` tables, mounted under `text_config` ([`text_model`])
//! and its weights under `model.language_model` ([`base_model`]): nothing is
//! re-declared. The towers are **not converted**: Fast-LLM's GPT model has no place for them, and
//! its multimodal model holds a Pixtral-style encoder, not Gemma 4's (a learned 2-D position
//! table, per-block q/k/v norms and sandwich norms, a pooler and output standardisation, an
//! embedder with a weightless pre-norm). They are declared [`Unconverted`]: a checkpoint with a
//! tower fails to convert, naming every key, unless the user passes `--text-only`; then the
//! conversion drops the tower and lists every dropped key and tensor.
//!
//! Export writes a text-only `Gemma4ForConditionalGeneration`: `vision_config` and
//! `audio_config` `null`, the class's token ids. transformers builds no tower for a `null`
//! sub-config (`Gemma4Model.vision_tower` / `embed_vision` / `audio_tower` / `embed_audio` are
//! `None`), so the export loads, and imports back without `--text-only`.
//!
//! The top-level `tie_word_embeddings` (`Gemma4Config`'s own) must agree with the text
//! model's: the wrapper ties `lm_head` to `model.language_model.embed_tokens`.
//!
//! `Gemma4Config` declares `text_config` its text root ([`classes::gemma4`]), so the metadata a
//! conversion carries (the text model's context length, token ids, dtype) moves between
//! `text_config` here and the root of `gemma4`.
//!
//! [`classes::gemma4`]: crate::classes::gemma4
//!
//! Sources (facts only):
//! * transformers `src/transformers/models/gemma4/configuration_gemma4.py` (commit `008e5743`):
//!   `Gemma4Config`'s keys and defaults, `sub_configs`, `null` towers allowed;
//! * `modeling_gemma4.py` (commit `0246b4f3`): `Gemma4Model` (`language_model`,
//!   `vision_tower`, `embed_vision`, `audio_tower`, `embed_audio`, built only for a non-`null`
//!   sub-config), `Gemma4ForConditionalGeneration` (`model`, `lm_head` tied to
//!   `model.language_model.embed_tokens.weight`), the vision tower's modules;
//! * `convert_gemma4_weights.py` (commit `0f3f0632`): the released variants' configs (the extra
//!   root key `vision_soft_tokens_per_image`);
//! * `google/gemma-4-31B-it` on the HF hub (release commit `419b2efe`, `config.json` of 176
//!   lines), reproduced in `tests/data/gemma-4-31B-it.config.json` (see `tests/data/README.md`),
//!   and `google/gemma-4-26B-A4B-it` in `tests/data/gemma-4-26B-A4B-it.config.json`; their
//!   root keys `eoa_token_id` and `vision_soft_tokens_per_image` are outside the class.

use std::sync::Arc;

use fastllm_core::config::{GptBaseModelConfig, Value};
use fastllm_core::dict::show;
use fastllm_core::multimodal::TextConfig;
use fastllm_core::{Claims, Decl, Problem, Section, Unconverted};

use crate::sections;
use fastllm_core::values::text;
use fastllm_core::weights::under_hf;

/// The vision tower (all released sizes).
pub const VISION: Unconverted = Unconverted {
    part: "vision tower",
    keys: &[
        "vision_config",
        "image_token_id",
        "video_token_id",
        "boi_token_id",
        "eoi_token_id",
        "vision_soft_tokens_per_image",
    ],
    tensor_prefixes: &["model.vision_tower.", "model.embed_vision."],
};

/// The audio tower (E2B and E4B).
pub const AUDIO: Unconverted = Unconverted {
    part: "audio tower",
    keys: &[
        "audio_config",
        "audio_token_id",
        "boa_token_id",
        "eoa_token_index",
        "eoa_token_id",
    ],
    tensor_prefixes: &["model.audio_tower.", "model.embed_audio."],
};

/// The text model: the Fast-LLM root ↔ `text_config`, converted by `text_base` with the sub-dict
/// as its root (the `gemma4` tables read their fallbacks from the text config).
pub fn text_model(text_base: Arc<Section>) -> Decl {
    TextConfig::new(text_base).into()
}

/// The wrapper's `tie_word_embeddings`: written from `tied_embedding_weight`; on import it must
/// agree with `text_config.tie_word_embeddings` (which the text model imports).
fn tie_word_embeddings() -> Decl {
    Decl::custom(
        Claims::exact(&["tied_embedding_weight"], &["tie_word_embeddings"]),
        |fl, _| {
            let tied = Value::Bool(fl.text_model()?.tied_embedding_weight);
            Ok(vec![("tie_word_embeddings".to_string(), tied).into()])
        },
        |hf, _| {
            let (root, text_model) = (
                hf.get("tie_word_embeddings").unwrap_or(&Value::Null),
                fastllm_core::dict::get(hf, "text_config.tie_word_embeddings").unwrap_or(&Value::Null),
            );
            if root == text_model {
                return Ok(vec![]);
            }
            Err(vec![Problem::at_hf(
                "tie_word_embeddings",
                format!(
                    "{} differs from text_config.tie_word_embeddings {}: one model cannot both tie and untie \
                     lm_head and the text embeddings",
                    show(root),
                    show(text_model)
                ),
            )])
        },
    )
    .into()
}

/// The root: the text model under `text_config` (its weights under `model.language_model`), the
/// wrapper's own keys, and the towers declared as not converted.
pub fn base_model() -> Section {
    let text_base = sections::base_model().named("gemma4_conditional.text_model").build();
    Section::of::<GptBaseModelConfig>("gemma4_conditional.base_model")
        .weight("text_model", under_hf("model.language_model", &text_base))
        .weight("output", sections::output_weights())
        .add("text_model", text_model(text_base))
        // transformers reads any `text_config` as a Gemma4TextConfig; another name is a mistake.
        .add(
            "text_model_type",
            Decl::const_export("text_config.model_type", text("gemma4_text")),
        )
        .add("tie_word_embeddings", tie_word_embeddings())
        .unconverted(VISION)
        .unconverted(AUDIO)
}
