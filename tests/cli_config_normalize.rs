//! `fastllm-convert config normalize`: the CLI contract, on the vendored conformance dicts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::config::Value;
use rstest::rstest;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .expect("run fastllm-convert")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes `content` to a fresh file under the test temp dir.
fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_config_normalize");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    Value::from_json_str(std::str::from_utf8(&output.stdout).unwrap()).unwrap()
}

fn assert_rejected(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains(needle), "`{needle}` not in stderr: {stderr}");
}

fn normalize_cases() -> Vec<(String, Value)> {
    let mut paths: Vec<_> = std::fs::read_dir(repo("tests/conformance/normalize"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                Value::from_json_str(&std::fs::read_to_string(p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    &v.as_map().unwrap()[key]
}

#[test]
fn every_explicit_dict_normalizes_to_its_architecture_form() {
    let cases = normalize_cases();
    assert!(cases.len() >= 50);
    for (name, case) in cases {
        let Value::Str(model) = get(&case, "model") else {
            panic!()
        };
        let input = temp_file(&format!("{name}.json"), &get(&case, "explicit").to_json_pretty());
        let out = cli(&["config", "normalize", "--model", model, input.to_str().unwrap()]);
        assert_eq!(&stdout_json(&out), get(&case, "architecture"), "{name}");
        let out = cli(&[
            "config",
            "normalize",
            "--model",
            model,
            "--form",
            "explicit",
            input.to_str().unwrap(),
        ]);
        assert_eq!(&stdout_json(&out), get(&case, "explicit"), "{name}");
    }
}

#[test]
fn the_bundled_sample_normalizes() {
    let out = cli(&[
        "config",
        "normalize",
        repo("samples/llama-base-model.yaml").to_str().unwrap(),
    ]);
    let architecture = stdout_json(&out);
    let expected = normalize_cases()
        .into_iter()
        .find(|(n, _)| n == "llama__fixture_llama_3_v5")
        .unwrap()
        .1;
    assert_eq!(&architecture, get(&expected, "architecture"));
}

#[test]
fn pyyaml_written_yaml_is_read() {
    let yaml = repo("crates/config/tests/data/yaml/apriel2_stochastic_architecture.pyyaml.yaml");
    let json = repo("crates/config/tests/data/yaml/apriel2_stochastic_architecture.json");
    let out = cli(&["config", "normalize", yaml.to_str().unwrap()]);
    assert_eq!(
        stdout_json(&out),
        Value::from_json_str(&std::fs::read_to_string(json).unwrap()).unwrap()
    );
}

#[test]
fn full_form_has_every_field() {
    let input = temp_file("empty.json", "{}");
    let full = stdout_json(&cli(&[
        "config",
        "normalize",
        "--form",
        "full",
        input.to_str().unwrap(),
    ]));
    let embeddings = get(&full, "embeddings");
    assert_eq!(get(embeddings, "vocab_parallel"), &Value::Bool(true));
    assert_eq!(get(&full, "use_megatron_initialization"), &Value::Bool(false));
}

#[rstest]
#[case::invalid_rule("bad.json", r#"{"hidden_size": 0}"#, &[], "`hidden_size` (GPTBaseModelConfig): must be > 0")]
#[case::unknown_key("typo.json", r#"{"decoder": {"block": {"mixer": {"num_heads": 2}}}}"#, &[], "decoder.block.mixer.num_heads")]
#[case::malformed_json("broken.json", r#"{"hidden_size": "#, &[], "invalid JSON")]
#[case::malformed_yaml("broken.yaml", "a: [1, 2\n", &[], "invalid YAML")]
#[case::not_a_mapping("list.json", "[1, 2]", &[], "expected a mapping")]
#[case::yaml_non_float("eps.yaml", "head:\n  normalization:\n    type: rms_norm\n    epsilon: 1e-05\n", &[], "expected float, found str \"1e-05\"")]
#[case::multimodal_field_in_gpt("vision.json", r#"{"vision_encoder": {}}"#, &[], "vision_encoder")]
#[case::gpt_model_flag("gpt.json", r#"{"vision_encoder": {"hidden_size": 0}}"#, &["--model", "multimodal"], "vision_encoder.hidden_size")]
fn rejections_exit_2_with_the_path_on_stderr(
    #[case] name: &str,
    #[case] content: &str,
    #[case] flags: &[&str],
    #[case] needle: &str,
) {
    let input = temp_file(name, content);
    let mut args = vec!["config", "normalize"];
    args.extend_from_slice(flags);
    args.push(input.to_str().unwrap());
    let out = cli(&args);
    assert_rejected(&out, needle);
    assert!(String::from_utf8_lossy(&out.stderr).contains(name), "the file is named");
}

#[test]
fn a_missing_file_exits_2() {
    assert_rejected(
        &cli(&["config", "normalize", "/nonexistent/config.yaml"]),
        "No such file",
    );
}

#[test]
fn bad_arguments_exit_2() {
    let out = cli(&["config", "normalize", "--form", "verbose", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// Runs the CLI, killing it after `limit`: a read that waits forever fails the test instead of
/// hanging it.
#[cfg(unix)]
fn cli_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fastllm-convert");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("`{}` still running after {limit:?}", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The config commands read their file as a conversion does: a FIFO (a read would wait for a
/// writer forever), a device (a read would never end) and a file past the limit are refused
/// by what they are, before any byte is read.
#[cfg(unix)]
#[rstest]
fn config_commands_read_within_the_bounds_of_a_conversion(
    #[values("normalize", "import", "export")] command: &str,
    #[values("fifo", "device", "huge")] input: &str,
) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_config_bounds");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, needle) = match input {
        "fifo" => {
            let path = dir.join(format!("{command}.fifo.json"));
            let _ = std::fs::remove_file(&path);
            assert!(Command::new("mkfifo").arg(&path).status().unwrap().success());
            (path, "not a regular file")
        }
        "device" => (PathBuf::from("/dev/zero"), "not a regular file"),
        _ => {
            let path = dir.join(format!("{command}.huge.json"));
            // Sparse: past the limit on paper, nothing on disk.
            std::fs::File::create(&path)
                .unwrap()
                .set_len(fastllm_convert::checkpoint::MAX_CONFIG_BYTES + 1)
                .unwrap();
            (path, "a config document may have")
        }
    };
    let mut args = vec!["config", command];
    match command {
        "import" => args.extend(["--format", "auto"]),
        "export" => args.extend(["--format", "llama"]),
        _ => {}
    }
    args.push(path.to_str().unwrap());
    let out = cli_within(&args, std::time::Duration::from_secs(60));
    assert_rejected(&out, needle);
    assert!(String::from_utf8_lossy(&out.stderr).contains(path.to_str().unwrap()));
}
