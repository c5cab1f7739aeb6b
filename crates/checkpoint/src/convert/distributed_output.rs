//! A conversion to Fast-LLM's distributed checkpoint (`--to fast_llm_distributed --layout ...`):
//! from any input, the model laid out for the asked parallel layout and written rank file by
//! rank file as Fast-LLM's `DistributedCheckpointHandler.save` writes it (see
//! [`crate::distributed::DistributedWrite`]).
//!
//! The input's companion files (tokenizer, ...) are copied and its HF metadata stored, as for a
//! `fast_llm` output. What is kept from a training-checkpoint input: the `distributed` and
//! `multi_stage` fields that do not place parameters (dtypes, seeds, ...) and the trainer's
//! `metadata` (`completed_steps`, the optimizer's step, ...); the optimizer's shards with
//! `--optimizer-state`, as Fast-LLM's own `convert` writes the weights alone otherwise.

use std::borrow::Cow;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use fastllm_config::{Form, Map, Value};
use fastllm_core::carried::METADATA_KEY;
use fastllm_layout::engine_layers;

use super::input::Input;
use super::metadata::{FAST_LLM_VERSION, distributed_metadata_document};
use super::{ConversionError, Options, PlannedTensor, Side, Summary};
use crate::CheckpointError;
use crate::carry::InputConfig;
use crate::cast::{Dtype, Overflow, Source};
use crate::distributed::{
    DistributedLayout, DistributedWrite, LayoutSpec, Parallelism, ShardKind, ShardSource, SourceTensor, TensorSlice,
    rank_file,
};
use crate::metadata_yaml::{MetadataFormat, read_metadata};
use crate::policy::{OutputDir, Protected};

/// A conversion to a distributed checkpoint: `input` (format `from`) to `output`, in the layout
/// of `options.parallel`.
pub(super) struct Request<'a> {
    pub input: &'a Path,
    pub from: Side,
    pub output: &'a Path,
    pub options: &'a Options,
    /// The input, recorded before anything could change it.
    pub protected: &'a Protected,
}

/// Runs `request`. Everything is checked before the output directory is created.
pub(super) fn convert(
    request: &Request,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Summary, ConversionError> {
    let &Request {
        input,
        from,
        output,
        options,
        protected,
    } = request;
    let spec = options.parallel.as_ref().ok_or(ConversionError::LayoutRequired)?;
    let refuse =
        |option: &'static str, reason: &'static str| Err(ConversionError::NotForDistributed { option, reason });
    if options.config_only {
        return refuse("--config-only", "its rank files are the checkpoint");
    }
    if options.dtype.is_some() {
        return refuse(
            "--dtype",
            "its shards are in the run's distributed.optimization_dtype (float32 unless the input checkpoint says otherwise)",
        );
    }
    if options.part.is_some() || options.finalize {
        return refuse(
            "--part/--finalize",
            "its rank files are written by one process (split by files, a part would hold a fraction of every rank)",
        );
    }
    if options.shard.is_some() {
        return refuse(
            "--shard",
            "the weights are written as weights (--optimizer-state adds the optimizer's shards)",
        );
    }
    let reader = from.input_layout();
    let InputConfig {
        config,
        carried,
        dropped: dropped_keys,
    } = reader.read_config(input, options)?;
    // A training checkpoint's own run settings and trainer state are kept.
    let (kept_config, mut free_form) = match from {
        Side::FastLlmDistributed => {
            let (metadata, _) = read_metadata(input, Some(MetadataFormat::Distributed))?;
            let section = |key: &str| match metadata.get(key) {
                Some(Value::Map(map)) => Some(map.clone()),
                _ => None,
            };
            (section("config"), section("metadata").unwrap_or_default())
        }
        _ => (None, Map::new()),
    };
    free_form.remove(METADATA_KEY);
    // All of them are stored, as in a `fast_llm` output.
    let carried_keys: Vec<String> = carried.keys().map(String::from).collect();
    crate::carry::store(&mut free_form, carried);

    let layout_error = |problems: Vec<String>| ConversionError::Layout {
        layout: describe(spec),
        problems,
    };
    let mut model_config = spec.model_config(0, kept_config.as_ref());
    let parallelism = Parallelism::from_config(&model_config).map_err(|e| layout_error(vec![e]))?;
    let layers = engine_layers(&config, spec.tensor_parallel).map_err(|problems| {
        layout_error(
            problems
                .into_iter()
                .map(|p| format!("with tp={}: {p}", spec.tensor_parallel))
                .collect(),
        )
    })?;
    let layout = DistributedLayout::new(&layers, parallelism).map_err(|e| layout_error(vec![e.to_string()]))?;
    model_config.insert("base_model".into(), Value::Map(config.to_form(Form::Explicit)));
    model_config.insert("type".into(), Value::Str(config.kind().name().into()));

    // The tokenizer and other companions travel with the checkpoint, as to every output.
    let companions = crate::companions::companions(input, &|_| false)?;
    let source = reader.open(input, config, options)?;
    let mut shards = vec!["weights".to_string()];
    let mut skipped_shards = source.optimizer_shards.clone();
    if options.optimizer_state {
        if source.optimizer_shards.is_empty() {
            return Err(ConversionError::NoOptimizerState {
                format: from.name(),
                path: input.to_path_buf(),
            });
        }
        shards.extend(source.optimizer_shards.iter().cloned());
        skipped_shards.clear();
    }
    check_input(&source, &layout, &shards, input)?;

    let mut metadata = Map::new();
    metadata.insert("config".into(), Value::Map(model_config));
    metadata.insert("fast_llm_version".into(), Value::Str(FAST_LLM_VERSION.into()));
    metadata.insert("format".into(), Value::Str("distributed".into()));
    metadata.insert("metadata".into(), Value::Map(free_form));
    metadata.insert("model".into(), Value::Str(source.config.kind().name().into()));
    metadata.insert(
        "shards".into(),
        Value::List(shards.iter().map(|s| Value::Str(s.clone())).collect()),
    );
    let document = distributed_metadata_document(output, &metadata)?;
    let write = DistributedWrite {
        layout: &layout,
        shards: &shards,
        metadata: &metadata,
        remote: options.remote_output.as_ref(),
    };
    let dtype = layout.parallelism.shard_dtype;
    let element = crate::dtype_size(dtype).unwrap_or(1);
    let mut tensors = Vec::new();
    for rank in 0..layout.parallelism.world_size {
        for shard in &shards {
            let len = layout.shard_len(rank, ShardKind::of(shard));
            tensors.push(PlannedTensor {
                name: format!("{}:{shard}_shard", rank_file(rank)),
                dtype: dtype.to_string(),
                shape: vec![len],
                from: Vec::new(),
                transform: fastllm_core::weights::Transform::Copy,
                bytes: (len * element) as u64,
                cast_from: None,
            });
        }
    }
    let mut summary = Summary {
        from: from.name(),
        to: Side::FastLlmDistributed.name(),
        output: output.to_path_buf(),
        tensors,
        files: Vec::new(),
        missing_extra_files: Vec::new(),
        carried_keys,
        not_carried_keys: Vec::new(),
        dropped_keys,
        dropped_tensors: source.dropped_tensors.clone(),
        skipped_shards,
        training_state: Vec::new(),
        companions,
        overflows: Vec::new(),
    };
    if options.dry_run {
        return Ok(summary);
    }
    let out = OutputDir::create(output, options.existing(), protected)?;
    document.write(&out)?;
    // A remote input reads each parameter's weights while the one before is written.
    source.read_in_order(layout.parameters().map(|placed| placed.parameter.name.as_str()));
    let shard_source = InputShards { input: &source };
    write.write(&out, &shard_source, progress)?;
    source.check_unchanged()?;
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    summary.files = std::iter::once("metadata.yaml".to_string())
        .chain((0..layout.parallelism.world_size).map(rank_file))
        .collect();
    out.commit()?;
    Ok(summary)
}

/// `--layout` as given back in messages.
fn describe(spec: &LayoutSpec) -> String {
    let mut parts = vec![
        format!("tp={}", spec.tensor_parallel),
        format!("pp={}", spec.pipeline_parallel),
        format!("dp={}", spec.data_parallel),
    ];
    if spec.sequence_data_parallel != 1 {
        parts.push(format!("sdp={}", spec.sequence_data_parallel));
    }
    if let Some(zero) = spec.zero_stage {
        parts.push(format!("zero={zero}"));
    }
    if spec.pipeline_first {
        parts.push("pipeline_first".into());
    }
    if let Some(layers) = spec.layers_per_stage {
        parts.push(format!("layers_per_stage={layers}"));
    }
    parts.join(",")
}

/// Every parameter the layout stores is in the input with its shape, every input parameter has a
/// place, and every trained parameter has each optimizer shard written; all problems at once.
fn check_input(
    input: &Input,
    layout: &DistributedLayout,
    shards: &[String],
    dir: &Path,
) -> Result<(), ConversionError> {
    let mut problems = Vec::new();
    for placed in layout.parameters() {
        let name = &placed.parameter.name;
        let shape = placed.parameter.shape();
        match input.sources.get(name) {
            None => problems.push(format!("Fast-LLM `{name}`: missing from {}", input.listing)),
            Some(source) if source.shape != shape => problems.push(format!(
                "Fast-LLM `{name}` in {}: shape {:?}, the config implies {shape:?}",
                input.file_of(name),
                source.shape
            )),
            Some(source) => {
                if Source::of(&source.dtype).is_none() && source.dtype != layout.parallelism.shard_dtype {
                    problems.push(format!(
                        "Fast-LLM `{name}` in {}: dtype {} cannot be written as the shards' {}",
                        input.file_of(name),
                        source.dtype,
                        layout.parallelism.shard_dtype
                    ));
                }
                if placed.parameter.frozen {
                    continue;
                }
                for shard in &shards[1..] {
                    match input.state_tensor(name, shard) {
                        Some((dtype, state_shape)) if dtype == source.dtype && state_shape == shape => {}
                        Some((dtype, state_shape)) => problems.push(format!(
                            "`{name}/{shard}`: {dtype} {state_shape:?}, its weights are {} {shape:?}",
                            source.dtype
                        )),
                        None => problems.push(format!(
                            "`{name}/{shard}`: missing from {} (the parameter is trained, so Fast-LLM keeps its \
                             optimizer state)",
                            input.listing
                        )),
                    }
                }
            }
        }
    }
    problems.extend(input.unplaced("the model", |name| layout.find(name).is_some()));
    ConversionError::check_tensors(dir, problems)
}

/// The input's Fast-LLM parameters as the shards' tensors, in the input's dtype (the writer casts
/// them to the shards': a bfloat16 HF model's values exactly, in float32).
struct InputShards<'a> {
    input: &'a Input,
}

impl ShardSource for InputShards<'_> {
    fn tensor(&self, parameter: &str, shard: &str) -> Result<SourceTensor<'_>, CheckpointError> {
        let bytes = if shard == "weights" {
            self.input.bytes(parameter)?
        } else {
            self.input.state_bytes(parameter, shard)?
        };
        Ok(SourceTensor {
            bytes,
            dtype: self.input.sources[parameter].dtype.clone(),
        })
    }

    fn release(&self, _parameter: &str, bytes: Cow<'_, [u8]>) {
        self.input.recycle(bytes);
    }

    /// A parameter that is its local safetensors tensors' bytes as they are: each rank's slice
    /// read from the files in blocks (a copy of the whole tensor first cost a fifth of the
    /// conversion's CPU time once no input was mapped).
    fn streams(&self, parameter: &str, shard: &str) -> Option<String> {
        (shard == "weights" && self.input.streams_ranges(parameter))
            .then(|| self.input.sources[parameter].dtype.clone())
    }

    fn stream(
        &self,
        slice: &TensorSlice,
        cast: Option<(Source, Dtype)>,
        sink: &mut dyn Write,
    ) -> std::io::Result<Overflow> {
        let parameter = slice.parameter;
        self.input
            .stream_ranges(parameter, slice.ranges, cast, sink)?
            .ok_or_else(|| std::io::Error::other(format!("`{parameter}`: its bytes cannot be streamed")))
    }
}
