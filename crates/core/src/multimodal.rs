//! What a multimodal wrapper's text model shares across formats: the Fast-LLM fields it holds,
//! and its HF sub-config (`text_config`), read with itself as the root its fallbacks read
//! ([`TextConfig`], the declaration every wrapper format mounts its text tables with).

use std::sync::Arc;

use fastllm_config::{Map, Value};

use crate::Problem;
use crate::engine::{export_sub, import_rooted, under_hf};
use crate::primitives::Claims;
use crate::section::{Decl, HfWrite, ImportContext, Section};

/// The HF key a multimodal wrapper keeps its text model under.
const TEXT_CONFIG: &str = "text_config";

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

/// What a format adds to the exported `text_config` (e.g. a `model_type` its readers need).
type FinishExport = Arc<dyn Fn(&mut Map) + Send + Sync>;

/// What a format checks in an imported `text_config` beyond its tables (keys of the HF class
/// its tables do not read); the problems name the HF key under `text_config`.
type CheckImport = Arc<dyn Fn(&Map) -> Vec<Problem> + Send + Sync>;

/// The text model of a multimodal wrapper, as a declaration: the Fast-LLM root's text fields
/// ([`TEXT_FIELDS`]) ↔ the HF sub-config `text_config`, converted by a format's text tables
/// with the sub-config as the root their fallbacks read. Problems name their HF key under
/// `text_config` both ways. A format with more to say adds it with [`TextConfig::claiming`],
/// [`TextConfig::finishing_export`] and [`TextConfig::checking_import`].
pub struct TextConfig {
    tables: Arc<Section>,
    hf_keys: &'static [&'static str],
    finish_export: Option<FinishExport>,
    check_import: Option<CheckImport>,
}

impl TextConfig {
    /// The text model converted by `tables`, claiming `text_config` and everything under it
    /// that the tables read.
    pub fn new(tables: Arc<Section>) -> Self {
        TextConfig {
            tables,
            hf_keys: &[TEXT_CONFIG],
            finish_export: None,
            check_import: None,
        }
    }

    /// Claims `hf_keys` (`text_config` and the keys under it the format checks itself) in
    /// place of `text_config` alone.
    pub fn claiming(self, hf_keys: &'static [&'static str]) -> Self {
        TextConfig { hf_keys, ..self }
    }

    /// Runs `finish` on the exported `text_config` before it is written.
    pub fn finishing_export(self, finish: impl Fn(&mut Map) + Send + Sync + 'static) -> Self {
        TextConfig {
            finish_export: Some(Arc::new(finish)),
            ..self
        }
    }

    /// Runs `check` on the imported `text_config`; its problems come before the tables'.
    pub fn checking_import(self, check: impl Fn(&Map) -> Vec<Problem> + Send + Sync + 'static) -> Self {
        TextConfig {
            check_import: Some(Arc::new(check)),
            ..self
        }
    }
}

impl From<TextConfig> for Decl {
    fn from(text: TextConfig) -> Decl {
        let TextConfig {
            tables,
            hf_keys,
            finish_export,
            check_import,
        } = text;
        let (export_tables, import_tables) = (Arc::clone(&tables), Arc::clone(&tables));
        Decl::custom(
            Claims::subtree(TEXT_FIELDS, hf_keys),
            move |fl, context| {
                let (mut text_config, _) =
                    export_sub(&export_tables, fl, context).map_err(|e| under_hf(TEXT_CONFIG, e))?;
                if let Some(finish) = &finish_export {
                    finish(&mut text_config);
                }
                Ok(vec![HfWrite::new(TEXT_CONFIG, Value::Map(text_config))])
            },
            move |hf, context| {
                let text_config = sub_config(hf, TEXT_CONFIG);
                let mut problems = check_import.as_ref().map_or_else(Vec::new, |check| check(&text_config));
                match import_sub_config(&import_tables, TEXT_CONFIG, &text_config, context) {
                    Ok(fast_llm) if problems.is_empty() => Ok(fast_llm.into_iter().collect()),
                    Ok(_) => Err(problems),
                    Err(errors) => {
                        problems.extend(errors);
                        Err(problems)
                    }
                }
            },
        )
        .delegating_under(TEXT_CONFIG, vec![("", tables)])
        .into()
    }
}
