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

mod distributed_output;
mod input;
pub(crate) mod metadata;
mod parts;
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
pub use self::parts::{MANIFEST as PART_MANIFEST, Part, PartsError};
pub use self::write::Overflowed;
use self::write::{TensorFiles, copy_extra_files, extra_files, shard, write_tensors};
use crate::CheckpointError;
use crate::carry::InputConfig;
pub use crate::carry::{DropCause, DroppedKey, ImportOptions, import_hf};
use crate::cast::Dtype;
use crate::companions::{Companions, companions};
use crate::destination::{RemoteOutput, RemotePartSet};
use crate::distributed::LayoutSpec;
use crate::naming::{export_error, render_plan};
use crate::policy::{Existing, OutputDir, Protected};
use crate::source::RemoteInput;

/// One side of a conversion.
#[derive(Clone, Copy)]
pub enum Side {
    /// Fast-LLM's own format (`metadata.yaml` + safetensors).
    FastLlm,
    /// A registered HF format.
    Hf(&'static Handler),
    /// Fast-LLM's distributed training checkpoint (`metadata.yaml` + `rank_<r>.safetensors`);
    /// written in the parallel layout of [`Options::parallel`].
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

    /// What a conversion to this side writes through the tensor plan (a distributed output is
    /// written by `distributed_output` instead).
    fn output(self) -> Option<Output> {
        match self {
            Side::FastLlm => Some(Output::FastLlm),
            Side::Hf(handler) => Some(Output::Hf(handler)),
            Side::FastLlmDistributed => None,
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
    /// The parallel layout of a `fast_llm_distributed` output (`--layout`).
    pub parallel: Option<LayoutSpec>,
    /// Carry the optimizer's shards (`exp_avgs`, `exp_avgs_sq`, ...) into the output
    /// (`--optimizer-state`): only formats that hold them accept it.
    pub optimizer_state: bool,
    /// Write only this part of the output's tensor files, beside the output (`--part K/N`; see
    /// the `parts` module).
    pub part: Option<Part>,
    /// Assemble the output from its parts, once all are complete (`--finalize`).
    pub finalize: bool,
    /// The input's safetensors files when they are not in its directory (an object-store
    /// input, whose directory holds its documents only): read by range from there.
    pub remote_input: Option<RemoteInput>,
    /// Where the output's safetensors files go when not into its directory (an object-store
    /// output): uploaded as they are written; the directory gets the documents only.
    pub remote_output: Option<RemoteOutput>,
    /// The parts beside an object-store output, for `--finalize` to check and copy into it
    /// (with `remote_output`'s publication).
    pub remote_parts: Option<RemotePartSet>,
}

impl Options {
    /// What the output directory does with an existing output (`force`).
    pub fn existing(&self) -> Existing {
        if self.force {
            Existing::Replace
        } else {
            Existing::Refuse
        }
    }
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
            parallel: None,
            optimizer_state: false,
            part: None,
            finalize: false,
            remote_input: None,
            remote_output: None,
            remote_parts: None,
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
    /// `--finalize` found a part missing, incomplete or of another conversion.
    #[error(transparent)]
    Parts(#[from] PartsError),
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
    /// A cast (`--dtype`) that would turn finite values into infinities.
    #[error(
        "{}: tensor `{}`: casting {} to {} turns {} finite value{} into infinity (largest magnitude {:e}); \
         --allow-overflow writes them as infinities",
        .0.file, fastllm_config::printable(&.0.tensor), .0.from, .0.to, .0.count,
        if .0.count == 1 { "" } else { "s" }, .0.largest
    )]
    Overflow(Box<Overflowed>),
    #[error("--to fast_llm_distributed needs --layout (e.g. --layout tp=2,pp=2,dp=2,zero=3)")]
    LayoutRequired,
    #[error("--layout is for --to fast_llm_distributed; {format} is not a distributed layout")]
    LayoutOfNonDistributed { format: &'static str },
    /// The model cannot be laid out as `--layout` asks (heads not divisible, too few stages...).
    #[error("--layout {layout}: {}", .problems.join("; "))]
    Layout { layout: String, problems: Vec<String> },
    #[error(
        "--optimizer-state: {format} cannot hold optimizer state (only fast_llm and fast_llm_distributed outputs do)"
    )]
    OptimizerStateUnsupported { format: &'static str },
    #[error("--optimizer-state: the {format} input at {} holds no optimizer state", .path.display())]
    NoOptimizerState { format: &'static str, path: PathBuf },
    #[error("--config-only writes no tensors: {option} does not apply")]
    ConfigOnly { option: &'static str },
    #[error("{option} does not apply to a fast_llm_distributed output: {reason}")]
    NotForDistributed { option: &'static str, reason: &'static str },
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

impl ConversionError {
    /// The problems found with the tensors of the checkpoint at `dir`: an error unless there
    /// are none.
    pub(crate) fn check_tensors(dir: &Path, problems: Vec<String>) -> Result<(), ConversionError> {
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConversionError::Tensors {
            path: dir.to_path_buf(),
            problems,
        })
    }
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

/// What a conversion reads and writes: the checkpoint at `input` (format `from`) and the one it
/// makes at `output` (format `to`).
#[derive(Clone, Copy)]
pub struct Conversion<'a> {
    /// The input checkpoint's directory.
    pub input: &'a Path,
    /// The input's format.
    pub from: Side,
    /// The output's directory.
    pub output: &'a Path,
    /// The output's format.
    pub to: Side,
}

/// Makes `conversion`'s output from its input.
pub fn convert(conversion: &Conversion, options: &Options) -> Result<Summary, ConversionError> {
    convert_with_progress(conversion, options, &mut |_, _| {})
}

/// [`convert`], calling `progress(bytes written, total bytes)` as the tensors are written.
pub fn convert_with_progress(
    conversion: &Conversion,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConversionError> {
    convert_cancellable(conversion, options, &mut |done, total| {
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
    conversion: &Conversion,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Summary, ConversionError> {
    let &Conversion {
        input,
        from,
        output,
        to,
    } = conversion;
    crate::policy::check_output_path(input, output)?;
    // What the input is made of, recorded before anything could change it: nothing the
    // conversion removes (a killed run's leftovers, the old output under --force) may hold it.
    let protected = Protected::of_input(input)?;
    let Some(to_plan) = to.output() else {
        let request = distributed_output::Request {
            input,
            from,
            output,
            options,
            protected: &protected,
        };
        return distributed_output::convert(&request, progress);
    };
    if options.parallel.is_some() {
        return Err(ConversionError::LayoutOfNonDistributed { format: to.name() });
    }
    if options.optimizer_state && !matches!(to, Side::FastLlm) {
        return Err(ConversionError::OptimizerStateUnsupported { format: to.name() });
    }
    let to = to_plan;
    if let Some(shard) = &options.shard
        && !matches!(from, Side::FastLlmDistributed)
    {
        return Err(ConversionError::ShardOfNonDistributed {
            shard: shard.clone(),
            format: from.name(),
        });
    }
    if options.config_only {
        let conversion = Resolved {
            input,
            from,
            output,
            to,
        };
        return convert_config(&conversion, options, &protected);
    }
    for handler in [from.output(), Some(to)].into_iter().flatten() {
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
    let mut skipped_shards = source.skipped_shards.clone();
    let mut shards = vec!["weights".to_string()];
    if options.optimizer_state {
        if source.optimizer_shards.is_empty() {
            return Err(ConversionError::NoOptimizerState {
                format: from.name(),
                path: input.to_path_buf(),
            });
        }
        plan::add_optimizer_state(&mut outputs, &source, input)?;
        skipped_shards.retain(|shard| !source.optimizer_shards.contains(shard));
        shards.extend(source.optimizer_shards.iter().cloned());
    }
    if let Some(dtype) = options.dtype {
        plan::cast(&mut outputs, &source, input, dtype)?;
    }
    let files = shard(&outputs, to, options);
    let documents = match to {
        Output::FastLlm => {
            let state = metadata::State {
                outputs: &outputs,
                files: &files,
                shards: &shards,
            };
            vec![fast_llm_metadata_document(output, config, carried, &state)?]
        }
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
        skipped_shards,
        training_state: source.training_state.clone(),
        companions,
        overflows: Vec::new(),
    };
    if options.dry_run {
        return Ok(summary);
    }

    let metadata = match to {
        Output::FastLlm => fast_llm_file_metadata(config, &shards),
        Output::Hf(_) => hf_file_metadata(),
    };
    let tensors = TensorFiles {
        files: &files,
        outputs: &outputs,
        metadata: &metadata,
        input: &source,
        to,
        allow_overflow: options.allow_overflow,
        remote: options.remote_output.as_ref(),
    };
    let parted = options.part.is_some() || options.finalize;
    let fingerprint = parted.then(|| {
        parts::fingerprint(
            (from.name(), to.name()),
            documents.iter().map(Document::text),
            &files,
            &outputs,
        )
    });
    if let (Some(part), Some(fingerprint)) = (options.part, &fingerprint) {
        let part_of = parts::assign(&parts::file_bytes(&files, &outputs), part.count);
        let mine: Vec<_> = files
            .iter()
            .zip(&part_of)
            .filter(|(_, p)| **p == part.index)
            .map(|(file, _)| file.clone())
            .collect();
        source.read_in_order(
            (mine.iter())
                .flat_map(|(_, range)| &outputs[range.clone()])
                .map(|o| o.parameter.as_str()),
        );
        // A retried part replaces its previous attempt, whole (an object-store part: its
        // manifest deleted before anything else, by the caller's upload target).
        let out = OutputDir::create(&part.dir(output), Existing::Replace, &protected)?;
        let part_tensors = TensorFiles {
            files: &mine,
            ..tensors
        };
        summary.overflows = write_tensors_of(&out, &part_tensors, input, progress)?;
        source.check_unchanged()?;
        // The sizes the writer gave each file (it checks every tensor's length), wherever the
        // file went.
        let mut sizes = std::collections::BTreeMap::new();
        for (name, range) in &mine {
            let (header, lengths) =
                crate::writer::safetensors_header(&out.path(name), &metadata, &write::specs(&outputs[range.clone()]))?;
            let size = 8 + header.len() as u64 + lengths.iter().map(|l| *l as u64).sum::<u64>();
            sizes.insert(name.clone(), size);
        }
        // The manifest last: a part without it is missing to --finalize.
        out.write_text(parts::MANIFEST, &parts::manifest(part, fingerprint, &sizes))?;
        summary.files = mine.into_iter().map(|(f, _)| f).collect();
        summary.output = out.commit()?;
        return Ok(summary);
    }
    if let (true, Some(fingerprint)) = (options.finalize, &fingerprint) {
        let beside = match &options.remote_parts {
            Some(parts) => parts::Beside::Remote(&*parts.0),
            None => parts::Beside::Local,
        };
        let planned = parts::PlannedFiles {
            files: &files,
            bytes: &parts::file_bytes(&files, &outputs),
            fingerprint,
        };
        let gathered = parts::gather(output, beside, &planned)?;
        let out = OutputDir::create(output, options.existing(), &protected)?;
        parts::link_into(&out, output, beside, &gathered)?;
        documents.iter().try_for_each(|document| document.write(&out))?;
        summary.files = files.into_iter().map(|(f, _)| f).collect();
        complete_output(out, input, to, &mut summary)?;
        // The output holds the parts' files now; a part left behind is only disk space. An
        // object-store output's parts are removed by the caller, once it is published.
        if matches!(beside, parts::Beside::Local) {
            let _ = parts::remove_parts(output, &gathered, &protected);
        }
        return Ok(summary);
    }

    source.read_in_order(outputs.iter().map(|o| o.parameter.as_str()));
    let out = OutputDir::create(output, options.existing(), &protected)?;
    documents.iter().try_for_each(|document| document.write(&out))?;
    drop(documents);
    summary.overflows = write_tensors_of(&out, &tensors, input, progress)?;
    source.check_unchanged()?;
    summary.files = files.into_iter().map(|(f, _)| f).collect();
    complete_output(out, input, to, &mut summary)?;
    Ok(summary)
}

/// [`write_tensors`] from the checkpoint at `input`, its errors named for the user: an overflow
/// by its input file, a failed ranged read as the input's.
fn write_tensors_of(
    out: &OutputDir,
    tensors: &TensorFiles,
    input: &Path,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Vec<Overflowed>, ConversionError> {
    write_tensors(out, tensors, progress)
        .map_err(overflow_in(input))
        .map_err(read_error_first)
}

/// What follows the tensor files of a whole output (written at once or assembled from its
/// parts): the `ok` marker of a Fast-LLM output, the input's extra files and companions; then
/// `out` is committed.
fn complete_output(out: OutputDir, input: &Path, to: Output, summary: &mut Summary) -> Result<(), ConversionError> {
    if matches!(to, Output::FastLlm) {
        out.write_text("ok", "")?;
    }
    summary.missing_extra_files = copy_extra_files(&out, input, to)?;
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    out.commit()?;
    Ok(())
}

/// A read of the input failing while a tensor is written (a ranged read of a remote input, a
/// `pread` of a local one) reaches the writer as an IO error of the output file; it is the
/// input's error, named by its URL (and tensor) or path.
fn read_error_first(error: ConversionError) -> ConversionError {
    let ConversionError::Checkpoint(CheckpointError::Io { path, source }) = error else {
        return error;
    };
    let is_read = |e: &(dyn std::error::Error + Send + Sync + 'static)| {
        matches!(
            e.downcast_ref(),
            Some(CheckpointError::RangeRead { .. } | CheckpointError::Io { .. })
        )
    };
    if !source.get_ref().is_some_and(is_read) {
        return CheckpointError::Io { path, source }.into();
    }
    let kind = source.kind();
    let source = match source.into_inner().map(|inner| inner.downcast::<CheckpointError>()) {
        Some(Ok(read)) => return (*read).into(),
        Some(Err(other)) => std::io::Error::new(kind, other),
        None => kind.into(),
    };
    CheckpointError::Io { path, source }.into()
}

/// Names an overflowing tensor's input file by its path, like every other rejection of an input
/// file.
fn overflow_in(input: &Path) -> impl Fn(ConversionError) -> ConversionError + '_ {
    move |error| match error {
        ConversionError::Overflow(mut overflow) => {
            overflow.file = input.join(&overflow.file).display().to_string();
            ConversionError::Overflow(overflow)
        }
        other => other,
    }
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

/// A [`Conversion`] whose output format [`Side::output`] resolved.
struct Resolved<'a> {
    input: &'a Path,
    from: Side,
    output: &'a Path,
    to: Output,
}

/// `--config-only`: config.json or metadata.yaml, no tensors read or written.
fn convert_config(conversion: &Resolved, options: &Options, protected: &Protected) -> Result<Summary, ConversionError> {
    let &Resolved {
        input,
        from,
        output,
        to,
    } = conversion;
    if options.optimizer_state {
        return Err(ConversionError::ConfigOnly {
            option: "--optimizer-state",
        });
    }
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
            // No tensors: the state index is empty, the weights shard still listed.
            let state = metadata::State {
                outputs: &[],
                files: &[],
                shards: &["weights".to_string()],
            };
            (fast_llm_metadata_document(output, &config, carried, &state)?, placement)
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
    let out = OutputDir::create(output, options.existing(), protected)?;
    document.write(&out)?;
    // A config with custom modeling code loads only beside its `configuration_*.py`.
    summary.missing_extra_files = copy_extra_files(&out, input, to)?;
    // The tokenizer and generation files are part of a usable config too.
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    out.commit()?;
    Ok(summary)
}
