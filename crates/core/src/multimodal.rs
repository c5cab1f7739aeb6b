//! What a multimodal wrapper's text model shares across formats: the Fast-LLM fields it holds,
//! and its HF sub-config (`text_config`), read with itself as the root its fallbacks read.

use fastllm_config::{Map, Value};

use crate::Problem;
use crate::engine::{import_rooted, under_hf};
use crate::section::{ImportContext, Section};

/// The Fast-LLM fields of the text model at a multimodal root: every architecture field of the
/// GPT root (`tests/primitives.rs` checks them against `GptBaseModelConfig`).
pub const TEXT_FIELDS: &[&str] = &[
    "embeddings",
    "decoder",
    "head",
    "hidden_size",
    "tied_embedding_weight",
    "peft",
];

/// The HF sub-config `key` of `hf` (a multimodal wrapper's `text_config`), empty when absent or
/// not a dict (the HF class check reports a wrong type).
pub fn sub_config(hf: &Map, key: &str) -> Map {
    hf.get(key).and_then(Value::as_map).cloned().unwrap_or_default()
}

/// Imports `sub` (the HF sub-config `key`, see [`sub_config`]) with `section`, `sub` being the
/// root its fallbacks read; problems are named under `key`.
pub fn import_sub_config(
    section: &Section,
    key: &str,
    sub: &Map,
    context: &ImportContext,
) -> Result<Map, Vec<Problem>> {
    import_rooted(section, sub, context).map_err(|problems| under_hf(key, problems))
}
