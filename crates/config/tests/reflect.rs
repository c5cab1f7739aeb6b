//! `Reflect` reads every config as its full form holds it: for every Fast-LLM dict of the
//! conformance suite, each path of the full-form dict reads through the typed config as the
//! same value, and a field no class declares is an error naming it.

use std::path::{Path, PathBuf};

use fastllm_config::{
    AttentionConfig, BaseModelConfig, Field, Form, Map, ModelKind, NoField, PeftConfig, Value, load, load_base_model,
};

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

/// Every `fast_llm` dict of `expected/*.json`, loaded.
fn configs() -> Vec<(String, BaseModelConfig)> {
    let mut files: Vec<_> = std::fs::read_dir(conformance_dir().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let expectation = Value::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(dict) = expectation.as_map().unwrap().get("fast_llm") else {
            continue;
        };
        let kind = if dict.as_map().unwrap().contains_key("vision_encoder") {
            ModelKind::MultiModal
        } else {
            ModelKind::Gpt
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, load_base_model(kind, dict).unwrap()));
    }
    assert!(out.len() > 10, "too few conformance configs: {}", out.len());
    out
}

/// Every dotted path of `map` with its value, sub-dicts included.
fn paths(map: &Map, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        out.push((path.clone(), value.clone()));
        if let Value::Map(sub) = value {
            paths(sub, &path, out);
        }
    }
}

#[test]
fn every_full_form_path_reads_the_same_value() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, config) in configs() {
        let full = config.to_form(Form::Full);
        let mut all = Vec::new();
        paths(&full, "", &mut all);
        for (path, expected) in all {
            checked += 1;
            match config.reflect().get(&path) {
                Ok(field) => {
                    let found = field.into_value();
                    if found != expected {
                        failures.push(format!("{name}: `{path}`: {found:?} != {expected:?}"));
                    }
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} paths differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn sub_configs_read_as_configs_and_absent_ones_as_null() {
    let attention: AttentionConfig = load(&Value::from_json_str(r#"{"heads": 4}"#).unwrap()).unwrap();
    let node: &dyn fastllm_config::Reflect = &attention;
    assert!(matches!(node.get("rotary"), Ok(Field::Config(c)) if c.class_name() == "NoRotaryConfig"));
    assert_eq!(node.get("rotary.type").unwrap().into_value(), Value::Str("none".into()));
    assert!(matches!(node.get("query_norm"), Ok(Field::Value(Value::Null))));
    assert!(matches!(node.get("query_norm.epsilon"), Ok(Field::Value(Value::Null))));
    assert_eq!(node.get("heads").unwrap().into_value(), Value::Int(4));
    assert!(node.downcast::<AttentionConfig>().is_some());
}

#[test]
fn a_polymorphic_config_reads_as_its_variant_and_downcasts_to_both() {
    let peft = PeftConfig::Lora(load(&Value::from_json_str(r#"{"rank": 4}"#).unwrap()).unwrap());
    let node: &dyn fastllm_config::Reflect = &peft;
    assert_eq!(node.class_name(), "LoRAConfig");
    assert_eq!(node.dynamic_type(), Some("lora"));
    assert!(node.downcast::<PeftConfig>().is_some());
    assert!(node.downcast::<fastllm_config::LoraConfig>().is_some());
    assert!(node.downcast::<AttentionConfig>().is_none());
}

#[test]
fn an_undeclared_field_is_an_error_naming_it() {
    let attention = AttentionConfig::default();
    let node: &dyn fastllm_config::Reflect = &attention;
    let error = node.get("rotary.thetaa").unwrap_err();
    assert_eq!(
        error,
        NoField {
            path: "rotary.thetaa".into(),
            class: "NoRotaryConfig",
            field: "thetaa".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "`rotary.thetaa`: NoRotaryConfig has no field `thetaa`"
    );
    assert!(node.get("head").is_err());
    // A path into a scalar names no field either.
    let error = node.get("heads.count").unwrap_err();
    assert_eq!((error.class, error.field.as_str()), ("AttentionConfig", "heads.count"));
}
