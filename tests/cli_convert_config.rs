//! `config import`, `config export`, `formats` and `explain`: the CLI contract beyond the
//! conformance cases (bundled samples, format errors, `auto`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::config::Value;
use rstest::rstest;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .unwrap()
}

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    Value::from_json_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap()
}

fn rejected(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_convert_config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn the_readme_main_command_exports_the_sample() {
    let hf = json(&cli(&[
        "config",
        "export",
        "--format",
        "llama",
        &sample("llama-base-model.yaml"),
    ]));
    let hf = hf.as_map().unwrap();
    assert_eq!(hf["model_type"], Value::Str("llama".into()));
    assert_eq!(
        hf["rope_scaling"].as_map().unwrap()["rope_type"],
        Value::Str("llama3".into())
    );
}

#[test]
fn hf_to_hf_through_fast_llm() {
    // Llama-3.2-1B's published config, imported by `auto` and exported as Mistral (v5 layout).
    let imported = cli(&[
        "config",
        "import",
        "--format",
        "auto",
        &sample("llama-3.2-1b-config.json"),
    ]);
    let fast_llm = temp("llama32.json", &json(&imported).to_json_pretty());
    let mistral = json(&cli(&[
        "config",
        "export",
        "--format",
        "mistral",
        "--hf-layout",
        "v5",
        fast_llm.to_str().unwrap(),
    ]));
    let mistral = mistral.as_map().unwrap();
    assert_eq!(mistral["model_type"], Value::Str("mistral".into()));
    assert_eq!(mistral["sliding_window"], Value::Null);
    assert_eq!(
        mistral["rope_parameters"].as_map().unwrap()["factor"],
        Value::Float(32.0)
    );
    // Qwen2 rejects it by name: Qwen2's attention always has Q/K/V biases.
    let qwen2 = rejected(&cli(&[
        "config",
        "export",
        "--format",
        "qwen2",
        fast_llm.to_str().unwrap(),
    ]));
    assert!(qwen2.contains("Q/K/V biases"), "{qwen2}");
}

#[rstest]
#[case(&["config", "import", "--format", "gpt2", "x.json"], "unknown format `gpt2`; registered formats: apriel2, apriel2_text")]
#[case(&["explain", "gpt2"], "unknown format `gpt2`")]
#[case(&["config", "export", "--format", "auto", "x.yaml"], "only applies to import")]
fn format_errors(#[case] args: &[&str], #[case] needle: &str) {
    let stderr = rejected(&cli(args));
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn auto_rejects_unknown_model_types_listing_the_known_ones() {
    let input = temp(
        "phi3.json",
        r#"{"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}"#,
    );
    let stderr = rejected(&cli(&["config", "import", "--format", "auto", input.to_str().unwrap()]));
    assert!(
        stderr.contains("model_type `phi3`") && stderr.contains("mixtral"),
        "{stderr}"
    );
}

#[test]
fn formats_and_explain() {
    let out = cli(&["formats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.lines()
            .any(|l| l.starts_with("dream ") && l.contains("dream, Dream") && l.contains("DreamModel")),
        "{text}"
    );
    let out = cli(&["explain", "llama"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("decoder.block.mixer.rotary ") && l.contains("rope_parameters.*")),
        "{text}"
    );
}

/// A released Gemma 4 config: auto picks gemma4_conditional, which converts the text model only
/// with `--text-only`, naming every key it drops.
#[test]
fn a_released_gemma4_config_imports_its_text_model_with_text_only() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/gemma4/tests/data/gemma-4-31B-it.config.json");
    let config = config.to_str().unwrap();
    let stderr = rejected(&cli(&["config", "import", "--format", "auto", config]));
    for key in ["vision_config", "vision_soft_tokens_per_image", "eoa_token_id"] {
        assert!(stderr.contains(&format!("HF `{key}`: part of the")), "{key}: {stderr}");
    }
    assert!(
        stderr.contains("gemma4_conditional does not convert") && stderr.contains("--text-only"),
        "{stderr}"
    );
    let out = cli(&["config", "import", "--format", "auto", "--text-only", config]);
    let imported = json(&out);
    assert_eq!(
        fastllm_convert::core::dict::get(imported.as_map().unwrap(), "decoder.num_blocks"),
        Some(&Value::Int(60))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dropped 3 config key(s) the format does not convert: vision_config, vision_soft_tokens_per_image, eoa_token_id"),
        "{stderr}"
    );
}
