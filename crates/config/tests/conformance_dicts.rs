//! Every Fast-LLM dict of the conformance suite (vendored under `tests/conformance/`) is read and
//! written exactly as Fast-LLM does.
//!
//! * `normalize/*.json`: an explicit-form dict must resolve to exactly its architecture form, and
//!   both forms must reproduce themselves.
//! * `expected/*.json`: every `fast_llm` dict (architecture form) must reproduce itself.

use std::path::{Path, PathBuf};

use fastllm_config::{BaseModelConfig, ConfigErrors, Form, ModelKind, Value, load_base_model};

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn json_files(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(conformance_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {dir}");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                Value::from_json_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn load(kind: ModelKind, dict: &Value) -> Result<BaseModelConfig, ConfigErrors> {
    load_base_model(kind, dict)
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    &v.as_map().unwrap()[key]
}

/// Loads `input` and checks its `form` equals `expected`; returns a failure description.
fn check(name: &str, kind: ModelKind, input: &Value, form: Form, expected: &Value) -> Option<String> {
    match load(kind, input) {
        Err(e) => Some(format!("{name}: rejected: {e}")),
        Ok(config) => {
            let got = Value::Map(config.to_form(form));
            (got != *expected).then(|| {
                format!(
                    "{name}: {form:?} form differs:\n got {}\n want {}",
                    got.to_json_pretty(),
                    expected.to_json_pretty()
                )
            })
        }
    }
}

fn kind_of(model: &Value) -> ModelKind {
    match model {
        Value::Str(m) => ModelKind::from_name(m).unwrap(),
        other => panic!("bad model {other:?}"),
    }
}

#[test]
fn explicit_dicts_resolve_to_their_architecture_form() {
    let mut failures = Vec::new();
    let files = json_files("normalize");
    for (name, case) in &files {
        let kind = kind_of(field(case, "model"));
        let (explicit, architecture) = (field(case, "explicit"), field(case, "architecture"));
        failures.extend(check(name, kind, explicit, Form::Architecture, architecture));
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn explicit_and_architecture_forms_reproduce_themselves() {
    let mut failures = Vec::new();
    for (name, case) in json_files("normalize") {
        let kind = kind_of(field(&case, "model"));
        let (explicit, architecture) = (field(&case, "explicit"), field(&case, "architecture"));
        failures.extend(check(&name, kind, explicit, Form::Explicit, explicit));
        failures.extend(check(&name, kind, architecture, Form::Architecture, architecture));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_fast_llm_dict_reproduces_itself() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, expectation) in json_files("expected") {
        let Some(dict) = expectation.as_map().unwrap().get("fast_llm") else {
            continue;
        };
        let kind = if dict.as_map().unwrap().contains_key("vision_encoder") {
            ModelKind::MultiModal
        } else {
            ModelKind::Gpt
        };
        checked += 1;
        failures.extend(check(&name, kind, dict, Form::Architecture, dict));
    }
    assert!(checked > 40, "only {checked} dicts found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn full_form_reproduces_itself() {
    let mut failures = Vec::new();
    for (name, case) in json_files("normalize") {
        let kind = kind_of(field(&case, "model"));
        let full = Value::Map(load(kind, field(&case, "explicit")).unwrap().to_form(Form::Full));
        failures.extend(check(&name, kind, &full, Form::Full, &full));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
