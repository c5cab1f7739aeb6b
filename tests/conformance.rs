//! The vendored conformance suite (`tests/conformance/`), run through the CLI exactly as its
//! `check.py` does, for every format this build registers a handler for.
//!
//! Per case: import cases run `config import`, compare the printed Fast-LLM config, then export
//! it again per layout; export cases export per layout. Rejections must exit 2 with nothing on
//! stdout and a message on stderr. JSON compares ignore key order; numbers compare numerically
//! (ints exactly, floats within 1e-12 relative); a bool never equals a number.

use std::path::{Path, PathBuf};
use std::process::Command;

use fastllm_convert::config::{Map, Value};

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn read(path: &Path) -> Map {
    Value::from_json_str(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .as_map()
        .unwrap()
        .clone()
}

fn text<'a>(map: &'a Map, key: &str) -> Option<&'a str> {
    match map.get(key) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The first differing path of two JSON values under check.py's comparison, if any.
fn difference(expected: &Value, got: &Value, path: &str) -> Option<String> {
    match (expected, got) {
        (Value::Map(a), Value::Map(b)) => {
            for key in a.keys().chain(b.keys()) {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = difference(x, y, &format!("{path}.{key}")) {
                            return Some(d);
                        }
                    }
                    (Some(_), None) => return Some(format!("{path}.{key}: missing")),
                    (None, _) => return Some(format!("{path}.{key}: unexpected")),
                }
            }
            None
        }
        (Value::List(a), Value::List(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| difference(x, y, &format!("{path}[{i}]"))),
        (Value::Int(a), Value::Int(b)) if a == b => None,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_))
            if !matches!((expected, got), (Value::Int(_), Value::Int(_))) =>
        {
            let (a, b) = (number(expected), number(got));
            ((a - b).abs() > 1e-12 * a.abs().max(b.abs())).then(|| format!("{path}: expected {a:?}, got {b:?}"))
        }
        _ if expected == got => None,
        _ => Some(format!(
            "{path}: expected {}, got {}",
            expected.to_json_compact(),
            got.to_json_compact()
        )),
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

/// Checks one CLI call against an expectation; returns a failure description.
fn expect(run: &Run, accept: bool, expected: Option<&Value>, what: &str) -> Option<String> {
    if !accept {
        let ok = run.code == Some(2) && run.stdout.trim().is_empty() && !run.stderr.trim().is_empty();
        return (!ok).then(|| {
            format!(
                "{what}: expected a rejection (exit 2), got exit {:?}: {}",
                run.code, run.stdout
            )
        });
    }
    if run.code != Some(0) {
        return Some(format!(
            "{what}: expected exit 0, got {:?}: {}",
            run.code,
            run.stderr.trim()
        ));
    }
    let got = match Value::from_json_str(&run.stdout) {
        Ok(v) => v,
        Err(e) => return Some(format!("{what}: stdout is not JSON: {e}")),
    };
    expected
        .and_then(|e| difference(e, &got, "$"))
        .map(|d| format!("{what}: {d}"))
}

fn registered(format: &str) -> bool {
    match format {
        "auto_gpt" | "auto_multimodal" => false,
        name => fastllm_convert::core::find(name).is_ok(),
    }
}

fn run_case(name: &str, case: &Map, expectation: &Map) -> Vec<String> {
    let format = text(case, "format").unwrap();
    let cli_format = if format.starts_with("auto") { "auto" } else { format };
    let direction = text(case, "direction").unwrap();
    let accept = text(expectation, "expect") == Some("accept");
    let input = temp(&format!("{name}.input.json"), &case["input"].to_json_pretty());
    let hf = expectation.get("hf").and_then(Value::as_map);
    let mut failures = Vec::new();
    let exports = |fast_llm_file: &Path, export_format: &str, failures: &mut Vec<String>| {
        for layout in ["v4", "v5"] {
            let run = cli(&[
                "config",
                "export",
                "--format",
                export_format,
                "--hf-layout",
                layout,
                fast_llm_file.to_str().unwrap(),
            ]);
            let expected = hf.and_then(|h| h.get(layout));
            failures.extend(expect(&run, accept, expected, &format!("{name} export ({layout})")));
        }
    };
    if direction == "import" {
        let run = cli(&["config", "import", "--format", cli_format, input.to_str().unwrap()]);
        failures.extend(expect(
            &run,
            accept,
            expectation.get("fast_llm"),
            &format!("{name} import"),
        ));
        if accept && run.code == Some(0) {
            let imported = temp(&format!("{name}.imported.json"), &run.stdout);
            let export_format = text(expectation, "export_format").unwrap_or(format);
            exports(&imported, export_format, &mut failures);
        }
    } else {
        exports(&input, cli_format, &mut failures);
    }
    failures
}

#[test]
fn conformance_cases_of_registered_formats() {
    let mut names: Vec<String> = std::fs::read_dir(suite().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut ran, mut failures) = (0, Vec::new());
    for file in names {
        let case = read(&suite().join("cases").join(&file));
        let expectation = read(&suite().join("expected").join(&file));
        let format = text(&case, "format").unwrap();
        // `auto` cases run when the format they dispatch to is registered.
        let target = text(&expectation, "export_format").unwrap_or(format);
        let auto_reject = format.starts_with("auto") && text(&expectation, "expect") == Some("reject");
        if !(registered(format) || registered(target) || auto_reject && format == "auto_gpt") {
            continue;
        }
        ran += 1;
        failures.extend(run_case(file.trim_end_matches(".json"), &case, &expectation));
    }
    assert!(ran >= 85, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} failure(s) in {ran} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
