//! The example format is registered, converts configs both ways, passes every coverage check
//! (its weight plan is Fast-LLM's parameter layout), and converts a checkpoint both ways.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::Options;
use fastllm_checkpoint::synthetic::{fast_llm_to_hf, synthetic_to_fast_llm};
use fastllm_checkpoint::{open_fast_llm, open_hf};
use fastllm_core::config::{Form, Map, Value, load_base_model};
use fastllm_core::coverage::check_handler;
use fastllm_core::{HfLayout, find, handlers};

// Naming the crate links it, and with it its registration.
use third_party_format as _;

fn hf(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// Qwen3-0.6B's published config.json (transformers 4.51).
const QWEN3_0_6B: &str = r#"{
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
}"#;

#[test]
fn registered_beside_the_llama_family() {
    let names: Vec<&str> = handlers().iter().map(|h| h.name).collect();
    assert!(names.contains(&"qwen3") && names.contains(&"qwen2"), "{names:?}");
    assert_eq!(find("qwen3").unwrap().family, "third-party-example");
}

#[test]
fn imports_a_published_config_with_query_and_key_norms() {
    let config = find("qwen3").unwrap().import(&hf(QWEN3_0_6B)).unwrap();
    let architecture = Value::Map(config.to_form(Form::Architecture));
    let mixer = architecture.as_map().unwrap()["decoder"].as_map().unwrap()["block"]
        .as_map()
        .unwrap()["mixer"]
        .clone();
    let mixer = mixer.as_map().unwrap();
    assert_eq!(
        mixer["head_size"],
        Value::Int(128),
        "1024 / 16 would be 64: head_dim is read, not derived"
    );
    assert_eq!(mixer["query_norm"].as_map().unwrap()["epsilon"], Value::Float(1e-6));
    assert_eq!(
        mixer["key_norm"].as_map().unwrap()["type"],
        Value::Str("rms_norm".into())
    );
}

#[test]
fn export_round_trips_and_rejects_a_norm_epsilon_mismatch() {
    let handler = find("qwen3").unwrap();
    let config = handler.import(&hf(QWEN3_0_6B)).unwrap();
    let exported = handler.export(&config, HfLayout::V5).unwrap();
    assert_eq!(exported["head_dim"], Value::Int(128));
    assert_eq!(handler.import(&exported).unwrap(), config);

    let mut dict = config.to_form(Form::Explicit);
    let mixer = ["decoder", "block", "mixer", "query_norm"]
        .iter()
        .fold(&mut dict, |m, k| match m.get_mut(*k) {
            Some(Value::Map(inner)) => inner,
            _ => panic!("no {k}"),
        });
    mixer.insert("epsilon".into(), Value::Float(1e-5));
    let changed = fastllm_core::config::load_base_model(handler.model, &Value::Map(dict)).unwrap();
    let error = handler.export(&changed, HfLayout::V4).unwrap_err().to_string();
    assert!(
        error.contains("rms_norm_eps") && error.contains("query_norm.epsilon"),
        "{error}"
    );
}

#[test]
fn passes_coverage() {
    let report = check_handler(find("qwen3").unwrap());
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.sections > 1 && report.samples > 0);
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qwen3").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

#[test]
fn converts_a_checkpoint_to_fast_llm_and_back() {
    let handler = find("qwen3").unwrap();
    let sample = &handler.converter().samples[0];
    let config = load_base_model(handler.model, sample).unwrap();
    let (input, middle, back) = (scratch("hf"), scratch("fast_llm"), scratch("back"));
    synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
    fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();

    // The per-head norms are Qwen3's own tensors, over head_dim (32), in both formats.
    let fast_llm = open_fast_llm(&middle).unwrap();
    let query_norm = fast_llm.files.get("decoder.1.mixer.query_norm.weight/weights").unwrap();
    assert_eq!(query_norm.shape, [32]);
    let (got, want) = (open_hf(&back).unwrap(), open_hf(&input).unwrap());
    let names: Vec<&str> = want.files.names().collect();
    assert!(names.contains(&"model.layers.1.self_attn.k_norm.weight"), "{names:?}");
    assert_eq!(got.files.names().collect::<Vec<_>>(), names);
    for name in names {
        let (a, b) = (got.files.get(name).unwrap(), want.files.get(name).unwrap());
        assert_eq!((a.dtype, a.shape), (b.dtype, b.shape), "{name}");
        assert!(a.data == b.data, "{name}: bytes differ");
    }
}
