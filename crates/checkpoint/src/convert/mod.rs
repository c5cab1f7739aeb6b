//! Whole-checkpoint conversion: config and weights, HF ↔ Fast-LLM and HF → HF through the
//! Fast-LLM model.
//!
//! Everything is checked before anything is written: the config converts, every planned tensor
//! exists with the shape the config implies and one dtype per parameter, and every input tensor
//! is consumed. Output tensors are then written in plan order, each computed once from borrowed
//! input bytes (a copy or a concatenation streams; a transpose uses one tensor-sized buffer).
//!
//! The steps, one module each: `input` reads a checkpoint layout into Fast-LLM parameters (one
//! `InputLayout` per layout), `plan` lists the output tensors and checks them against the
//! input, `transfer` holds the byte transforms of both directions, `metadata` the documents
//! beside the tensors, and `write` splits the tensors into files and streams them. This module
//! runs them in order.

mod input;
pub(crate) mod metadata;
pub(crate) mod plan;
mod transfer;
pub(crate) mod write;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use fastllm_config::{BaseModelConfig, Value};
use fastllm_core::weights::Transform;
use fastllm_core::{Carried, ConvertError, Handler, HfLayout, NotCarried, Placement, Problem};

pub use self::input::{detect, fast_llm_base_model, fast_llm_config};
pub use self::metadata::FAST_LLM_VERSION;
use self::metadata::{
    Document, config_json_document, fast_llm_file_metadata, fast_llm_metadata_document, hf_file_metadata,
    hf_index_document,
};
pub use self::write::Overflowed;
use self::write::{copy_extra_files, extra_files, shard, write_tensors};
use crate::CheckpointError;
use crate::carry::InputConfig;
pub use crate::carry::{DropCause, DroppedKey, import_hf};
use crate::cast::Dtype;
use crate::companions::{Companions, companions};
use crate::naming::{export_error, render_plan};
use crate::policy::{OutputDir, Protected};

/// One side of a conversion.
#[derive(Clone, Copy)]
pub enum Side {
    /// Fast-LLM's own format (`metadata.yaml` + safetensors).
    FastLlm,
    /// A registered HF format.
    Hf(&'static Handler),
    /// Fast-LLM's distributed training checkpoint (`metadata.yaml` + `rank_<r>.safetensors`):
    /// an input only.
    FastLlmDistributed,
}

impl Side {
    /// The format's name.
    pub fn name(&self) -> &'static str {
        match self {
            Side::FastLlm => "fast_llm",
            Side::Hf(handler) => handler.name,
            Side::FastLlmDistributed => "fast_llm_distributed",
        }
    }

    /// What a conversion to this side writes; an input-only side is refused by name.
    fn output(self) -> Result<Output, ConversionError> {
        match self {
            Side::FastLlm => Ok(Output::FastLlm),
            Side::Hf(handler) => Ok(Output::Hf(handler)),
            Side::FastLlmDistributed => Err(ConversionError::InputOnly { format: self.name() }),
        }
    }
}

/// A format a conversion writes.
#[derive(Clone, Copy)]
pub(crate) enum Output {
    FastLlm,
    Hf(&'static Handler),
}

impl Output {
    /// The format's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Output::FastLlm => "fast_llm",
            Output::Hf(handler) => handler.name,
        }
    }
}

/// Conversion options.
#[derive(Debug, Clone)]
pub struct Options {
    pub layout: HfLayout,
    /// Convert config.json / metadata.yaml only.
    pub config_only: bool,
    /// Compute and return the plan; read no tensor data and write nothing.
    pub dry_run: bool,
    /// Replace an existing output.
    pub force: bool,
    /// Largest HF shard, in bytes.
    pub max_shard_bytes: u64,
    /// Drop the parts of the input the format does not convert (a multimodal checkpoint's vision
    /// and audio towers: `--text-only`), listing them in the summary, instead of failing.
    pub text_only: bool,
    /// HF keys of the input to drop (`--drop-key`, dotted): the way out of an unknown-key error.
    pub drop_keys: Vec<String>,
    /// The shard of a distributed input to convert (`--shard`; `None`: `weights`), e.g. an
    /// optimizer state's values in place of the weights.
    pub shard: Option<String>,
    /// The dtype to write every tensor in (`--dtype`; `None`: each tensor's own).
    pub dtype: Option<Dtype>,
    /// Write a finite value that overflows `dtype` as an infinity (and list the tensor) instead
    /// of failing.
    pub allow_overflow: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            layout: HfLayout::V4,
            config_only: false,
            dry_run: false,
            force: false,
            max_shard_bytes: 5_000_000_000,
            text_only: false,
            drop_keys: Vec::new(),
            shard: None,
            dtype: None,
            allow_overflow: false,
        }
    }
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] ConvertError),
    /// A config that does not convert, with the file it was read from.
    #[error("{}: {source}", .path.display())]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: ConvertError,
    },
    /// The tensors a config implies exceed what the checkpoint holds, or do not fit the format.
    #[error("{}: {}", .path.display(), render_plan(.format, .problems))]
    Plan {
        path: PathBuf,
        format: &'static str,
        problems: Vec<Problem>,
    },
    #[error("{path}: {}", render(.problems))]
    Tensors { path: PathBuf, problems: Vec<String> },
    #[error("{format}: weight conversion is not declared for this format yet; its config converts (use --config-only)")]
    WeightsNotDeclared { format: &'static str },
    #[error(
        "{format} is an input format only (what Fast-LLM's training saves): convert it to fast_llm or an HF format"
    )]
    InputOnly { format: &'static str },
    /// A cast (`--dtype`) that would turn finite values into infinities.
    #[error(
        "{}: tensor `{}`: casting {} to {} turns {} finite value{} into infinity (largest magnitude {:e}); \
         --allow-overflow writes them as infinities",
        .0.file, fastllm_config::printable(&.0.tensor), .0.from, .0.to, .0.count,
        if .0.count == 1 { "" } else { "s" }, .0.largest
    )]
    Overflow(Box<Overflowed>),
    #[error(
        "--shard {shard}: only a fast_llm_distributed input has shards to choose from; a {format} checkpoint holds \
         weights only"
    )]
    ShardOfNonDistributed { shard: String, format: &'static str },
}

fn render(problems: &[String]) -> String {
    let mut out = format!(
        "{} tensor problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str("\n  ");
        // One line each, whatever the tensor names in it hold.
        out.push_str(&fastllm_config::printable(problem));
    }
    out
}

/// One tensor of the output, with where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Input tensor names it is made of.
    pub from: Vec<String>,
    pub transform: Transform,
    pub bytes: u64,
    /// The input's dtype, when `--dtype` casts the tensor from it to `dtype`.
    pub cast_from: Option<String>,
}

/// What a conversion did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct Summary {
    pub from: &'static str,
    pub to: &'static str,
    pub output: PathBuf,
    pub tensors: Vec<PlannedTensor>,
    pub files: Vec<String>,
    /// Files the output format's checkpoints carry (modeling code, generation config) that the
    /// input did not have, so they are not in the output.
    pub missing_extra_files: Vec<String>,
    /// The input's HF keys the Fast-LLM model does not hold, carried into the output.
    pub carried_keys: Vec<String>,
    /// Keys of the input format the output format has no place for.
    pub not_carried_keys: Vec<NotCarried>,
    /// Input config keys dropped on request, with their values and which option dropped them.
    pub dropped_keys: Vec<DroppedKey>,
    /// Input tensors dropped because the format does not convert them (`text_only`).
    pub dropped_tensors: Vec<String>,
    /// The input's shards not converted: a distributed checkpoint's optimizer state (or, with
    /// `--shard`, its weights).
    pub skipped_shards: Vec<String>,
    /// What a training checkpoint saved besides the model (trainer progress such as
    /// `metadata.completed_steps`), not converted: dotted key and value.
    pub training_state: Vec<(String, Value)>,
    /// The input's companion files (tokenizer, generation config, ...) copied, and the rest.
    pub companions: Companions,
    /// Tensors whose cast (`--dtype`) wrote finite values as infinities (`--allow-overflow`).
    pub overflows: Vec<Overflowed>,
}

impl Summary {
    /// Total tensor bytes written.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
}

/// Converts the checkpoint at `input` (format `from`) to `output` (format `to`).
pub fn convert(
    input: &Path,
    from: Side,
    output: &Path,
    to: Side,
    options: &Options,
) -> Result<Summary, ConversionError> {
    convert_with_progress(input, from, output, to, options, &mut |_, _| {})
}

/// [`convert`], calling `progress(bytes written, total bytes)` as the tensors are written.
pub fn convert_with_progress(
    input: &Path,
    from: Side,
    output: &Path,
    to: Side,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConversionError> {
    convert_cancellable(input, from, output, to, options, &mut |done, total| {
        progress(done, total);
        ControlFlow::Continue(())
    })
}

/// [`convert_with_progress`], stopped when `progress` returns `Break`: it is called before the
/// first tensor is written and at least every 16 MiB written. A stopped conversion returns
/// [`CheckpointError::Interrupted`] and leaves nothing: its staging directory and the parent
/// directories created for it are removed, an old output (`force`) is left in place. Unlike
/// [`crate::policy::abandon_live_outputs`], it concerns this conversion alone: others in the
/// process go on, and later ones may commit.
pub fn convert_cancellable(
    input: &Path,
    from: Side,
    output: &Path,
    to: Side,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Summary, ConversionError> {
    crate::policy::check_output_path(input, output)?;
    // What the input is made of, recorded before anything could change it: nothing the
    // conversion removes (a killed run's leftovers, the old output under --force) may hold it.
    let protected = Protected::of_input(input)?;
    let to = to.output()?;
    if let Some(shard) = &options.shard
        && !matches!(from, Side::FastLlmDistributed)
    {
        return Err(ConversionError::ShardOfNonDistributed {
            shard: shard.clone(),
            format: from.name(),
        });
    }
    if options.config_only {
        return convert_config(input, from, output, to, options, &protected);
    }
    for handler in [from.output().ok(), Some(to)].into_iter().flatten() {
        if let Output::Hf(handler) = handler
            && handler.converter().base_model.weights().is_empty()
        {
            return Err(ConversionError::WeightsNotDeclared { format: handler.name });
        }
    }
    let layout = from.input_layout();
    // The config must convert before any tensor is looked at: its rejection is the real reason.
    let InputConfig {
        config,
        mut carried,
        dropped: dropped_keys,
    } = layout.read_config(input, options)?;
    if let Some(dtype) = options.dtype {
        metadata::set_carried_dtype(&mut carried, dtype);
    }
    let placement = carried_to(to, &config, &carried, options.layout).map_err(export_error(input, from))?;
    let companions = companions_of(input, to)?;
    let source = layout.open(input, config, options)?;
    let config = &source.config;
    let mut outputs = plan::plan(&source, input, from, to)?;
    if let Some(dtype) = options.dtype {
        plan::cast(&mut outputs, &source, input, dtype)?;
    }
    let files = shard(&outputs, to, options);
    let documents = match to {
        Output::FastLlm => vec![fast_llm_metadata_document(output, config, carried, &outputs, &files)?],
        Output::Hf(handler) => {
            let (mut hf, _) = handler
                .export_carrying(config, &carried, options.layout)
                .map_err(export_error(input, from))?;
            if let Some(dtype) = options.dtype {
                metadata::set_hf_dtype(&mut hf, dtype, options.layout);
            }
            let mut documents = vec![config_json_document(output, hf)?];
            if files.len() > 1 {
                documents.push(hf_index_document(output, &outputs, &files)?);
            }
            documents
        }
    };
    let mut summary = Summary {
        from: from.name(),
        to: to.name(),
        output: output.to_path_buf(),
        tensors: outputs.iter().map(|o| o.tensor.clone()).collect(),
        files: Vec::new(),
        missing_extra_files: extra_files(input, to).1,
        carried_keys: placement.carried,
        not_carried_keys: placement.not_carried,
        dropped_keys,
        dropped_tensors: source.dropped_tensors.clone(),
        skipped_shards: source.skipped_shards.clone(),
        training_state: source.training_state.clone(),
        companions,
        overflows: Vec::new(),
    };
    if options.dry_run {
        return Ok(summary);
    }

    let out = OutputDir::create(output, options.force, &protected)?;
    documents.iter().try_for_each(|document| document.write(&out))?;
    drop(documents);
    let metadata = match to {
        Output::FastLlm => fast_llm_file_metadata(config),
        Output::Hf(_) => hf_file_metadata(),
    };
    summary.overflows = write_tensors(
        &out,
        &files,
        &outputs,
        &metadata,
        &source,
        to,
        options.allow_overflow,
        progress,
    )
    .map_err(|error| match error {
        // Named by its path, like every other rejection of an input file.
        ConversionError::Overflow(mut overflow) => {
            overflow.file = input.join(&overflow.file).display().to_string();
            ConversionError::Overflow(overflow)
        }
        other => other,
    })?;
    if matches!(to, Output::FastLlm) {
        out.write_text("ok", "")?;
    }
    summary.files = files.into_iter().map(|(f, _)| f).collect();
    summary.missing_extra_files = copy_extra_files(&out, input, to)?;
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    out.commit()?;
    Ok(summary)
}

/// Where the carried keys go in the output: an HF config places them, a Fast-LLM checkpoint
/// stores them all.
fn carried_to(
    to: Output,
    config: &BaseModelConfig,
    carried: &Carried,
    layout: HfLayout,
) -> Result<Placement, ConvertError> {
    Ok(match to {
        Output::Hf(handler) => handler.export_carrying(config, carried, layout)?.1,
        Output::FastLlm => Placement {
            carried: carried.keys().map(String::from).collect(),
            not_carried: Vec::new(),
        },
    })
}

/// The input's companion files; the weights (`*.safetensors`, handled by the conversion) and
/// the output format's modeling files (copied by [`copy_extra_files`]) are neither.
fn companions_of(input: &Path, to: Output) -> Result<Companions, CheckpointError> {
    let extra: &[&str] = match to {
        Output::Hf(handler) => handler.extra_files,
        Output::FastLlm => &[],
    };
    companions(input, &|name| extra.contains(&name))
}

/// `--config-only`: config.json or metadata.yaml, no tensors read or written.
fn convert_config(
    input: &Path,
    from: Side,
    output: &Path,
    to: Output,
    options: &Options,
    protected: &Protected,
) -> Result<Summary, ConversionError> {
    let InputConfig {
        config,
        mut carried,
        dropped: dropped_keys,
    } = from.input_layout().read_config(input, options)?;
    if let Some(dtype) = options.dtype {
        metadata::set_carried_dtype(&mut carried, dtype);
    }
    let (document, placement): (Document, Placement) = match to {
        Output::Hf(handler) => {
            let (mut hf, placement) = handler
                .export_carrying(&config, &carried, options.layout)
                .map_err(export_error(input, from))?;
            if let Some(dtype) = options.dtype {
                metadata::set_hf_dtype(&mut hf, dtype, options.layout);
            }
            (config_json_document(output, hf)?, placement)
        }
        Output::FastLlm => {
            let placement = carried_to(to, &config, &carried, options.layout).map_err(export_error(input, from))?;
            (
                fast_llm_metadata_document(output, &config, carried, &[], &[])?,
                placement,
            )
        }
    };
    let mut summary = Summary {
        from: from.name(),
        to: to.name(),
        output: output.to_path_buf(),
        tensors: Vec::new(),
        files: Vec::new(),
        missing_extra_files: extra_files(input, to).1,
        carried_keys: placement.carried,
        not_carried_keys: placement.not_carried,
        dropped_keys,
        dropped_tensors: Vec::new(),
        skipped_shards: Vec::new(),
        training_state: Vec::new(),
        companions: companions_of(input, to)?,
        overflows: Vec::new(),
    };
    if options.dry_run {
        return Ok(summary);
    }
    let out = OutputDir::create(output, options.force, protected)?;
    document.write(&out)?;
    // A config with custom modeling code loads only beside its `configuration_*.py`.
    summary.missing_extra_files = copy_extra_files(&out, input, to)?;
    // The tokenizer and generation files are part of a usable config too.
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    out.commit()?;
    Ok(summary)
}
