//! PyYAML compatibility: what PyYAML writes we read to the same values, and what we write PyYAML
//! reads to the same values. The `*.pyyaml.yaml` files were written by PyYAML 6.0.3
//! `safe_dump`; their `*.json` twins hold the values PyYAML loads from them.

use std::path::{Path, PathBuf};
use std::process::Command;

use fastllm_config::{Map, Value};
use rstest::rstest;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/yaml").join(name)
}

fn read_json(name: &str) -> Value {
    Value::from_json_str(&std::fs::read_to_string(data(name)).unwrap()).unwrap()
}

#[rstest]
#[case("tricky")]
#[case("apriel2_stochastic_architecture")]
fn pyyaml_output_reads_to_the_same_values(#[case] stem: &str) {
    let yaml = std::fs::read_to_string(data(&format!("{stem}.pyyaml.yaml"))).unwrap();
    assert_eq!(Value::from_yaml_str(&yaml).unwrap(), read_json(&format!("{stem}.json")));
}

#[rstest]
#[case("tricky")]
#[case("apriel2_stochastic_architecture")]
fn our_yaml_reads_back_to_the_same_values(#[case] stem: &str) {
    let value = read_json(&format!("{stem}.json"));
    assert_eq!(Value::from_yaml_str(&value.to_yaml()).unwrap(), value);
}

/// Loads YAML text with the real PyYAML and returns its JSON dump, or `None` when PyYAML is
/// unavailable outside CI (in CI, `.ci/run` installs it and its absence is a failure).
fn pyyaml_load(yaml: &str) -> Option<Value> {
    let script = "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(std::env::var_os("CI").is_none(), "python3 is required in CI");
        eprintln!("skipping: python3 not found");
        return None;
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named 'yaml'") && std::env::var_os("CI").is_none() {
            eprintln!("skipping: PyYAML not installed");
            return None;
        }
        panic!("PyYAML failed to load our YAML: {stderr}\n{yaml}");
    }
    Some(Value::from_json_str(&String::from_utf8(out.stdout).unwrap()).unwrap())
}

#[rstest]
#[case("tricky")]
#[case("apriel2_stochastic_architecture")]
fn pyyaml_reads_our_yaml_to_the_same_values(#[case] stem: &str) {
    let value = read_json(&format!("{stem}.json"));
    if let Some(loaded) = pyyaml_load(&value.to_yaml()) {
        assert_eq!(loaded, value);
    }
}

/// `value` under `levels` maps of one key, deep enough for its collections to be in flow style.
fn buried(value: Value, levels: usize) -> Value {
    (0..levels).fold(value, |inner, _| Value::Map(Map::from([("x".to_string(), inner)])))
}

#[rstest]
#[case("tricky")]
#[case("apriel2_stochastic_architecture")]
fn flow_style_reads_back_to_the_same_values_in_both_readers(#[case] stem: &str) {
    let value = buried(read_json(&format!("{stem}.json")), fastllm_config::BLOCK_DEPTH);
    let yaml = value.to_yaml();
    assert!(yaml.contains(": {"), "flow style below the block depth:\n{yaml}");
    assert_eq!(Value::from_yaml_str(&yaml).unwrap(), value);
    if let Some(loaded) = pyyaml_load(&yaml) {
        assert_eq!(loaded, value);
    }
}

#[test]
fn deep_documents_are_not_blown_up_by_indentation() {
    // In block style each of the 10,000 pairs would sit on lines indented by 240 spaces.
    let items = (0..10_000).map(|i| Value::List(vec![Value::Int(i), Value::Str("x".into())]));
    let value = buried(Value::List(items.collect()), 120);
    let (yaml, json) = (value.to_yaml(), value.to_json_compact());
    assert!(
        yaml.len() < json.len() * 3 / 2,
        "{} bytes of YAML for {} of JSON",
        yaml.len(),
        json.len()
    );
    assert_eq!(Value::from_yaml_str(&yaml).unwrap(), value);
}
