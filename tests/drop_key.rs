//! `--drop-key` never changes the model: over every import case of the conformance suite, each
//! key of the input (at any depth) dropped alone either imports the same Fast-LLM config as the
//! whole input, or is refused with an error naming that key.

use std::path::Path;

use fastllm_convert::checkpoint::convert::{ImportOptions, import_hf};
use fastllm_convert::config::{Form, Map, Value};
use fastllm_convert::core::find;

/// Every dotted key of `map`, parents before their children.
fn keys(map: &Map, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        out.push(path.clone());
        if let Value::Map(inner) = value {
            keys(inner, &path, out);
        }
    }
}

#[test]
fn a_dropped_key_never_changes_the_model_and_any_error_it_causes_names_it() {
    // The messages name the command line's options, as the CLI and the Python package spell them.
    fastllm_convert::api::use_flags();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/cases");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(cases).unwrap() {
        let path = entry.unwrap().path();
        let case = Value::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let case = case.as_map().unwrap();
        let (Some(Value::Str(format)), Some(Value::Str(direction)), Some(Value::Map(hf))) =
            (case.get("format"), case.get("direction"), case.get("input"))
        else {
            continue;
        };
        let Ok(handler) = find(format) else { continue };
        if direction != "import" {
            continue;
        }
        let Ok((whole, _, _)) = import_hf(handler, hf.clone(), &ImportOptions::default()) else {
            continue;
        };
        let whole = whole.to_form(Form::Full);
        let mut all = Vec::new();
        keys(hf, "", &mut all);
        for key in all {
            checked += 1;
            let name = path.file_name().unwrap().to_string_lossy();
            let dropping = ImportOptions {
                drop_keys: std::slice::from_ref(&key),
                ..ImportOptions::default()
            };
            match import_hf(handler, hf.clone(), &dropping) {
                Ok((config, _, _)) if config.to_form(Form::Full) == whole => {}
                Ok(_) => failures.push(format!("{name}: --drop-key {key} imports another model")),
                Err(error) if error.to_string().contains(&format!("`{key}`")) => {}
                Err(error) => failures.push(format!("{name}: --drop-key {key}: an error not naming it: {error}")),
            }
        }
    }
    assert!(checked > 1000, "{checked} keys checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An unknown key's rejection says the way out, and the way out works: `--drop-key KEY`, the
/// key as the message spells it (dotted when nested).
#[test]
fn an_unknown_key_names_the_drop_key_that_converts_without_it() {
    // The messages name the command line's options, as the CLI and the Python package spell them.
    fastllm_convert::api::use_flags();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/llama-3.2-1b-config.json");
    let base = Value::from_json_str(&std::fs::read_to_string(samples).unwrap()).unwrap();
    let handler = find("llama").unwrap();
    for (key, at) in [
        ("max_sequence_length", None),
        ("internal_version", None),
        ("foo", Some("rope_scaling")),
    ] {
        let mut hf = base.as_map().unwrap().clone();
        let dotted = match at {
            None => {
                hf.insert(key.into(), Value::Int(4096));
                key.to_string()
            }
            Some(parent) => {
                let Some(Value::Map(inner)) = hf.get_mut(parent) else {
                    panic!("{parent} is a dict")
                };
                inner.insert(key.into(), Value::Int(1));
                format!("{parent}.{key}")
            }
        };
        let error = import_hf(handler, hf.clone(), &ImportOptions::default())
            .unwrap_err()
            .to_string();
        let hint = format!("(to convert without it: --drop-key {dotted})");
        assert!(error.contains(&hint), "{error}");
        let dropping = ImportOptions {
            drop_keys: &[dotted],
            ..ImportOptions::default()
        };
        import_hf(handler, hf, &dropping).unwrap();
    }
}
