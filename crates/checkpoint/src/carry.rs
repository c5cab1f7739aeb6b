//! Where a checkpoint keeps the HF keys the Fast-LLM model does not hold: read from an HF
//! `config.json` (after `--drop-key`), stored in and read back from a Fast-LLM `metadata.yaml`
//! (under `metadata.`[`METADATA_KEY`]; `--drop-key` then names a stored key).

use std::path::Path;

use fastllm_config::{BaseModelConfig, Map, Value};
use fastllm_core::carried::METADATA_KEY;
use fastllm_core::{Carried, ConvertError, Direction, Handler, Problem};

use crate::CheckpointError;
use crate::convert::{ConversionError, Options};
use crate::metadata_yaml::lookup;
use crate::read::read_document;

/// An input's config: the Fast-LLM model, the HF keys it carries, and the ones dropped on
/// request (with their values).
pub(crate) struct InputConfig {
    pub config: BaseModelConfig,
    pub carried: Carried,
    pub dropped: Vec<DroppedKey>,
}

/// Which option dropped an input key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// `--drop-key KEY`: a key the user accepts losing.
    Requested,
    /// `--text-only`: a key of a part the format does not convert (a vision or audio tower).
    NotConverted,
}

impl DropCause {
    /// The command-line option that drops a key this way.
    pub fn option(self) -> &'static str {
        match self {
            DropCause::Requested => "--drop-key",
            DropCause::NotConverted => "--text-only",
        }
    }
}

/// An input config key dropped on request, with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedKey {
    pub key: String,
    pub value: Value,
    pub by: DropCause,
}

/// Which keys an import of an HF config drops before converting it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// Keys to drop, each dotted when nested.
    pub drop_keys: &'a [String],
    /// Drop the keys of the parts the format does not convert (a multimodal model's vision
    /// tower, for one).
    pub text_only: bool,
}

/// Imports an HF config after removing the keys `options` drops; returns the config, what is
/// left of `hf` and every dropped key. `hf` is taken, not copied: a config document may be
/// megabytes.
pub fn import_hf(
    handler: &Handler,
    mut hf: Map,
    options: &ImportOptions,
) -> Result<(BaseModelConfig, Map, Vec<DroppedKey>), ConvertError> {
    let &ImportOptions { drop_keys, text_only } = options;
    let mut dropped = requested(handler.name, handler.drop_keys(&mut hf, drop_keys))?;
    if text_only {
        let (kept, keys) = handler.without_unconverted(&hf);
        dropped.extend(keys.into_iter().map(|key| DroppedKey {
            value: hf.get(&key).cloned().unwrap_or(Value::Null),
            key,
            by: DropCause::NotConverted,
        }));
        hf = kept;
    }
    Ok((handler.import(&hf)?, hf, dropped))
}

/// An HF `config.json`: imported with the requested keys dropped first, and what it carries.
pub(crate) fn read_hf(path: &Path, handler: &Handler, options: &Options) -> Result<InputConfig, ConversionError> {
    let hf = read_document(path)?;
    let named = || crate::naming::in_file(path.to_path_buf());
    let dropping = ImportOptions {
        drop_keys: &options.drop_keys,
        text_only: options.text_only,
    };
    let (config, hf, dropped) = import_hf(handler, hf, &dropping).map_err(named())?;
    let carried = handler.carried(&hf, &config).map_err(named())?;
    Ok(InputConfig {
        config,
        carried,
        dropped,
    })
}

/// The carried keys stored in a Fast-LLM `metadata.yaml` (none when it has none).
pub(crate) fn stored(path: &Path, metadata: &Map) -> Result<Carried, CheckpointError> {
    let key = format!("metadata.{METADATA_KEY}");
    let found = lookup(metadata, &key, "", Some).map_err(|e| CheckpointError::invalid(path, e))?;
    match found {
        None => Ok(Carried::none("fast_llm")),
        Some(value) => Carried::from_value(value).map_err(|e| CheckpointError::invalid(path, format!("{key}: {e}"))),
    }
}

/// The carried keys stored in a Fast-LLM `metadata.yaml`, without the ones `--drop-key` names
/// (each must be stored: a typo would otherwise drop nothing), and those.
pub(crate) fn read_stored(
    path: &Path,
    metadata: &Map,
    options: &Options,
) -> Result<(Carried, Vec<DroppedKey>), ConversionError> {
    let mut carried = stored(path, metadata)?;
    let dropped = requested("fast_llm", carried.drop_keys(&options.drop_keys))?;
    Ok((carried, dropped))
}

/// What `--drop-key` dropped from an input of `format` (`drops`: the keys with their values, or
/// why some cannot be dropped, which rejects the import).
fn requested(format: &str, drops: Result<Vec<(String, Value)>, Vec<Problem>>) -> Result<Vec<DroppedKey>, ConvertError> {
    let dropped = drops.map_err(|problems| ConvertError::Rejected {
        format: format.to_string(),
        direction: Direction::Import,
        problems,
    })?;
    Ok(dropped
        .into_iter()
        .map(|(key, value)| DroppedKey {
            key,
            value,
            by: DropCause::Requested,
        })
        .collect())
}

/// Stores `carried` in `metadata.yaml`'s free-form `metadata:` dict (nothing when empty).
pub(crate) fn store(free_form: &mut Map, carried: Carried) {
    if !carried.is_empty() {
        free_form.insert(METADATA_KEY.to_string(), carried.into_value());
    }
}
