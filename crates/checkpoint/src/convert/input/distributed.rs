//! Fast-LLM's distributed (training) checkpoints: `metadata.yaml` (`format: distributed`) and one
//! `rank_<r>.safetensors` per rank, read by [`DistributedCheckpoint`]. One shard's values are
//! converted (`--shard`, default `weights`); the others, optimizer state, and the trainer's
//! progress are listed as not converted.

use std::collections::BTreeMap;
use std::path::Path;

use fastllm_config::{BaseModelConfig, Map, Value};
use fastllm_core::carried::METADATA_KEY;
use fastllm_core::weights::{PlanLimits, Transform};

use super::{Input, InputLayout, Source, Storage};
use crate::CheckpointError;
use crate::carry::InputConfig;
use crate::convert::{ConversionError, Options};
use crate::distributed::{DistributedCheckpoint, DistributedError, ShardKind};
use crate::metadata_yaml::{MetadataFormat, mapping};

/// The shard converted when `--shard` is not given.
const DEFAULT_SHARD: &str = "weights";

/// The distributed layout.
pub(super) struct DistributedInput;

impl InputLayout for DistributedInput {
    fn config_file(&self) -> &'static str {
        "metadata.yaml"
    }

    fn read_config(&self, dir: &Path, options: &Options) -> Result<InputConfig, ConversionError> {
        super::fast_llm::metadata_config(dir, MetadataFormat::Distributed, options)
    }

    fn open(&self, dir: &Path, config: BaseModelConfig, options: &Options) -> Result<Input, ConversionError> {
        let checkpoint = DistributedCheckpoint::open_with(dir, options.remote_input.as_ref())?;
        let shard = options.shard.as_deref().unwrap_or(DEFAULT_SHARD).to_string();
        if !checkpoint.shard_names().contains(&shard) {
            let error = DistributedError::UnknownShard {
                path: dir.join("metadata.yaml"),
                shard,
                shards: checkpoint.shard_names().join(", "),
            };
            return Err(CheckpointError::from(error).into());
        }
        let optimizer = ShardKind::of(&shard) == ShardKind::Optimizer;
        let mut sources = BTreeMap::new();
        let mut frozen = Vec::new();
        let (mut elements, mut count) = (0u64, 0usize);
        for placed in checkpoint.parameters() {
            let parameter = &placed.parameter;
            if optimizer && parameter.frozen {
                frozen.push(format!(
                    "`{}` is frozen (lr_scale 0): it has no `{shard}` state, only `weights` (--shard {shard} \
                     exports trained parameters only)",
                    parameter.name
                ));
                continue;
            }
            let shape = parameter.shape();
            elements = elements.saturating_add(shape.iter().map(|&d| d as u64).product());
            count += 1;
            sources.insert(
                parameter.name.clone(),
                Source {
                    inputs: vec![format!("{}/{shard}", parameter.name)],
                    transform: Transform::Copy,
                    shape,
                    dtype: checkpoint.dtype().to_string(),
                },
            );
        }
        ConversionError::check_tensors(dir, frozen)?;
        let skipped_shards = checkpoint
            .shard_names()
            .iter()
            .filter(|s| **s != shard)
            .cloned()
            .collect();
        let training_state = training_state(checkpoint.metadata())
            .map_err(|message| CheckpointError::invalid(dir.join("metadata.yaml"), message))?;
        Ok(Input {
            config,
            sources,
            dropped_tensors: Vec::new(),
            skipped_shards,
            optimizer_shards: checkpoint.shard_names()[1..].to_vec(),
            training_state,
            listing: "the rank files",
            limits: PlanLimits::checkpoint(count, elements),
            storage: Storage::Distributed {
                checkpoint: Box::new(checkpoint),
                shard,
            },
            spare: Default::default(),
            read_buffers: Default::default(),
            next: Default::default(),
        })
    }
}

/// What the trainer saved besides the model (`metadata.completed_steps`, `documents_seen`, the
/// optimizer's step, ...): everything of `metadata.yaml`'s free-form `metadata` but the carried
/// HF keys, with dotted names.
fn training_state(metadata: &Map) -> Result<Vec<(String, Value)>, String> {
    let state = mapping(metadata, "metadata")?.into_iter().flatten();
    Ok(state
        .filter(|(key, _)| key.as_str() != METADATA_KEY)
        .map(|(key, value)| (format!("metadata.{key}"), value.clone()))
        .collect())
}
