//! Conversions keep what makes a checkpoint usable besides its weights: the context length,
//! special tokens, dtype and every other config key the Fast-LLM model does not hold, and the
//! tokenizer, generation and chat-template files, byte for byte. Checked on a Llama-3.1-like and
//! a Qwen2.5-like tiny checkpoint (synthetic weights), across families and through Fast-LLM.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, ConversionError, DropCause, DroppedKey, Options, Side, convert};
use fastllm_checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_core::config::{Map, Value};
use fastllm_core::find;
use rstest::rstest;

use fastllm_llama as _;

/// Llama-3.1-8B's config.json at a tiny size: 128k context through llama3 rope scaling, a
/// list of end-of-sequence tokens.
const LLAMA_3_1: &str = r#"{
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": false,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128009],
    "head_dim": 16,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "max_position_embeddings": 131072,
    "mlp_bias": false,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0,
    "tie_word_embeddings": false,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0",
    "use_cache": true,
    "vocab_size": 128
}"#;

/// Qwen2.5-0.5B's config.json at a tiny size: tied embeddings, Qwen's special tokens, and the
/// disabled sliding-window settings the Fast-LLM model has no field for.
const QWEN_2_5: &str = r#"{
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "layer_types": ["full_attention", "full_attention"],
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "model_type": "qwen2",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": null,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": true,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": true,
    "use_sliding_window": false,
    "vocab_size": 128
}"#;

/// Files a published checkpoint carries beside config and weights (contents are arbitrary
/// bytes: they are copied, never parsed).
const COMPANIONS: &[(&str, &[u8])] = &[
    ("tokenizer.json", br#"{"version": "1.0", "model": {"type": "BPE"}}"#),
    (
        "tokenizer_config.json",
        br#"{"bos_token": "<|begin_of_text|>", "model_max_length": 131072}"#,
    ),
    ("special_tokens_map.json", br#"{"eos_token": "<|eot_id|>"}"#),
    ("tokenizer.model", b"\x00\x01binary\xff\xfe sentencepiece"),
    (
        "generation_config.json",
        br#"{"bos_token_id": 128000, "eos_token_id": [128001, 128009], "temperature": 0.6}"#,
    ),
    (
        "chat_template.jinja",
        b"{% for message in messages %}{{ message['content'] }}{% endfor %}",
    ),
    ("LICENSE", b"Llama 3.1 Community License"),
];

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metadata").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

fn json(text: &str) -> Map {
    Value::from_json_str(text).unwrap().as_map().unwrap().clone()
}

fn read_json(path: &Path) -> Map {
    json(&std::fs::read_to_string(path).unwrap())
}

/// A checkpoint with `config` as its config.json, synthetic weights of that shape, the
/// companion files, and two entries that must not be copied.
fn checkpoint(name: &str, config: &str) -> PathBuf {
    let hf = json(config);
    let handler = fastllm_core::detect(&hf).unwrap();
    let dir = scratch(name);
    write_synthetic_hf(
        handler,
        &handler.import(&hf).unwrap(),
        &dir,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    for (file, bytes) in COMPANIONS {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "scratch notes").unwrap();
    std::fs::create_dir_all(dir.join("original")).unwrap();
    dir
}

fn side(name: &str) -> Side {
    match name {
        "fast_llm" => Side::FastLlm,
        name => Side::Hf(find(name).unwrap()),
    }
}

/// The input config as the output must hold it: without `transformers_version`, which
/// describes the writer of the input only.
fn expected(config: &str) -> Map {
    let mut hf = json(config);
    hf.remove("transformers_version");
    hf
}

#[rstest]
#[case::llama_through_fast_llm(LLAMA_3_1, &["llama", "fast_llm", "llama"])]
#[case::qwen2_through_fast_llm(QWEN_2_5, &["qwen2", "fast_llm", "qwen2"])]
#[case::llama_to_llama(LLAMA_3_1, &["llama", "llama"])]
fn round_trips_keep_config_json_and_files(#[case] config: &str, #[case] path: &[&str]) {
    let name = path.join("-");
    let input = checkpoint(&format!("{name}-input"), config);
    let mut current = input.clone();
    for (i, step) in path.windows(2).enumerate() {
        let next = scratch(&format!("{name}-{i}"));
        let summary = convert(
            &Conversion {
                input: &current,
                from: side(step[0]),
                output: &next,
                to: side(step[1]),
            },
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            summary.companions.copied,
            [
                "LICENSE",
                "chat_template.jinja",
                "generation_config.json",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer.model",
                "tokenizer_config.json"
            ]
        );
        assert!(summary.not_carried_keys.is_empty(), "{:?}", summary.not_carried_keys);
        current = next;
    }
    assert_eq!(read_json(&current.join("config.json")), expected(config));
    for (file, bytes) in COMPANIONS {
        assert_eq!(std::fs::read(current.join(file)).unwrap(), *bytes, "{file}");
    }
    assert!(!current.join("notes.txt").exists());
    assert!(!current.join("original").exists());
}

#[test]
fn fast_llm_metadata_holds_the_carried_keys_under_one_key() {
    let input = checkpoint("stored-input", LLAMA_3_1);
    let output = scratch("stored-fast-llm");
    let summary = convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let metadata = fastllm_core::config::parse_document(
        &std::fs::read_to_string(output.join("metadata.yaml")).unwrap(),
        Some("yaml"),
    )
    .unwrap();
    let free_form = fastllm_core::dict::get(metadata.as_map().unwrap(), "metadata").unwrap();
    // Fast-LLM reads `state_index` from that dict; the carried keys sit beside it.
    let keys: Vec<&String> = free_form.as_map().unwrap().keys().collect();
    assert_eq!(keys, ["hf_metadata", "state_index"]);
    let stored = fastllm_core::Carried::from_value(&free_form.as_map().unwrap()["hf_metadata"]).unwrap();
    assert_eq!(stored.format, "llama");
    assert_eq!(stored.generic["eos_token_id"], json(LLAMA_3_1)["eos_token_id"]);
    assert_eq!(stored.generic["max_position_embeddings"], Value::Int(131072));
    assert_eq!(
        summary.carried_keys,
        [
            "bos_token_id",
            "eos_token_id",
            "initializer_range",
            "max_position_embeddings",
            "pretraining_tp",
            "torch_dtype",
            "use_cache"
        ]
    );
    for (file, bytes) in COMPANIONS {
        assert_eq!(std::fs::read(output.join(file)).unwrap(), *bytes, "{file}");
    }
}

#[test]
fn llama_to_mistral_keeps_context_tokens_dtype_and_files() {
    let input = checkpoint("mistral-input", LLAMA_3_1);
    let output = scratch("mistral-output");
    convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: side("mistral"),
        },
        &Options::default(),
    )
    .unwrap();
    let written = read_json(&output.join("config.json"));
    let original = json(LLAMA_3_1);
    for key in [
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
        "torch_dtype",
        "rope_scaling",
        "rope_theta",
        "pretraining_tp",
        "initializer_range",
        "use_cache",
    ] {
        assert_eq!(written.get(key), original.get(key), "{key}");
    }
    assert_eq!(written["model_type"], Value::Str("mistral".into()));
    // MistralConfig's own keys: its sliding window (none), and no Llama bias keys.
    assert_eq!(written["sliding_window"], Value::Null);
    assert!(!written.contains_key("mlp_bias"));
    for (file, bytes) in COMPANIONS {
        assert_eq!(std::fs::read(output.join(file)).unwrap(), *bytes, "{file}");
    }
}

#[test]
fn an_unknown_key_fails_unless_dropped() {
    // huggyllama/llama-7b's config.json has `max_sequence_length`, which LlamaConfig never had.
    let mut config = json(LLAMA_3_1);
    config.insert("max_sequence_length".into(), Value::Int(2048));
    let input = checkpoint("drop-input", LLAMA_3_1);
    std::fs::write(input.join("config.json"), Value::Map(config).to_json_pretty()).unwrap();
    let output = scratch("drop-output");
    let error = convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: side("llama"),
        },
        &Options::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, ConversionError::ConfigFile { source: e, .. } if e.to_string().contains("max_sequence_length")),
        "{error}"
    );
    let dropping = Options {
        drop_keys: vec!["max_sequence_length".into()],
        ..Options::default()
    };
    let summary = convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: side("llama"),
        },
        &dropping,
    )
    .unwrap();
    assert_eq!(
        summary.dropped_keys,
        [DroppedKey {
            key: "max_sequence_length".to_string(),
            value: Value::Int(2048),
            by: DropCause::Requested,
        }]
    );
    assert_eq!(read_json(&output.join("config.json")), expected(LLAMA_3_1));
    // A key the input does not have is an error: a typo would otherwise drop nothing.
    let typo = Options {
        drop_keys: vec!["max_sequence_lenght".into()],
        force: true,
        ..Options::default()
    };
    let error = convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: side("llama"),
        },
        &typo,
    )
    .unwrap_err();
    assert!(error.to_string().contains("max_sequence_lenght"), "{error}");
}

#[test]
fn generation_parameters_in_a_v5_config_are_refused_by_name() {
    // transformers 5 drops them from config.json on save: they belong in generation_config.json.
    let mut config = json(LLAMA_3_1);
    config.insert("temperature".into(), Value::Float(0.6));
    let input = checkpoint("v5-input", &Value::Map(config).to_json_pretty());
    let v5 = Options {
        layout: fastllm_core::HfLayout::V5,
        ..Options::default()
    };
    let error = convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &scratch("v5-output"),
            to: side("llama"),
        },
        &v5,
    )
    .unwrap_err();
    assert!(error.to_string().contains("`temperature`"), "{error}");
    assert!(error.to_string().contains("generation_config.json"), "{error}");
    // The v4 layout keeps it, as transformers 4 does.
    let output = scratch("v4-output");
    convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &output,
            to: side("llama"),
        },
        &Options::default(),
    )
    .unwrap();
    assert_eq!(read_json(&output.join("config.json"))["temperature"], Value::Float(0.6));
}

fn fixture(format: &str, part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/weights")
        .join(format)
        .join(part)
}

fn without_version(mut hf: Map) -> Map {
    hf.remove("transformers_version");
    hf
}

#[rstest]
fn the_reference_checkpoints_config_json_is_reproduced(#[values("llama", "mistral", "qwen2", "mixtral")] format: &str) {
    let v5 = Options {
        layout: fastllm_core::HfLayout::V5,
        ..Options::default()
    };
    // The reference's Fast-LLM checkpoint stores no HF metadata: its export (saved by
    // transformers 5.24) has the class defaults, which completing ours writes too.
    let output = scratch(&format!("{format}-reference-export"));
    convert(
        &Conversion {
            input: &fixture(format, "fast_llm"),
            from: Side::FastLlm,
            output: &output,
            to: side(format),
        },
        &v5,
    )
    .unwrap();
    assert_eq!(
        without_version(read_json(&output.join("config.json"))),
        without_version(read_json(&fixture(format, "hf_roundtrip").join("config.json")))
    );
    // Ours keeps what the reference loses (`dtype`, `max_position_embeddings`): HF → Fast-LLM →
    // HF gives back the input's config.json, and its generation_config.json byte for byte.
    let (middle, back) = (
        scratch(&format!("{format}-carry-mid")),
        scratch(&format!("{format}-carry-back")),
    );
    convert(
        &Conversion {
            input: &fixture(format, "hf_input"),
            from: side(format),
            output: &middle,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    convert(
        &Conversion {
            input: &middle,
            from: Side::FastLlm,
            output: &back,
            to: side(format),
        },
        &v5,
    )
    .unwrap();
    assert_eq!(
        without_version(read_json(&back.join("config.json"))),
        without_version(read_json(&fixture(format, "hf_input").join("config.json")))
    );
    assert_eq!(
        std::fs::read(back.join("generation_config.json")).unwrap(),
        std::fs::read(fixture(format, "hf_input").join("generation_config.json")).unwrap()
    );
}

#[test]
fn carried_keys_the_output_cannot_take_are_named() {
    let llama = find("llama").unwrap();
    let config = llama.import(&json(LLAMA_3_1)).unwrap();
    let layout = fastllm_core::HfLayout::V4;
    // Generic metadata of a sub-config other than the text model's has no place in a config
    // without that sub-config.
    let from_llava = fastllm_core::Carried {
        format: "llava".into(),
        text_root: "text_config".into(),
        generic: json(r#"{"vision_config.initializer_range": 0.02}"#),
        format_keys: Map::new(),
    };
    let error = llama.export_carrying(&config, &from_llava, layout).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("HF `vision_config.initializer_range`: 0.02: the llama config has no `vision_config`"),
        "{error}"
    );
    // A format key the output writes from the converted model keeps the model's value.
    let from_qwen2 = fastllm_core::Carried {
        format: "qwen2".into(),
        text_root: String::new(),
        generic: Map::new(),
        format_keys: json(r#"{"sliding_window": 32768}"#),
    };
    let mistral = find("mistral").unwrap();
    let (hf, placement) = mistral.export_carrying(&config, &from_qwen2, layout).unwrap();
    assert_eq!(hf["sliding_window"], Value::Null);
    assert_eq!(placement.not_carried[0].key, "sliding_window");
    assert_eq!(
        placement.not_carried[0].reason,
        "mistral writes null from the converted model"
    );
}

#[test]
fn a_malformed_stored_metadata_is_named() {
    let input = checkpoint("malformed-input", LLAMA_3_1);
    let middle = scratch("malformed-fast-llm");
    convert(
        &Conversion {
            input: &input,
            from: side("llama"),
            output: &middle,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let path = middle.join("metadata.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("    format: llama\n", "    format: 3\n")).unwrap();
    let error = convert(
        &Conversion {
            input: &middle,
            from: Side::FastLlm,
            output: &scratch("malformed-back"),
            to: side("llama"),
        },
        &Options::default(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("metadata.yaml") && message.contains("metadata.hf_metadata: `format` must be a string"),
        "{message}"
    );
}
