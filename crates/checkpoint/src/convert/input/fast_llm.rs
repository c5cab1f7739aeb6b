//! Fast-LLM's state-dict format: `metadata.yaml` (the model config, the HF keys it carries) and
//! the safetensors files of its `state_index`, one `<parameter>/weights` tensor per parameter.

use std::collections::BTreeMap;
use std::path::Path;

use fastllm_config::{BaseModelConfig, Map, Value, load_base_model};
use fastllm_core::weights::Transform;

use super::{Input, InputLayout, Source, Storage};
use crate::carry::InputConfig;
use crate::convert::{ConversionError, Options};
use crate::metadata_yaml::{MetadataFormat, mapping, model_kind, read_metadata};
use crate::naming::limits;
use crate::read::open_fast_llm_with;
use crate::{Checkpoint, CheckpointError};

/// The Fast-LLM state-dict layout.
pub(super) struct FastLlmInput;

impl InputLayout for FastLlmInput {
    fn config_file(&self) -> &'static str {
        "metadata.yaml"
    }

    fn read_config(&self, dir: &Path, options: &Options) -> Result<InputConfig, ConversionError> {
        metadata_config(dir, MetadataFormat::StateDict, options)
    }

    fn open(&self, dir: &Path, config: BaseModelConfig, options: &Options) -> Result<Input, ConversionError> {
        let checkpoint = open_fast_llm_with(dir, options.remote_input.as_ref())?;
        // The optimizer's shards metadata.yaml lists beside `weights` (a checkpoint saved with
        // its optimizer state: `<parameter>/exp_avgs`, ...).
        let optimizer_shards: Vec<String> = match checkpoint.config.get("shards") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::Str(name) if name != "weights" => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut sources = BTreeMap::new();
        let mut problems = Vec::new();
        for name in checkpoint.files.names() {
            match name.split_once('/') {
                Some((parameter, "weights")) => {
                    let tensor = checkpoint.files.tensor(name).expect("listed");
                    sources.insert(
                        parameter.to_string(),
                        Source {
                            inputs: vec![name.to_string()],
                            transform: Transform::Copy,
                            shape: tensor.shape.to_vec(),
                            dtype: tensor.dtype.to_string(),
                        },
                    );
                }
                Some((_, shard)) if optimizer_shards.iter().any(|s| s == shard) => {}
                _ => problems.push(format!(
                    "`{name}` in {}: not a `<parameter>/<shard>` tensor of a shard metadata.yaml lists ({})",
                    checkpoint.files.tensor(name).map_or("", |t| t.file),
                    std::iter::once("weights")
                        .chain(optimizer_shards.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        for name in checkpoint.files.names() {
            if let Some((parameter, shard)) = name.split_once('/')
                && shard != "weights"
                && !sources.contains_key(parameter)
            {
                problems.push(format!(
                    "`{name}` in {}: optimizer state of `{parameter}`, which has no `{parameter}/weights`",
                    checkpoint.files.tensor(name).map_or("", |t| t.file)
                ));
            }
        }
        ConversionError::check_tensors(dir, problems)?;
        Ok(Input {
            config,
            sources,
            dropped_tensors: Vec::new(),
            skipped_shards: optimizer_shards.clone(),
            optimizer_shards,
            training_state: Vec::new(),
            listing: "metadata.yaml",
            limits: limits(&checkpoint.files),
            storage: Storage::Files(checkpoint.files),
            spare: Default::default(),
            read_buffers: Default::default(),
            next: Default::default(),
        })
    }
}

/// The base-model config of a Fast-LLM checkpoint (its metadata.yaml `config.base_model`).
pub fn fast_llm_base_model(checkpoint: &Checkpoint) -> Result<BaseModelConfig, ConversionError> {
    fast_llm_config(&checkpoint.dir.join("metadata.yaml"), &checkpoint.config)
}

/// The config of the checkpoint at `dir`, whose `metadata.yaml` must be of `format`: its base
/// model, and the HF keys it carries but those `--drop-key` names (and those).
pub(super) fn metadata_config(
    dir: &Path,
    format: MetadataFormat,
    options: &Options,
) -> Result<InputConfig, ConversionError> {
    let path = dir.join("metadata.yaml");
    let (metadata, _) = read_metadata(dir, Some(format))?;
    let config = fast_llm_config(&path, &metadata)?;
    let (carried, dropped) = crate::carry::read_stored(&path, &metadata, options)?;
    Ok(InputConfig {
        carried,
        config,
        dropped,
    })
}

/// The base model of a parsed `metadata.yaml` (`path`, for messages).
pub fn fast_llm_config(path: &Path, metadata: &Map) -> Result<BaseModelConfig, ConversionError> {
    let invalid = |message: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let kind = model_kind(metadata).map_err(invalid)?;
    let base_model = mapping(metadata, "config.base_model").map_err(invalid)?;
    let base_model = Value::Map(base_model.cloned().unwrap_or_default());
    load_base_model(kind, &base_model).map_err(|e| invalid(format!("config.base_model: {e}")).into())
}
