//! Whole-checkpoint conversion: config and weights, HF ↔ Fast-LLM and HF → HF through the
//! Fast-LLM model.
//!
//! Everything is checked before anything is written: the config converts, every planned tensor
//! exists with the shape the config implies and one dtype per parameter, and every input tensor
//! is consumed. Output tensors are then written in plan order, each computed once from borrowed
//! input bytes (a copy or a concatenation streams; a transpose uses one tensor-sized buffer).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use fastllm_config::{BaseModelConfig, Form, Map, ModelKind, Value, load_base_model};
use fastllm_core::weights::{PlanEntry, PlanLimits, Transform, elements, plan_within};
use fastllm_core::{Carried, ConvertError, Handler, HfLayout, NotCarried, Placement, Problem};

use crate::bytes::transpose;
use crate::carry::InputConfig;
pub use crate::carry::{DropCause, DroppedKey, import_hf};
use crate::companions::{Companions, companions};
use crate::naming::{config_file, export_error, in_file, limits, render_plan, tensor_bytes, tensor_listing};
use crate::read::read_document;
use crate::writer::{OutputDir, TensorSpec, write_safetensors};
use crate::{Checkpoint, CheckpointError, FileSet, dtype_size, open_fast_llm, open_hf};

/// The Fast-LLM version written to metadata.
pub const FAST_LLM_VERSION: &str = "0.4.0";
/// The shard suffix of Fast-LLM tensor names (`<parameter>/weights`).
const SHARD: &str = "/weights";
/// Fast-LLM starts a new file once a file holds this many elements.
const FAST_LLM_ELEMENTS_PER_FILE: u64 = 1 << 32;

/// One side of a conversion.
#[derive(Clone, Copy)]
pub enum Side {
    /// Fast-LLM's own format (`metadata.yaml` + safetensors).
    FastLlm,
    /// A registered HF format.
    Hf(&'static Handler),
}

impl Side {
    /// The format's name.
    pub fn name(&self) -> &'static str {
        match self {
            Side::FastLlm => "fast_llm",
            Side::Hf(handler) => handler.name,
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
}

fn render(problems: &[String]) -> String {
    let mut out = format!(
        "{} tensor problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(problem);
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
    /// The input's companion files (tokenizer, generation config, ...) copied, and the rest.
    pub companions: Companions,
}

impl Summary {
    /// Total tensor bytes written.
    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
}

/// Detects the format of a checkpoint directory: `metadata.yaml` means Fast-LLM, else the
/// `model_type` of `config.json`.
pub fn detect(dir: &Path) -> Result<Side, ConversionError> {
    if dir.join("metadata.yaml").is_file() {
        return Ok(Side::FastLlm);
    }
    let path = dir.join("config.json");
    let config = read_document(&path)?;
    Ok(Side::Hf(fastllm_core::detect(&config).map_err(in_file(path))?))
}

/// The input's base-model config, from `config.json` or `metadata.yaml` alone (no tensor
/// opened), with the HF keys it carries and the ones `--drop-key` / `--text-only` removed.
fn read_config(dir: &Path, side: Side, options: &Options) -> Result<InputConfig, ConversionError> {
    match side {
        Side::FastLlm => {
            let path = dir.join("metadata.yaml");
            let metadata = read_document(&path)?;
            let config = fast_llm_config(&path, &metadata)?;
            let (carried, dropped) = crate::carry::read_stored(&path, &metadata, options)?;
            Ok(InputConfig {
                carried,
                config,
                dropped,
            })
        }
        Side::Hf(handler) => crate::carry::read_hf(&dir.join("config.json"), handler, options),
    }
}

/// The input side: its config and a way to get each Fast-LLM tensor's bytes.
struct Input {
    checkpoint: Checkpoint,
    config: BaseModelConfig,
    /// Input tensors of parts the format does not convert, dropped with `text_only`.
    dropped_tensors: Vec<String>,
    /// Fast-LLM parameter → how to build it from input tensors.
    sources: BTreeMap<String, Source>,
}

/// How to get one Fast-LLM tensor from the input.
struct Source {
    inputs: Vec<String>,
    transform: Transform,
    shape: Vec<usize>,
    dtype: String,
}

/// The base-model config of a Fast-LLM checkpoint (its metadata.yaml `config.base_model`).
pub fn fast_llm_base_model(checkpoint: &Checkpoint) -> Result<BaseModelConfig, ConversionError> {
    fast_llm_config(&checkpoint.dir.join("metadata.yaml"), &checkpoint.config)
}

/// The base model of a parsed `metadata.yaml` (`path`, for messages).
pub fn fast_llm_config(path: &Path, metadata: &Map) -> Result<BaseModelConfig, ConversionError> {
    let invalid = |message: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let kind = match metadata.get("model") {
        Some(Value::Str(m)) => ModelKind::from_name(m).ok_or_else(|| invalid(format!("unknown model `{m}`")))?,
        _ => return Err(invalid("no `model` (gpt or multimodal)".into()).into()),
    };
    let base_model = fastllm_core::dict::get(metadata, "config.base_model")
        .cloned()
        .unwrap_or(Value::Map(Map::new()));
    load_base_model(kind, &base_model).map_err(|e| invalid(format!("config.base_model: {e}")).into())
}

/// Opens the input's tensors and checks them against `config` (the input's, from [`read_config`]).
fn open_input(dir: &Path, side: Side, config: BaseModelConfig, text_only: bool) -> Result<Input, ConversionError> {
    match side {
        Side::FastLlm => {
            let checkpoint = open_fast_llm(dir)?;
            let mut sources = BTreeMap::new();
            let mut problems = Vec::new();
            for name in checkpoint.files.names() {
                match name.split_once('/') {
                    Some((parameter, "weights")) => {
                        let tensor = checkpoint.files.get(name).expect("listed");
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
                    _ => problems.push(format!(
                        "`{name}` in {}: not a `<parameter>/weights` tensor (optimizer state is not converted)",
                        checkpoint.files.get(name).map_or("", |t| t.file)
                    )),
                }
            }
            if !problems.is_empty() {
                return Err(ConversionError::Tensors {
                    path: dir.to_path_buf(),
                    problems,
                });
            }
            Ok(Input {
                checkpoint,
                config,
                dropped_tensors: Vec::new(),
                sources,
            })
        }
        Side::Hf(handler) => {
            let checkpoint = open_hf(dir)?;
            let mut entries = weight_plan(
                handler,
                &config,
                &limits(&checkpoint.files),
                &config_file(dir, side),
                true,
            )?;
            respell(
                &mut entries,
                &handler.converter().base_model.hf_prefix_aliases,
                &checkpoint.files,
            );
            let mut problems = Vec::new();
            let mut sources = BTreeMap::new();
            let mut consumed = BTreeSet::new();
            let listing = tensor_listing(dir, side);
            for entry in entries {
                let dtype = check_inputs(&checkpoint.files, &entry, listing, &mut problems);
                consumed.extend(entry.hf.iter().cloned());
                sources.insert(
                    entry.fast_llm.clone(),
                    Source {
                        inputs: entry.hf,
                        transform: entry.transform,
                        shape: entry.fast_llm_shape,
                        dtype,
                    },
                );
            }
            let (unconverted, leftovers): (Vec<&str>, Vec<&str>) = checkpoint
                .files
                .names()
                .filter(|n| !consumed.contains(*n))
                .partition(|n| handler.unconverted_tensor(n).is_some());
            let dropped_tensors = if text_only {
                unconverted.iter().map(|n| n.to_string()).collect()
            } else {
                problems.extend(unconverted_tensors(handler, &unconverted));
                Vec::new()
            };
            let leftovers: Vec<String> = leftovers
                .into_iter()
                .map(|n| format!("`{n}` in {}", checkpoint.files.get(n).map_or("", |t| t.file)))
                .collect();
            if !leftovers.is_empty() {
                problems.push(format!(
                    "{} tensor(s) the {} format does not map (nothing would convert them): {}",
                    leftovers.len(),
                    handler.name,
                    leftovers.join(", ")
                ));
            }
            if !problems.is_empty() {
                return Err(ConversionError::Tensors {
                    path: dir.to_path_buf(),
                    problems,
                });
            }
            Ok(Input {
                checkpoint,
                config,
                dropped_tensors,
                sources,
            })
        }
    }
}

/// One problem per unconverted part with tensors in `names`, naming them.
fn unconverted_tensors(handler: &Handler, names: &[&str]) -> Vec<String> {
    handler
        .unconverted()
        .iter()
        .filter_map(|part| {
            let held: Vec<&str> = names.iter().copied().filter(|n| part.holds_tensor(n)).collect();
            (!held.is_empty()).then(|| {
                format!(
                    "{} tensor(s) of the {}, which {} does not convert (pass {} to convert without them, \
                     dropping them): {}",
                    held.len(),
                    part.part,
                    handler.name,
                    fastllm_core::ACCEPT_OPTION,
                    held.join(", ")
                )
            })
        })
        .collect()
}

/// Rewrites the planned HF names to a format's alternative prefixes when the checkpoint spells
/// any of its tensors that way (all or nothing: a mixed checkpoint then fails by name).
fn respell(entries: &mut [PlanEntry], aliases: &[(&str, &str)], files: &FileSet) {
    let alternative = aliases
        .iter()
        .any(|(_, alternative)| files.names().any(|n| n.starts_with(alternative)));
    if !alternative {
        return;
    }
    for name in entries.iter_mut().flat_map(|e| e.hf.iter_mut()) {
        if let Some((declared, alternative)) = aliases.iter().find(|(d, _)| name.starts_with(d)) {
            *name = format!("{alternative}{}", &name[declared.len()..]);
        }
    }
}

/// The handler's weight plan for `config` (read from `source`) within `limits`. With
/// `name_hf_keys` (the config was imported through this handler), each problem also names the
/// HF key behind its Fast-LLM path.
fn weight_plan(
    handler: &Handler,
    config: &BaseModelConfig,
    limits: &PlanLimits,
    source: &Path,
    name_hf_keys: bool,
) -> Result<Vec<PlanEntry>, ConversionError> {
    let section = &handler.converter().base_model;
    if section.weights.is_empty() {
        return Err(ConversionError::WeightsNotDeclared { format: handler.name });
    }
    plan_within(section, &config.to_form(Form::Full), limits).map_err(|mut problems| {
        if name_hf_keys {
            for problem in &mut problems {
                problem.hf = problem.fast_llm.as_deref().and_then(|path| handler.hf_source(path));
            }
        }
        ConversionError::Plan {
            path: source.to_path_buf(),
            format: handler.name,
            problems,
        }
    })
}

/// Checks one plan entry's HF tensors: present (in `listing`), with the planned shapes and one
/// dtype. Each problem names the tensor and its file.
fn check_inputs(files: &FileSet, entry: &PlanEntry, listing: &str, problems: &mut Vec<String>) -> String {
    let mut dtype: Option<String> = None;
    for (name, expected) in entry.hf.iter().zip(&entry.hf_shapes) {
        match files.get(name) {
            None => problems.push(format!(
                "`{name}` (for Fast-LLM `{}`): missing from {listing}",
                entry.fast_llm
            )),
            Some(tensor) => {
                if tensor.shape != expected.as_slice() {
                    problems.push(format!(
                        "`{name}` in {}: shape {:?}, the config implies {expected:?}",
                        tensor.file, tensor.shape
                    ));
                }
                match &dtype {
                    None => dtype = Some(tensor.dtype.to_string()),
                    Some(d) if d != tensor.dtype => problems.push(format!(
                        "`{name}` in {}: dtype {} differs from {d} of the other parts of `{}`",
                        tensor.file, tensor.dtype, entry.fast_llm
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    dtype.unwrap_or_default()
}

impl Input {
    /// The bytes of Fast-LLM tensor `name` (borrowed when no transform is needed).
    fn fast_llm_bytes(&self, name: &str) -> Cow<'_, [u8]> {
        let source = &self.sources[name];
        let part = |i: usize| self.checkpoint.files.get(&source.inputs[i]).expect("checked").data;
        match source.transform {
            Transform::Copy | Transform::Reshape => Cow::Borrowed(part(0)),
            Transform::Concat => {
                let mut out = Vec::with_capacity((0..source.inputs.len()).map(|i| part(i).len()).sum());
                for i in 0..source.inputs.len() {
                    out.extend_from_slice(part(i));
                }
                Cow::Owned(out)
            }
            Transform::Transpose => {
                let data = part(0);
                let mut out = vec![0; data.len()];
                // The HF tensor is [shape[1], shape[0]].
                transpose(data, source.shape[1], source.shape[0], element(&source.dtype), &mut out);
                Cow::Owned(out)
            }
            Transform::TransposeExperts => {
                let tensor = self.checkpoint.files.get(&source.inputs[0]).expect("checked");
                let (experts, rows, cols) = (tensor.shape[0], tensor.shape[1], tensor.shape[2]);
                let element = element(&source.dtype);
                let block = rows * cols * element;
                let mut out = vec![0; tensor.data.len()];
                for e in 0..experts {
                    let range = e * block..(e + 1) * block;
                    transpose(&tensor.data[range.clone()], rows, cols, element, &mut out[range]);
                }
                Cow::Owned(out)
            }
            Transform::TransposeConcat => {
                let rows = source.shape[0] / source.inputs.len();
                let mut out = Vec::with_capacity((0..source.inputs.len()).map(|i| part(i).len()).sum());
                for i in 0..source.inputs.len() {
                    let data = part(i);
                    let mut block = vec![0; data.len()];
                    transpose(data, source.shape[1], rows, element(&source.dtype), &mut block);
                    out.extend_from_slice(&block);
                }
                Cow::Owned(out)
            }
        }
    }
}

fn element(dtype: &str) -> usize {
    dtype_size(dtype).unwrap_or(1)
}

/// Part `i` of `parts` HF tensors of a Fast-LLM tensor (export direction).
fn hf_part<'a>(
    fast_llm: &'a [u8],
    shape: &[usize],
    transform: Transform,
    i: usize,
    parts: usize,
    element: usize,
) -> Cow<'a, [u8]> {
    match transform {
        Transform::Copy | Transform::Reshape => Cow::Borrowed(fast_llm),
        Transform::Concat => {
            let len = fast_llm.len() / parts;
            Cow::Borrowed(&fast_llm[i * len..(i + 1) * len])
        }
        Transform::Transpose => {
            let mut out = vec![0; fast_llm.len()];
            transpose(fast_llm, shape[0], shape[1], element, &mut out);
            Cow::Owned(out)
        }
        Transform::TransposeConcat => {
            let len = fast_llm.len() / parts;
            let slice = &fast_llm[i * len..(i + 1) * len];
            let mut out = vec![0; len];
            transpose(slice, shape[0] / parts, shape[1], element, &mut out);
            Cow::Owned(out)
        }
        Transform::TransposeExperts => {
            // `shape` is the HF shape [E, H, I]; each Fast-LLM block is [I, H].
            let (experts, rows, cols) = (shape[0], shape[1], shape[2]);
            let block = rows * cols * element;
            let mut out = vec![0; fast_llm.len()];
            for e in 0..experts {
                let range = e * block..(e + 1) * block;
                transpose(&fast_llm[range.clone()], cols, rows, element, &mut out[range]);
            }
            Cow::Owned(out)
        }
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

/// [`convert`], calling `progress(bytes written, total bytes)` after each tensor.
pub fn convert_with_progress(
    input: &Path,
    from: Side,
    output: &Path,
    to: Side,
    options: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ConversionError> {
    crate::paths::check_output_path(input, output)?;
    if options.config_only {
        return convert_config(input, from, output, to, options);
    }
    for side in [from, to] {
        if let Side::Hf(handler) = side
            && handler.converter().base_model.weights.is_empty()
        {
            return Err(ConversionError::WeightsNotDeclared { format: handler.name });
        }
    }
    // The config must convert before any tensor is looked at: its rejection is the real reason.
    let InputConfig {
        config,
        carried,
        dropped: dropped_keys,
    } = read_config(input, from, options)?;
    let placement = carried_to(to, &config, &carried, options.layout).map_err(export_error(input, from))?;
    let companions = companions_of(input, to)?;
    let source = open_input(input, from, config, options.text_only)?;
    let config = &source.config;
    // What the output holds: (name, dtype, shape, Fast-LLM parameter, part index, parts, transform).
    let mut outputs: Vec<(PlannedTensor, String, usize, usize, Vec<usize>)> = Vec::new();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    match to {
        Side::FastLlm => {
            for (parameter, src) in &source.sources {
                used.insert(parameter.clone());
                let Some(bytes) = tensor_bytes(&src.shape, &src.dtype) else {
                    problems.push(format!(
                        "Fast-LLM `{parameter}`: shape {:?} of {} overflows",
                        src.shape, src.dtype
                    ));
                    continue;
                };
                let tensor = PlannedTensor {
                    name: format!("{parameter}{SHARD}"),
                    dtype: src.dtype.clone(),
                    shape: src.shape.clone(),
                    from: src.inputs.clone(),
                    transform: src.transform,
                    bytes,
                };
                outputs.push((tensor, parameter.clone(), 0, 1, src.shape.clone()));
            }
        }
        Side::Hf(handler) => {
            let config = match config {
                BaseModelConfig::Gpt(_) | BaseModelConfig::MultiModal(_) => config,
            };
            let name_hf_keys = matches!(from, Side::Hf(h) if std::ptr::eq(h, handler));
            let limits = limits(&source.checkpoint.files);
            let listing = tensor_listing(input, from);
            for entry in weight_plan(handler, config, &limits, &config_file(input, from), name_hf_keys)? {
                let Some(src) = source.sources.get(&entry.fast_llm) else {
                    problems.push(format!("Fast-LLM `{}`: missing from {listing}", entry.fast_llm));
                    continue;
                };
                if src.shape != entry.fast_llm_shape {
                    let file = source.checkpoint.files.get(&src.inputs[0]).map_or("", |t| t.file);
                    problems.push(format!(
                        "Fast-LLM `{}` in {file}: shape {:?}, the config implies {:?}",
                        entry.fast_llm, src.shape, entry.fast_llm_shape
                    ));
                    continue;
                }
                used.insert(entry.fast_llm.clone());
                let parts = entry.hf.len();
                for (i, (name, shape)) in entry.hf.iter().zip(&entry.hf_shapes).enumerate() {
                    let Some(bytes) = tensor_bytes(shape, &src.dtype) else {
                        problems.push(format!("`{name}`: shape {shape:?} of {} overflows", src.dtype));
                        continue;
                    };
                    let tensor = PlannedTensor {
                        name: name.clone(),
                        dtype: src.dtype.clone(),
                        shape: shape.clone(),
                        from: src.inputs.clone(),
                        transform: entry.transform,
                        bytes,
                    };
                    outputs.push((tensor, entry.fast_llm.clone(), i, parts, entry.fast_llm_shape.clone()));
                }
            }
        }
    }
    let unused: Vec<&String> = source.sources.keys().filter(|p| !used.contains(*p)).collect();
    if !unused.is_empty() {
        problems.push(format!(
            "{} parameter(s) of the input have no place in {}: {}",
            unused.len(),
            to.name(),
            unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(ConversionError::Tensors {
            path: input.to_path_buf(),
            problems,
        });
    }
    let tensors: Vec<PlannedTensor> = outputs.iter().map(|o| o.0.clone()).collect();
    let mut summary = Summary {
        from: from.name(),
        to: to.name(),
        output: output.to_path_buf(),
        tensors,
        files: Vec::new(),
        missing_extra_files: extra_files(input, to).1,
        carried_keys: placement.carried,
        not_carried_keys: placement.not_carried,
        dropped_keys,
        dropped_tensors: source.dropped_tensors.clone(),
        companions,
    };
    if options.dry_run {
        return Ok(summary);
    }

    let out = OutputDir::create(output, options.force)?;
    let total: u64 = outputs.iter().map(|(t, ..)| t.bytes).sum();
    let mut done = 0u64;
    let files = if options.config_only {
        Vec::new()
    } else {
        shard(&outputs, to, options)
    };
    match to {
        Side::FastLlm => write_fast_llm_metadata(&out, config, &carried, &outputs, &files)?,
        Side::Hf(handler) => {
            let (hf, _) = handler
                .export_carrying(config, &carried, options.layout)
                .map_err(export_error(input, from))?;
            out.write_text("config.json", &format!("{}\n", Value::Map(hf).to_json_pretty()))?;
            if files.len() > 1 {
                write_hf_index(&out, &outputs, &files)?;
            }
        }
    }
    let metadata = match to {
        Side::FastLlm => fast_llm_file_metadata(config),
        Side::Hf(_) => BTreeMap::from([("format".to_string(), "pt".to_string())]),
    };
    for (file, range) in &files {
        let specs: Vec<TensorSpec> = outputs[range.clone()]
            .iter()
            .map(|(t, ..)| TensorSpec {
                name: t.name.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
            })
            .collect();
        let mut cached: Option<(String, Cow<[u8]>)> = None;
        write_safetensors(&out.path(file), &metadata, &specs, |i, sink: &mut dyn Write| {
            let (tensor, parameter, part, parts, fl_shape) = &outputs[range.start + i];
            let src = &source.sources[parameter];
            // A Fast-LLM tensor made of HF tensors without a transpose streams straight through.
            if matches!(to, Side::FastLlm)
                && matches!(src.transform, Transform::Copy | Transform::Reshape | Transform::Concat)
            {
                for input in &src.inputs {
                    sink.write_all(source.checkpoint.files.get(input).expect("checked").data)?;
                    source.checkpoint.files.release(input);
                }
                done += tensor.bytes;
                progress(done, total);
                return Ok(());
            }
            if cached.as_ref().is_none_or(|(p, _)| p != parameter) {
                cached = Some((parameter.clone(), source.fast_llm_bytes(parameter)));
            }
            let bytes = &cached.as_ref().expect("filled").1;
            // Fast-LLM outputs are the Fast-LLM bytes; HF outputs apply the export transform.
            let transform = if matches!(to, Side::FastLlm) {
                Transform::Copy
            } else {
                tensor.transform
            };
            // Stacked experts need the HF shape; every other transform the Fast-LLM one.
            let shape = if transform == Transform::TransposeExperts {
                &tensor.shape
            } else {
                fl_shape
            };
            let data = hf_part(bytes, shape, transform, *part, *parts, element(&tensor.dtype));
            sink.write_all(&data)?;
            done += tensor.bytes;
            progress(done, total);
            if part + 1 == *parts {
                // The parameter is fully written: free its buffers and its input pages.
                cached = None;
                for input in &source.sources[parameter].inputs {
                    source.checkpoint.files.release(input);
                }
            }
            Ok(())
        })?;
    }
    if matches!(to, Side::FastLlm) && !options.config_only {
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
    to: Side,
    config: &BaseModelConfig,
    carried: &Carried,
    layout: HfLayout,
) -> Result<Placement, ConvertError> {
    Ok(match to {
        Side::Hf(handler) => handler.export_carrying(config, carried, layout)?.1,
        Side::FastLlm => Placement {
            carried: carried.keys().map(String::from).collect(),
            not_carried: Vec::new(),
        },
    })
}

/// The input's companion files; the weights (`*.safetensors`, handled by the conversion) and
/// the output format's modeling files (copied by [`copy_extra_files`]) are neither.
fn companions_of(input: &Path, to: Side) -> Result<Companions, CheckpointError> {
    let extra: &[&str] = match to {
        Side::Hf(handler) => handler.extra_files,
        Side::FastLlm => &[],
    };
    companions(input, &|name| extra.contains(&name))
}

/// The files the output format's checkpoints carry (e.g. `modeling_*.py`) split into the ones
/// the input directory has and the ones it lacks.
fn extra_files(input: &Path, to: Side) -> (Vec<&'static str>, Vec<String>) {
    let Side::Hf(handler) = to else {
        return (Vec::new(), Vec::new());
    };
    let (present, missing): (Vec<&str>, Vec<&str>) =
        handler.extra_files.iter().partition(|file| input.join(file).is_file());
    (present, missing.into_iter().map(String::from).collect())
}

/// Copies the format's extra files the input has; returns the ones it lacks.
fn copy_extra_files(out: &OutputDir, input: &Path, to: Side) -> Result<Vec<String>, CheckpointError> {
    let (present, missing) = extra_files(input, to);
    for file in present {
        let source = input.join(file);
        std::fs::copy(&source, out.path(file)).map_err(|e| CheckpointError::Io {
            path: source,
            source: e,
        })?;
        crate::writer::readable_by_all(&out.path(file))?;
    }
    Ok(missing)
}

/// `--config-only`: config.json or metadata.yaml, no tensors read or written.
fn convert_config(
    input: &Path,
    from: Side,
    output: &Path,
    to: Side,
    options: &Options,
) -> Result<Summary, ConversionError> {
    let InputConfig {
        config,
        carried,
        dropped: dropped_keys,
    } = read_config(input, from, options)?;
    let hf = match to {
        Side::Hf(handler) => Some(
            handler
                .export_carrying(&config, &carried, options.layout)
                .map_err(export_error(input, from))?
                .0,
        ),
        Side::FastLlm => None,
    };
    let placement = carried_to(to, &config, &carried, options.layout).map_err(export_error(input, from))?;
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
        companions: companions_of(input, to)?,
    };
    if options.dry_run {
        return Ok(summary);
    }
    let out = OutputDir::create(output, options.force)?;
    match hf {
        Some(hf) => out.write_text("config.json", &format!("{}\n", Value::Map(hf).to_json_pretty()))?,
        None => write_fast_llm_metadata(&out, &config, &carried, &[], &[])?,
    }
    // A config with custom modeling code loads only beside its `configuration_*.py`.
    summary.missing_extra_files = copy_extra_files(&out, input, to)?;
    // The tokenizer and generation files are part of a usable config too.
    crate::companions::copy(&out, input, &summary.companions.copied)?;
    out.commit()?;
    Ok(summary)
}

/// Splits the output tensors into files: Fast-LLM's element budget, or HF's `max_shard_bytes`.
fn shard(
    outputs: &[(PlannedTensor, String, usize, usize, Vec<usize>)],
    to: Side,
    options: &Options,
) -> Vec<(String, std::ops::Range<usize>)> {
    let mut ranges = Vec::new();
    let (mut start, mut size) = (0usize, 0u64);
    for (i, (tensor, ..)) in outputs.iter().enumerate() {
        let weight = match to {
            // Shapes of planned tensors are checked: their element counts fit.
            Side::FastLlm => elements(&tensor.shape).unwrap_or(u64::MAX),
            Side::Hf(_) => tensor.bytes,
        };
        let limit = match to {
            Side::FastLlm => FAST_LLM_ELEMENTS_PER_FILE,
            Side::Hf(_) => options.max_shard_bytes,
        };
        if matches!(to, Side::Hf(_)) && i > start && size.saturating_add(weight) > limit {
            ranges.push(start..i);
            (start, size) = (i, 0);
        }
        size = size.saturating_add(weight);
        if matches!(to, Side::FastLlm) && size >= limit {
            ranges.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    if start < outputs.len() || ranges.is_empty() {
        ranges.push(start..outputs.len());
    }
    let n = ranges.len();
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let name = match to {
                Side::FastLlm => format!("model_{i}.safetensors"),
                Side::Hf(_) if n == 1 => "model.safetensors".to_string(),
                Side::Hf(_) => format!("model-{:05}-of-{n:05}.safetensors", i + 1),
            };
            (name, range)
        })
        .collect()
}

fn fast_llm_metadata(config: &BaseModelConfig) -> Map {
    let distributed = Value::from_json_str(r#"{"local_world_size": 1, "rank": 0, "world_size": 1}"#).expect("valid");
    let mut model_config = Map::new();
    model_config.insert("type".into(), Value::Str(config.kind().name().into()));
    model_config.insert("base_model".into(), Value::Map(config.to_form(Form::Explicit)));
    model_config.insert("distributed".into(), distributed);
    let mut metadata = Map::new();
    metadata.insert("config".into(), Value::Map(model_config));
    metadata.insert("fast_llm_version".into(), Value::Str(FAST_LLM_VERSION.into()));
    metadata.insert("format".into(), Value::Str("fast_llm".into()));
    metadata.insert("model".into(), Value::Str(config.kind().name().into()));
    metadata.insert("shards".into(), Value::List(vec![Value::Str("weights".into())]));
    metadata
}

/// Safetensors header metadata of Fast-LLM files: the metadata without `state_index`, each value
/// as a string (YAML for structured ones), as Fast-LLM writes it.
fn fast_llm_file_metadata(config: &BaseModelConfig) -> BTreeMap<String, String> {
    fast_llm_metadata(config)
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Str(s) => s,
                other => other.to_yaml(),
            };
            (k, text)
        })
        .chain([("metadata".to_string(), "{}\n".to_string())])
        .collect()
}

fn write_fast_llm_metadata(
    out: &OutputDir,
    config: &BaseModelConfig,
    carried: &Carried,
    outputs: &[(PlannedTensor, String, usize, usize, Vec<usize>)],
    files: &[(String, std::ops::Range<usize>)],
) -> Result<(), CheckpointError> {
    let mut metadata = fast_llm_metadata(config);
    let state_index: Map = files
        .iter()
        .flat_map(|(file, range)| {
            outputs[range.clone()]
                .iter()
                .map(move |(t, ..)| (t.name.clone(), Value::Str(file.clone())))
        })
        .collect();
    let mut free_form = Map::from([("state_index".to_string(), Value::Map(state_index))]);
    crate::carry::store(&mut free_form, carried);
    metadata.insert("metadata".into(), Value::Map(free_form));
    out.write_text("metadata.yaml", &Value::Map(metadata).to_yaml())
}

fn write_hf_index(
    out: &OutputDir,
    outputs: &[(PlannedTensor, String, usize, usize, Vec<usize>)],
    files: &[(String, std::ops::Range<usize>)],
) -> Result<(), CheckpointError> {
    let total: u64 = outputs.iter().map(|(t, ..)| t.bytes).sum();
    let weight_map: Map = files
        .iter()
        .flat_map(|(file, range)| {
            outputs[range.clone()]
                .iter()
                .map(move |(t, ..)| (t.name.clone(), Value::Str(file.clone())))
        })
        .collect();
    let index = Map::from([
        (
            "metadata".to_string(),
            Value::Map(Map::from([("total_size".to_string(), Value::Int(total as i128))])),
        ),
        ("weight_map".to_string(), Value::Map(weight_map)),
    ]);
    out.write_text(
        "model.safetensors.index.json",
        &format!("{}\n", Value::Map(index).to_json_pretty()),
    )
}

/// Writes a synthetic HF checkpoint of `handler`'s format for `config`: its config.json and
/// every tensor of the weight plan, filled with deterministic pseudo-random bytes. For tests of
/// formats without reference fixtures, and for benchmarks.
pub fn write_synthetic_hf(
    handler: &'static Handler,
    config: &BaseModelConfig,
    dir: &Path,
    dtype: &str,
    max_shard_bytes: u64,
) -> Result<Summary, ConversionError> {
    let hf = handler.export(config, HfLayout::V4)?;
    let element = dtype_size(dtype).ok_or_else(|| CheckpointError::Invalid {
        path: dir.to_path_buf(),
        message: format!("unknown dtype {dtype}"),
    })?;
    let mut outputs = Vec::new();
    for entry in weight_plan(handler, config, &PlanLimits::DEFAULT, dir, false)? {
        for (name, shape) in entry.hf.iter().zip(&entry.hf_shapes) {
            let bytes = elements(shape)
                .and_then(|n| n.checked_mul(element as u64))
                .ok_or_else(|| CheckpointError::invalid(dir, format!("tensor `{name}`: shape {shape:?} overflows")))?;
            let tensor = PlannedTensor {
                name: name.clone(),
                dtype: dtype.to_string(),
                shape: shape.clone(),
                from: Vec::new(),
                transform: Transform::Copy,
                bytes,
            };
            outputs.push((tensor, entry.fast_llm.clone(), 0, 1, shape.clone()));
        }
    }
    let to = Side::Hf(handler);
    let options = Options {
        max_shard_bytes,
        ..Options::default()
    };
    let files = shard(&outputs, to, &options);
    let out = OutputDir::create(dir, true)?;
    out.write_text("config.json", &format!("{}\n", Value::Map(hf).to_json_pretty()))?;
    if files.len() > 1 {
        write_hf_index(&out, &outputs, &files)?;
    }
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    for (file, range) in &files {
        let specs: Vec<TensorSpec> = outputs[range.clone()]
            .iter()
            .map(|(t, ..)| TensorSpec {
                name: t.name.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
            })
            .collect();
        write_safetensors(&out.path(file), &metadata, &specs, |i, sink: &mut dyn Write| {
            let tensor = &outputs[range.start + i].0;
            let mut state = tensor.name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
            });
            let mut buffer = vec![0u8; 1 << 16];
            let mut left = tensor.bytes as usize;
            while left > 0 {
                let n = left.min(buffer.len());
                for chunk in buffer[..n].chunks_mut(8) {
                    // xorshift64*: fast, deterministic, never all zeros.
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
                    chunk.copy_from_slice(&value[..chunk.len()]);
                }
                sink.write_all(&buffer[..n])?;
                left -= n;
            }
            Ok(())
        })?;
    }
    let tensors = outputs.into_iter().map(|o| o.0).collect();
    let files = files.into_iter().map(|(f, _)| f).collect();
    out.commit()?;
    Ok(Summary {
        from: "synthetic",
        to: handler.name,
        output: dir.to_path_buf(),
        tensors,
        files,
        missing_extra_files: Vec::new(),
        carried_keys: Vec::new(),
        not_carried_keys: Vec::new(),
        dropped_keys: Vec::new(),
        dropped_tensors: Vec::new(),
        companions: Companions::default(),
    })
}
