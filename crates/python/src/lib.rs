//! `fastllm_convert._native`: the Rust side of the Python package. Thin: every operation is
//! `fastllm_convert::api`; dicts cross as JSON text (the Python side parses and checks them, see
//! `python/fastllm_convert/__init__.py`), failures as [`NativeFailure`] carrying the message and
//! the problems as JSON. The GIL is released while a file is read or a checkpoint converted.

use std::ops::ControlFlow;
use std::path::PathBuf;

use fastllm_convert::api::{self, Failure};
use fastllm_convert::checkpoint::convert::{ImportOptions, Options};
use fastllm_convert::config::{Form, Map, ModelKind, Value};
use fastllm_convert::core::HfLayout;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    NativeFailure,
    PyValueError,
    "A rejection: args are (message, problems as a JSON list)."
);

fn raise(failure: Failure) -> PyErr {
    let problems = serde_json::to_string(&failure.problems).expect("problems serialize");
    NativeFailure::new_err((failure.message, problems))
}

fn json(value: Value) -> String {
    value.to_json_compact()
}

/// A dict given as JSON text (already checked to be an object on the Python side).
fn parse(text: &str, argument: &str) -> PyResult<Map> {
    match Value::from_json_str(text) {
        Ok(Value::Map(map)) => Ok(map),
        Ok(_) => Err(PyValueError::new_err(format!("{argument}: not a dict"))),
        Err(e) => Err(PyValueError::new_err(format!("{argument}: {e}"))),
    }
}

/// The value `name` stands for among `choices`; another name is an error naming `argument` and
/// the names it takes.
fn one_of<T: Copy>(argument: &str, name: &str, choices: &[(&str, T)]) -> PyResult<T> {
    let chosen = choices.iter().find(|(choice, _)| *choice == name);
    chosen.map(|&(_, value)| value).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(|(choice, _)| format!("'{choice}'")).collect();
        PyValueError::new_err(format!("{argument}: {name:?} is not one of {}", names.join(", ")))
    })
}

fn layout(name: &str) -> PyResult<HfLayout> {
    one_of("hf_layout", name, &[("v4", HfLayout::V4), ("v5", HfLayout::V5)])
}

/// The dict `text` or, when it is `None`, the document at `path`.
fn dict_or_file(py: Python<'_>, text: Option<&str>, path: Option<PathBuf>, argument: &str) -> PyResult<Map> {
    match (text, path) {
        (Some(text), _) => parse(text, argument),
        (None, Some(path)) => py.detach(|| api::read_config(&path)).map_err(raise),
        (None, None) => Err(PyValueError::new_err(format!("{argument}: a dict or a path is needed"))),
    }
}

/// Converts a checkpoint; returns the summary as JSON. `progress(done, total)` is called with the
/// GIL held for a moment at least every 16 MiB written; an exception it raises, or a signal's
/// (KeyboardInterrupt on Ctrl-C, checked at the same moments), stops the conversion, which
/// leaves nothing, and is raised.
#[pyfunction]
#[pyo3(signature = (input, output, from_, to, hf_layout, dtype, allow_overflow, force, dry_run, config_only, text_only, drop_keys, max_shard_size, shard, layout, optimizer_state, progress))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    from_: String,
    to: String,
    hf_layout: &str,
    dtype: Option<String>,
    allow_overflow: bool,
    force: bool,
    dry_run: bool,
    config_only: bool,
    text_only: bool,
    drop_keys: Vec<String>,
    max_shard_size: u64,
    shard: Option<String>,
    layout: Option<String>,
    optimizer_state: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let parallel = match layout {
        None => None,
        Some(text) => Some(
            text.parse::<fastllm_convert::checkpoint::distributed::LayoutSpec>()
                .map_err(|e| PyValueError::new_err(format!("layout: {e}")))?,
        ),
    };
    let dtype = match dtype {
        None => None,
        Some(name) => Some(
            fastllm_convert::checkpoint::cast::Dtype::parse(&name)
                .ok_or_else(|| PyValueError::new_err(format!("dtype: {name:?} is not one of 'bf16', 'f16', 'f32'")))?,
        ),
    };
    let options = Options {
        layout: self::layout(hf_layout)?,
        dtype,
        allow_overflow,
        config_only,
        dry_run,
        force,
        max_shard_bytes: max_shard_size,
        text_only,
        drop_keys,
        shard,
        parallel,
        optimizer_state,
        ..Options::default()
    };
    let request = api::ConvertRequest {
        from: &from_,
        to: &to,
        input: &input,
        output: &output,
    };
    let mut stopped: Option<PyErr> = None;
    let result = py.detach(|| {
        api::convert(&request, &options, &mut |done, total| {
            Python::attach(|py| {
                let outcome = match &progress {
                    Some(callback) => callback.call1(py, (done, total)).map(drop),
                    None => Ok(()),
                };
                match outcome.and_then(|()| py.check_signals()) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(error) => {
                        stopped = Some(error);
                        ControlFlow::Break(())
                    }
                }
            })
        })
    });
    match (result, stopped) {
        (Ok(summary), _) => Ok(summary.to_json_pretty()),
        (Err(failure), Some(error)) if failure.interrupted => Err(error),
        (Err(failure), _) => Err(raise(failure)),
    }
}

/// Imports an HF config (JSON text, or the file at `path`); returns the Fast-LLM base-model
/// config (architecture form) as JSON.
#[pyfunction]
#[pyo3(signature = (hf, path, format, drop_keys, text_only))]
fn import_config(
    py: Python<'_>,
    hf: Option<&str>,
    path: Option<PathBuf>,
    format: &str,
    drop_keys: Vec<String>,
    text_only: bool,
) -> PyResult<String> {
    let dict = dict_or_file(py, hf, path.clone(), "hf")?;
    let options = ImportOptions {
        drop_keys: &drop_keys,
        text_only,
    };
    let (config, _) = api::import_config(format, dict, path.as_deref(), &options).map_err(raise)?;
    Ok(json(Value::Map(config)))
}

/// Exports a Fast-LLM base-model config (JSON text, or the file at `path`) as `format`'s HF
/// config; returns it as JSON.
#[pyfunction]
#[pyo3(signature = (fast_llm, path, format, hf_layout, complete))]
fn export_config(
    py: Python<'_>,
    fast_llm: Option<&str>,
    path: Option<PathBuf>,
    format: &str,
    hf_layout: &str,
    complete: bool,
) -> PyResult<String> {
    let layout = layout(hf_layout)?;
    let dict = dict_or_file(py, fast_llm, path.clone(), "fast_llm")?;
    let options = api::ExportOptions { layout, complete };
    let hf = api::export_config(format, &dict, path.as_deref(), &options).map_err(raise)?;
    Ok(json(Value::Map(hf)))
}

/// A Fast-LLM base-model config (JSON text, or the file at `path`) validated and resolved in
/// `form`; returned as JSON.
#[pyfunction]
#[pyo3(signature = (fast_llm, path, form, model))]
fn normalize(
    py: Python<'_>,
    fast_llm: Option<&str>,
    path: Option<PathBuf>,
    form: &str,
    model: &str,
) -> PyResult<String> {
    let forms = [
        ("explicit", Form::Explicit),
        ("architecture", Form::Architecture),
        ("full", Form::Full),
    ];
    let form = one_of("form", form, &forms)?;
    let kind = one_of(
        "model",
        model,
        &[("gpt", ModelKind::Gpt), ("multimodal", ModelKind::MultiModal)],
    )?;
    let dict = dict_or_file(py, fast_llm, path.clone(), "fast_llm")?;
    let normalized = api::normalize(&dict, path.as_deref(), kind, form).map_err(raise)?;
    Ok(json(Value::Map(normalized)))
}

/// What `fastllm-convert inspect` shows of a checkpoint, as JSON.
#[pyfunction]
fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let described = py.detach(|| api::inspect(&path)).map_err(raise)?;
    Ok(json(Value::Map(described)))
}

/// The registered formats, as JSON.
#[pyfunction]
fn formats() -> String {
    json(api::formats())
}

/// A format's mapping table, as JSON.
#[pyfunction]
fn explain(format: &str) -> PyResult<String> {
    api::explain(format).map(json).map_err(raise)
}

/// The format families linked into this build.
#[pyfunction]
fn families() -> Vec<&'static str> {
    fastllm_convert::families()
}

/// Runs the command line with `argv` (without the program name); returns its exit status.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| fastllm_convert::cli::run_args(std::iter::once("fastllm-convert".to_string()).chain(argv)))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    fastllm_convert::api::use_flags();
    m.add("NativeFailure", m.py().get_type::<NativeFailure>())?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(import_config, m)?)?;
    m.add_function(wrap_pyfunction!(export_config, m)?)?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(formats, m)?)?;
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(families, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    Ok(())
}
