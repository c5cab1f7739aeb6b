//! Where a checkpoint keeps the HF keys the Fast-LLM model does not hold: read from an HF
//! `config.json` (after `--drop-key`), stored in and read back from a Fast-LLM `metadata.yaml`
//! (under `metadata.`[`METADATA_KEY`]).

use std::path::Path;

use fastllm_config::{BaseModelConfig, Map, Value};
use fastllm_core::carried::{METADATA_KEY, drop_keys};
use fastllm_core::{Carried, ConvertError, Direction, Handler};

use crate::CheckpointError;
use crate::convert::ConversionError;
use crate::read::read_document;

/// An input's config: the Fast-LLM model, the HF keys it carries, and the ones `--drop-key`
/// removed (with their values).
pub(crate) struct InputConfig {
    pub config: BaseModelConfig,
    pub carried: Carried,
    pub dropped: Vec<(String, Value)>,
}

/// An HF `config.json`: imported with `drop` removed first, and what it carries.
pub(crate) fn read_hf(path: &Path, handler: &Handler, drop: &[String]) -> Result<InputConfig, ConversionError> {
    let mut hf = read_document(path)?;
    let dropped = drop_keys(&mut hf, drop).map_err(|problems| ConvertError::Rejected {
        format: handler.name.to_string(),
        direction: Direction::Import,
        problems,
    })?;
    let config = handler.import(&hf)?;
    let carried = handler.carried(&hf, &config)?;
    Ok(InputConfig {
        config,
        carried,
        dropped,
    })
}

/// The carried keys stored in a Fast-LLM `metadata.yaml` (none when it has none).
pub(crate) fn stored(path: &Path, metadata: &Map) -> Result<Carried, CheckpointError> {
    match fastllm_core::dict::get(metadata, &format!("metadata.{METADATA_KEY}")) {
        None => Ok(Carried::none("fast_llm")),
        Some(value) => Carried::from_value(value)
            .map_err(|e| CheckpointError::invalid(path, format!("metadata.{METADATA_KEY}: {e}"))),
    }
}

/// Stores `carried` in `metadata.yaml`'s free-form `metadata:` dict (nothing when empty).
pub(crate) fn store(free_form: &mut Map, carried: &Carried) {
    if !carried.is_empty() {
        free_form.insert(METADATA_KEY.to_string(), carried.to_value());
    }
}
