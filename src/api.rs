//! The operations of the command line as functions on data, for the Python package: dicts in
//! (as [`Map`]s), dicts and [`JsonSummary`] out, and every failure a [`Failure`] carrying its
//! message (what the CLI prints after `error: `) and its problems one by one.

use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;

use fastllm_checkpoint::CheckpointError;
use fastllm_checkpoint::convert::{self, Conversion, ConversionError};
use fastllm_checkpoint::distributed::DistributedCheckpoint;
use fastllm_checkpoint::source::RemoteInput;
use fastllm_config::{self as config, Form, Map, ModelKind, Value};
use fastllm_core::{self as core, ConvertError, HfLayout, Problem};

use crate::summary::JsonSummary;

/// The command line's spelling of the options core's messages name ([`core::hint`]). The Python
/// package speaks it too, so that `str(error)` is what the command line prints.
#[derive(Debug, Clone, Copy)]
pub struct Flags;

impl core::hint::Spelling for Flags {
    fn spell(&self, hint: core::hint::Hint) -> String {
        use core::hint::Hint;
        match hint {
            Hint::DropKey(key) => format!("--drop-key {key}"),
            Hint::DropKeys => "--drop-key".into(),
            Hint::TextOnly => "--text-only".into(),
            Hint::HfLayoutV5 => "--hf-layout v5".into(),
        }
    }
}

/// Makes core's messages name the command line's options ([`Flags`]); the command line and the
/// Python package call it before anything else.
pub fn use_flags() {
    core::hint::set_spelling(&Flags);
}

/// Why an operation failed: the CLI's message, and each problem in it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub message: String,
    pub problems: Vec<ProblemRecord>,
    /// The conversion was stopped by its progress callback (nothing was written).
    pub interrupted: bool,
}

/// One problem: where (file, HF key, Fast-LLM path, tensor; each when known) and what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProblemRecord {
    pub file: Option<String>,
    pub hf_key: Option<String>,
    pub fast_llm_path: Option<String>,
    pub tensor: Option<String>,
    pub message: String,
}

impl Failure {
    /// A failure of one problem, `message`.
    pub fn message(message: impl Into<String>) -> Self {
        let message = message.into();
        Failure {
            problems: vec![ProblemRecord {
                message: message.clone(),
                ..ProblemRecord::default()
            }],
            message,
            interrupted: false,
        }
    }

    /// A config rejection, read from `file` when it came from one.
    pub fn config(error: &ConvertError, file: Option<&Path>) -> Self {
        let message = match file {
            Some(file) => format!("{}: {error}", file.display()),
            None => error.to_string(),
        };
        Failure {
            problems: problems(error.problems(), file, &message),
            message,
            interrupted: false,
        }
    }

    /// A failed conversion.
    pub fn conversion(error: &ConversionError) -> Self {
        let message = error.to_string();
        let file = |path: &Path| Some(path.display().to_string());
        let problems = match error {
            ConversionError::Config(e) => problems(e.problems(), None, &message),
            ConversionError::ConfigFile { path, source } => problems(source.problems(), Some(path), &message),
            ConversionError::Plan { path, problems: p, .. } => problems(p, Some(path), &message),
            ConversionError::Tensors { path, problems } => problems
                .iter()
                .map(|problem| ProblemRecord {
                    file: file(path),
                    tensor: quoted_after(problem, "tensor ").or_else(|| quoted_after(problem, "")),
                    message: problem.clone(),
                    ..ProblemRecord::default()
                })
                .collect(),
            ConversionError::Checkpoint(e) => vec![checkpoint_problem(e, &message)],
            _ => vec![ProblemRecord {
                message: message.clone(),
                ..ProblemRecord::default()
            }],
        };
        Failure {
            interrupted: matches!(error, ConversionError::Checkpoint(CheckpointError::Interrupted)),
            message,
            problems,
        }
    }
}

/// The `` `name` `` right after the first `prefix` in `text` (at its start for `""`).
fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_string())
}

fn problems(problems: &[Problem], file: Option<&Path>, message: &str) -> Vec<ProblemRecord> {
    let file = file.map(|f| f.display().to_string());
    if problems.is_empty() {
        return vec![ProblemRecord {
            file,
            message: message.into(),
            ..ProblemRecord::default()
        }];
    }
    problems
        .iter()
        .map(|p| ProblemRecord {
            file: file.clone(),
            hf_key: p.hf.clone(),
            fast_llm_path: p.fast_llm.clone(),
            tensor: None,
            message: p.message.clone(),
        })
        .collect()
}

fn checkpoint_problem(error: &CheckpointError, message: &str) -> ProblemRecord {
    use CheckpointError as E;
    let (file, tensor) = match error {
        E::Io { path, .. }
        | E::InputChanged { path, .. }
        | E::Safetensors { path, .. }
        | E::Invalid { path, .. }
        | E::Pickle { path }
        | E::NoWeights { path }
        | E::Unreadable { path, .. }
        | E::OutputExists { path }
        | E::RemovalRefused { path, .. } => (Some(path), None),
        E::MissingShard { path, tensor, .. }
        | E::UnsafeShardName { path, tensor, .. }
        | E::TensorNotInShard { path, tensor, .. }
        | E::DuplicateTensor { path, tensor, .. }
        | E::UnindexedTensor { path, tensor, .. } => (Some(path), Some(tensor.clone())),
        E::RangeRead { url, tensor, .. } => (Some(&std::path::PathBuf::from(url)), Some(tensor.clone())),
        E::OldOutputLeft { output, .. } => (Some(output), None),
        E::OutputOverlapsInput { output, .. } => (Some(output), None),
        E::Distributed(_) | E::Interrupted => (None, None),
    };
    ProblemRecord {
        file: file.map(|f| f.display().to_string()),
        tensor,
        message: message.into(),
        ..ProblemRecord::default()
    }
}

/// `auto`, a registered HF format, `fast_llm` or `fast_llm_distributed`, as `convert` takes them.
pub fn side(name: &str, input: Option<&Path>) -> Result<convert::Side, String> {
    match (name, input) {
        ("fast_llm", _) => Ok(convert::Side::FastLlm),
        ("fast_llm_distributed", _) => Ok(convert::Side::FastLlmDistributed),
        ("auto", Some(dir)) => convert::detect(dir).map_err(|e| e.to_string()),
        ("auto", None) => Err("`auto` only applies to --from".into()),
        (name, Some(_)) => core::find(name)
            .map(convert::Side::Hf)
            .map_err(|e| format!("{e}, fast_llm or fast_llm_distributed")),
        (name, None) => core::find(name)
            .map(convert::Side::Hf)
            .map_err(|e| format!("{e}, or fast_llm")),
    }
}

/// What [`convert`] converts: formats as the command line names them (`auto` detects the
/// input's), and input and output paths or object-store URLs.
#[derive(Debug, Clone, Copy)]
pub struct ConvertRequest<'a> {
    /// The input's format.
    pub from: &'a str,
    /// The output's format.
    pub to: &'a str,
    /// The input checkpoint.
    pub input: &'a Path,
    /// Where the output goes.
    pub output: &'a Path,
}

impl<'a> ConvertRequest<'a> {
    /// The conversion between local paths this request names: its formats resolved (`auto`
    /// detected from the input), the input's first.
    pub fn resolve(&self) -> Result<Conversion<'a>, String> {
        Ok(Conversion {
            input: self.input,
            from: side(self.from, Some(self.input))?,
            output: self.output,
            to: side(self.to, None)?,
        })
    }
}

/// Converts a checkpoint; `progress(done, total)` may stop it (`Break`): the failure then says
/// `interrupted` and nothing is left of the output.
pub fn convert(
    request: &ConvertRequest,
    options: &convert::Options,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<JsonSummary, Failure> {
    if crate::remote::is_remote(request.input) || crate::remote::is_remote(request.output) {
        let io = crate::remote::IoOptions::default();
        return crate::remote::convert(request, options, &io, progress)
            .map(|summary| JsonSummary::new(&summary, options))
            .map_err(Failure::message);
    }
    let conversion = request.resolve().map_err(Failure::message)?;
    convert::convert_cancellable(&conversion, options, progress)
        .map(|summary| JsonSummary::new(&summary, options))
        .map_err(|e| Failure::conversion(&e))
}

/// A config document from `file`, a path or an object-store / HTTP URL (bounded like a
/// conversion's).
pub fn read_config(file: &Path) -> Result<Map, Failure> {
    if crate::remote::is_remote(file) {
        return crate::remote::read_document(file);
    }
    fastllm_checkpoint::read_named_document(file).map_err(|e| Failure::conversion(&e.into()))
}

/// Imports an HF config (read from `file`, when it came from one), dropping the keys `options`
/// names: the Fast-LLM base-model config in architecture form and the keys dropped.
pub fn import_config(
    format: &str,
    hf: Map,
    file: Option<&Path>,
    options: &convert::ImportOptions,
) -> Result<(Map, Vec<convert::DroppedKey>), Failure> {
    let handler = if format == "auto" {
        core::detect(&hf).map_err(|e| Failure::config(&e, file))?
    } else {
        core::find(format).map_err(|e| Failure::config(&e, None))?
    };
    let (config, _, dropped) = convert::import_hf(handler, hf, options).map_err(|e| Failure::config(&e, file))?;
    Ok((config.to_form(Form::Architecture), dropped))
}

/// How [`export_config`] writes the HF config.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Which layout of the HF format.
    pub layout: HfLayout,
    /// Every key `save_pretrained` writes, not only the converted ones.
    pub complete: bool,
}

/// Exports a Fast-LLM base-model config (read from `file`, when it came from one) as `format`'s
/// HF config, as `options` says.
pub fn export_config(
    format: &str,
    fast_llm: &Map,
    file: Option<&Path>,
    options: &ExportOptions,
) -> Result<Map, Failure> {
    let &ExportOptions { layout, complete } = options;
    if format == "auto" {
        return Err(Failure::message(
            "`--format auto` only applies to import: an export needs an explicit format",
        ));
    }
    let handler = core::find(format).map_err(|e| Failure::config(&e, None))?;
    let config = load(handler.model, fast_llm, file)?;
    if complete {
        handler
            .export_carrying(&config, &core::Carried::none("fast_llm"), layout)
            .map(|(hf, _)| hf)
    } else {
        handler.export(&config, layout)
    }
    .map_err(|e| Failure::config(&e, file))
}

/// A Fast-LLM base-model config, validated and resolved in `form`.
pub fn normalize(fast_llm: &Map, file: Option<&Path>, kind: ModelKind, form: Form) -> Result<Map, Failure> {
    Ok(load(kind, fast_llm, file)?.to_form(form))
}

fn load(kind: ModelKind, dict: &Map, file: Option<&Path>) -> Result<config::BaseModelConfig, Failure> {
    config::load_base_model(kind, &Value::Map(dict.clone())).map_err(|e| {
        Failure::message(match file {
            Some(file) => format!("{} (Fast-LLM {} base model): {e}", file.display(), kind.name()),
            None => format!("Fast-LLM {} base model: {e}", kind.name()),
        })
    })
}

/// Every registered format: name, family, model kind, HF model types and architecture.
pub fn formats() -> Value {
    Value::List(
        core::handlers()
            .iter()
            .map(|h| {
                Value::Map(Map::from([
                    ("name".to_string(), Value::Str(h.name.into())),
                    ("family".to_string(), Value::Str(h.family.into())),
                    ("model".to_string(), Value::Str(h.model.name().into())),
                    (
                        "model_types".to_string(),
                        Value::List(h.model_types.iter().map(|t| Value::Str((*t).into())).collect()),
                    ),
                    ("architecture".to_string(), Value::Str(h.architecture.into())),
                ]))
            })
            .collect(),
    )
}

/// A format's mapping table, one row per declaration: Fast-LLM path, HF key, primitive, note.
pub fn explain(format: &str) -> Result<Value, Failure> {
    let handler = core::find(format).map_err(|e| Failure::config(&e, None))?;
    let rows = core::explain::rows(&handler.converter().base_model);
    Ok(Value::List(
        rows.into_iter()
            .map(|row| {
                Value::Map(Map::from([
                    ("fast_llm".to_string(), Value::Str(row.fast_llm)),
                    ("hf".to_string(), Value::Str(row.hf)),
                    ("primitive".to_string(), Value::Str(row.primitive.into())),
                    ("note".to_string(), Value::Str(row.note)),
                ]))
            })
            .collect(),
    ))
}

fn int(n: impl TryInto<i128>) -> Value {
    n.try_into().map(Value::Int).unwrap_or(Value::Null)
}

fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|s| Value::Str(s.as_ref().into())).collect())
}

/// The model's kind and main sizes (what `inspect` prints on its `model:` line).
fn model(config: &config::BaseModelConfig) -> Value {
    let arch = config.to_form(Form::Architecture);
    let get = |p: &str| core::dict::get(&arch, p).cloned().unwrap_or(Value::Null);
    Value::Map(Map::from([
        ("kind".to_string(), Value::Str(config.kind().name().into())),
        ("hidden_size".to_string(), get("hidden_size")),
        ("layers".to_string(), get("decoder.num_blocks")),
        ("vocab_size".to_string(), get("embeddings.vocab_size")),
    ]))
}

/// What `inspect` prints, as data: format, model, tensor and parameter counts, dtypes, files;
/// for a training checkpoint its parallel layout, shards and progress.
/// An object-store URL is read in place: documents and headers only.
pub fn inspect(path: &Path) -> Result<Map, Failure> {
    crate::remote::with_checkpoint(path, &crate::remote::IoOptions::default(), |dir, remote| {
        describe(path, dir, remote)
    })
}

/// [`inspect`] of the checkpoint `shown`, its files in `path` (and the tensor files `remote`
/// holds when it is in an object store).
fn describe(shown: &Path, path: &Path, remote: Option<&RemoteInput>) -> Result<Map, Failure> {
    let fail = |e: CheckpointError| Failure::conversion(&e.into());
    let side = convert::detect(path).map_err(|e| Failure::conversion(&e))?;
    let mut out = Map::from([
        ("path".to_string(), Value::Str(shown.display().to_string())),
        ("format".to_string(), Value::Str(side.name().into())),
    ]);
    if matches!(side, convert::Side::FastLlmDistributed) {
        let checkpoint = DistributedCheckpoint::open_with(path, remote).map_err(fail)?;
        let layout = checkpoint.layout();
        let parallel = &layout.parallelism;
        out.insert("model".into(), model(checkpoint.base_model()));
        out.insert(
            "parallel".into(),
            Value::Map(Map::from([
                ("world_size".to_string(), int(parallel.world_size)),
                ("tensor".to_string(), int(parallel.tensor_parallel)),
                ("pipeline".to_string(), int(parallel.pipeline_parallel)),
                ("data".to_string(), int(parallel.data_parallel)),
                ("pipeline_first".to_string(), Value::Bool(parallel.pipeline_first)),
                ("sequence_data".to_string(), int(parallel.sequence_data_parallel)),
                ("zero_stage".to_string(), parallel.zero_stage.map_or(Value::Null, int)),
                ("stages".to_string(), int(layout.stages.len())),
                ("layers_per_stage".to_string(), Value::Float(parallel.layers_per_stage)),
            ])),
        );
        out.insert("shards".into(), strs(checkpoint.shard_names()));
        out.insert("dtype".into(), Value::Str(checkpoint.dtype().to_string()));
        let (tensors, parameters) = checkpoint.parameters().fold((0usize, 0u128), |(n, total), placed| {
            let numel: u128 = placed.parameter.shape().iter().map(|&d| d as u128).product();
            (n + 1, total + numel)
        });
        out.insert("tensors".into(), int(tensors));
        out.insert("parameters".into(), int(parameters));
        for (label, key) in [("step", "completed_steps"), ("documents_seen", "documents_seen")] {
            let value = core::dict::get(checkpoint.metadata(), &format!("metadata.{key}"));
            out.insert(label.into(), value.cloned().unwrap_or(Value::Null));
        }
        let mut files = vec!["metadata.yaml".to_string()];
        files.extend((0..parallel.world_size).map(fastllm_checkpoint::distributed::rank_file));
        out.insert("files".into(), strs(files));
        return Ok(out);
    }
    let checkpoint = match side {
        convert::Side::FastLlm => fastllm_checkpoint::open_fast_llm_with(path, remote),
        _ => fastllm_checkpoint::open_hf_with(path, remote),
    }
    .map_err(fail)?;
    let mut dtypes = Map::new();
    let mut parameters: u128 = 0;
    for name in checkpoint.files.names() {
        let tensor = checkpoint.files.tensor(name).expect("listed");
        let entry = dtypes
            .entry(tensor.dtype.to_string())
            .or_insert_with(|| Value::Map(Map::from([("tensors".into(), int(0)), ("bytes".into(), int(0))])));
        if let Value::Map(entry) = entry {
            for (key, add) in [("tensors", 1), ("bytes", i128::from(tensor.bytes))] {
                if let Some(Value::Int(n)) = entry.get_mut(key) {
                    *n += add;
                }
            }
        }
        parameters += tensor.shape.iter().map(|&d| d as u128).product::<u128>();
    }
    let config = match side {
        convert::Side::Hf(handler) => {
            let (hf, keys) = handler.without_unconverted(&checkpoint.config);
            let tensors: Vec<&str> = checkpoint
                .files
                .names()
                .filter(|n| handler.unconverted_tensor(n).is_some())
                .collect();
            out.insert(
                "not_converted".into(),
                Value::Map(Map::from([
                    ("keys".to_string(), strs(keys)),
                    ("tensors".to_string(), strs(tensors)),
                ])),
            );
            handler.import(&hf).ok()
        }
        _ => convert::fast_llm_base_model(&checkpoint).ok(),
    };
    out.insert("model".into(), config.as_ref().map_or(Value::Null, model));
    out.insert("tensors".into(), int(checkpoint.files.len()));
    out.insert("parameters".into(), int(parameters));
    out.insert("dtypes".into(), Value::Map(dtypes));
    out.insert("files".into(), strs(checkpoint.files.file_names()));
    Ok(out)
}
