//! What `convert` says about everything besides config and weights: the config keys carried,
//! not carried and dropped (`--drop-key`), and the files copied and not copied, in the text and
//! JSON summaries; `config import --drop-key` and `config export --complete`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::config::{Map, Value};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rejected(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_metadata").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Qwen2 fixture with Qwen2.5's disabled sliding-window settings, a tokenizer and a stray
/// file, plus `extra` config keys.
fn qwen2_input(name: &str, extra: &[(&str, Value)]) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights/qwen2/hf_input");
    let dir = scratch(name).join("input");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["model.safetensors", "generation_config.json"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(fixture.join("config.json")).unwrap();
    let mut config = Value::from_json_str(&text).unwrap().as_map().unwrap().clone();
    config.insert("max_window_layers".into(), Value::Int(21));
    config.insert("sliding_window".into(), Value::Int(32768));
    for (key, value) in extra {
        config.insert(key.to_string(), value.clone());
    }
    std::fs::write(dir.join("config.json"), Value::Map(config).to_json_pretty()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    dir
}

#[test]
fn the_summary_lists_what_is_carried_and_what_is_not() {
    let input = qwen2_input("summary", &[]);
    let output = input.parent().unwrap().join("output");
    let args = |json: bool| {
        let mut args = vec!["convert", "--from", "qwen2", "--to", "apriel2_text", "--dry-run"];
        if json {
            args.push("--json");
        }
        args.extend([input.to_str().unwrap(), output.to_str().unwrap()]);
        args
    };
    let text = ok(&cli(&args(false)));
    for line in [
        "would carry config keys: bos_token_id, dtype, eos_token_id, initializer_range, max_position_embeddings, use_cache",
        "not carried: config key max_window_layers = 21: apriel2_text's Apriel2TextConfig has no such key",
        "not carried: config key sliding_window = 32768: apriel2_text's Apriel2TextConfig has no such key",
        "would copy files: generation_config.json, tokenizer.json",
        "not copied: notes.txt: not in the companion-file list",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let json = Value::from_json_str(&ok(&cli(&args(true)))).unwrap();
    let report = json.as_map().unwrap();
    let names = |key: &str, field: &str| -> Vec<String> {
        let Value::List(items) = &report[key] else {
            panic!("{key}")
        };
        items
            .iter()
            .map(|item| match item {
                Value::Str(s) => s.clone(),
                Value::Map(m) => match &m[field] {
                    Value::Str(s) => s.clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        names("carried_keys", ""),
        [
            "bos_token_id",
            "dtype",
            "eos_token_id",
            "initializer_range",
            "max_position_embeddings",
            "use_cache"
        ]
    );
    assert_eq!(
        names("not_carried_keys", "key"),
        ["layer_types", "max_window_layers", "sliding_window"]
    );
    assert_eq!(names("copied_files", ""), ["generation_config.json", "tokenizer.json"]);
    assert_eq!(names("not_copied_files", "file"), ["notes.txt"]);
    assert!(!output.exists());
}

#[test]
fn drop_key_is_the_way_past_an_unknown_key() {
    let input = qwen2_input("drop", &[("max_sequence_length", Value::Int(2048))]);
    let output = input.parent().unwrap().join("output");
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    let error = rejected(&cli(&["convert", "--from", "qwen2", "--to", "fast_llm", input, output]));
    assert!(error.contains("HF `max_sequence_length`: unknown key"), "{error}");
    let text = ok(&cli(&[
        "convert",
        "--from",
        "qwen2",
        "--to",
        "fast_llm",
        "--drop-key",
        "max_sequence_length",
        input,
        output,
    ]));
    assert!(
        text.lines()
            .any(|l| l == "dropped (--drop-key): config key max_sequence_length = 2048"),
        "{text}"
    );
    // `config import` takes the same flag.
    let config = Path::new(input).join("config.json");
    let config = config.to_str().unwrap();
    rejected(&cli(&["config", "import", "--format", "qwen2", config]));
    ok(&cli(&[
        "config",
        "import",
        "--format",
        "auto",
        "--drop-key",
        "max_sequence_length",
        config,
    ]));
    let error = rejected(&cli(&[
        "config",
        "import",
        "--format",
        "qwen2",
        "--drop-key",
        "nope",
        config,
    ]));
    assert!(
        error.contains("HF `nope`: --drop-key names a key the input does not have"),
        "{error}"
    );
}

#[test]
fn config_export_completes_only_when_asked() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/llama-base-model.yaml");
    let sample = sample.to_str().unwrap();
    let parse = |out: &Output| -> Map { Value::from_json_str(&ok(out)).unwrap().as_map().unwrap().clone() };
    let plain = parse(&cli(&["config", "export", "--format", "llama", sample]));
    let complete = parse(&cli(&["config", "export", "--format", "llama", "--complete", sample]));
    assert!(!plain.contains_key("use_cache"));
    assert_eq!(complete["use_cache"], Value::Bool(true));
    assert_eq!(complete["bos_token_id"], Value::Int(1));
    assert!(
        plain.iter().all(|(k, v)| complete.get(k) == Some(v)),
        "completion only adds keys"
    );
}

/// A Llava (Pixtral-12B-like) config whose text model keeps its context length and dtype under
/// `text_config`.
const LLAVA: &str = r#"{
    "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "image_token_index": 10,
    "multimodal_projector_bias": true, "projector_hidden_act": "gelu", "torch_dtype": "bfloat16",
    "vision_feature_layer": -1, "vision_feature_select_strategy": "full",
    "text_config": {"head_dim": 16, "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128,
        "max_position_embeddings": 1024000, "model_type": "mistral", "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0,
        "sliding_window": null, "tie_word_embeddings": false, "vocab_size": 128},
    "vision_config": {"head_dim": 8, "hidden_act": "silu", "hidden_size": 32, "image_size": 1024,
        "intermediate_size": 64, "model_type": "pixtral", "num_attention_heads": 4, "num_hidden_layers": 2,
        "patch_size": 16, "rope_theta": 10000.0}
}"#;

/// Between formats keeping the text model at different places (Llava's `text_config`,
/// Apriel2's root), its carried keys move with it, both ways; the sub-configs' class names the
/// output does not write are listed as not carried.
#[test]
fn the_text_model_s_keys_move_between_text_roots() {
    let dir = scratch("text-roots");
    std::fs::create_dir_all(dir.join("llava")).unwrap();
    std::fs::write(dir.join("llava/config.json"), LLAVA).unwrap();
    let convert = |from: &str, to: &str| {
        let (input, output) = (dir.join(from), dir.join(to).join("back"));
        let output = if to == "llava" { output } else { dir.join(to) };
        let text = ok(&cli(&[
            "convert",
            "--config-only",
            "--from",
            from,
            "--to",
            to,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
        ]));
        let written = std::fs::read_to_string(output.join("config.json")).unwrap();
        (text, Value::from_json_str(&written).unwrap().as_map().unwrap().clone())
    };
    let (text, apriel2) = convert("llava", "apriel2");
    assert_eq!(apriel2["max_position_embeddings"], Value::Int(1024000));
    assert_eq!(apriel2["torch_dtype"], Value::Str("bfloat16".into()));
    assert!(!apriel2.contains_key("text_config"));
    for line in [
        "carried config keys: text_config.max_position_embeddings, text_config.tie_word_embeddings, torch_dtype",
        "not carried: config key text_config.model_type = \"mistral\": names the class of the input's \
         `text_config`; apriel2 writes \"apriel2\" for `model_type`",
        "not carried: config key vision_config.model_type = \"pixtral\": names the class of the input's \
         `vision_config`; apriel2 writes nothing for `vision_config.model_type`",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    let (_, llava) = convert("apriel2", "llava");
    let text_config = llava["text_config"].as_map().unwrap();
    assert_eq!(text_config["max_position_embeddings"], Value::Int(1024000));
    assert_eq!(text_config["torch_dtype"], Value::Str("bfloat16".into()));
    assert!(!llava.contains_key("max_position_embeddings"));
}
