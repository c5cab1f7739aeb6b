//! The Llava formats: registered, coverage-clean, and rejecting what they cannot hold by name.

use fastllm_core::config::{Form, Map, ModelKind, Value, load_base_model};
use fastllm_core::coverage::check_handler;
use fastllm_core::{HfLayout, find};
use rstest::rstest;

use fastllm_llava as _;

fn dict(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// A small valid Llava config.json (Mistral text model, Pixtral vision encoder).
fn llava_config() -> Map {
    dict(
        r#"{
        "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
        "image_token_index": 10, "projector_hidden_act": "gelu", "multimodal_projector_bias": true,
        "vision_feature_layer": -1, "vision_feature_select_strategy": "full",
        "text_config": {"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128, "sliding_window": null},
        "vision_config": {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                          "num_hidden_layers": 2, "patch_size": 4, "hidden_act": "gelu"}
    }"#,
    )
}

fn with(mut config: Map, path: &[&str], value: Value) -> Map {
    let (last, parents) = path.split_last().unwrap();
    let mut target = &mut config;
    for key in parents {
        target = match target.get_mut(*key) {
            Some(Value::Map(inner)) => inner,
            _ => panic!("no {key}"),
        };
    }
    target.insert(last.to_string(), value);
    config
}

#[test]
fn registered_and_coverage_clean() {
    let handler = find("llava").unwrap();
    assert_eq!(handler.model, ModelKind::MultiModal);
    let report = check_handler(handler);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}

#[test]
fn imports_and_round_trips() {
    let handler = find("llava").unwrap();
    let config = handler.import(&llava_config()).unwrap();
    let architecture = Value::Map(config.to_form(Form::Architecture));
    let vision = architecture.as_map().unwrap()["vision_encoder"].as_map().unwrap();
    assert_eq!(
        vision["adapter"].as_map().unwrap()["intermediate_size"],
        Value::Int(64),
        "projects to the text hidden size"
    );
    for layout in [HfLayout::V4, HfLayout::V5] {
        let exported = handler.export(&config, layout).unwrap();
        assert_eq!(exported["type"], Value::Str("mlp".into()));
        assert_eq!(handler.import(&exported).unwrap(), config);
    }
}

/// Found by the `hf_config` fuzz target: a Mistral text model with a sliding window (set, or
/// MistralConfig's default 4096 when absent) exported without `model_type` read back as a
/// LlamaConfig, which has none — a silent drop in transformers, a rejection here.
#[rstest]
#[case::set(Value::Int(32))]
#[case::mistral_default(Value::Null)]
fn a_windowed_mistral_text_model_round_trips(#[case] window: Value) {
    let handler = find("llava").unwrap();
    let mut hf = with(llava_config(), &["text_config", "sliding_window"], window.clone());
    if window == Value::Null {
        let Some(Value::Map(text)) = hf.get_mut("text_config") else {
            panic!()
        };
        text.remove("sliding_window");
    }
    let config = handler.import(&hf).unwrap();
    for layout in [HfLayout::V4, HfLayout::V5] {
        let exported = handler.export(&config, layout).unwrap();
        assert_eq!(
            exported["text_config"].as_map().unwrap()["model_type"],
            Value::Str("mistral".into())
        );
        assert_eq!(handler.import(&exported).unwrap(), config, "{layout:?}");
    }
}

#[rstest]
#[case::clip_vision(&["vision_config", "model_type"], Value::Str("clip_vision_model".into()), "vision_config")]
#[case::head_dim(&["vision_config", "head_dim"], Value::Int(8), "vision_config")]
#[case::image_size(&["vision_config", "image_size"], Value::Int(512), "vision_config.image_size")]
#[case::feature_layer(&["vision_feature_layer"], Value::Int(-2), "vision_feature_layer")]
#[case::strategy(&["vision_feature_select_strategy"], Value::Str("default".into()), "vision_feature_select_strategy")]
#[case::text_model(&["text_config", "model_type"], Value::Str("gemma".into()), "text_config")]
#[case::mistral_bias_key(&["text_config", "attention_bias"], Value::Bool(false), "text_config.attention_bias")]
#[case::unknown_text_key(&["text_config", "foo"], Value::Int(1), "text_config.foo")]
fn import_rejects_by_key(#[case] path: &[&str], #[case] value: Value, #[case] key: &str) {
    let error = find("llava")
        .unwrap()
        .import(&with(llava_config(), path, value))
        .unwrap_err();
    assert!(error.problems().iter().any(|p| p.hf.as_deref() == Some(key)), "{error}");
}

#[test]
fn a_llama_text_config_must_have_no_biases() {
    let config = with(
        llava_config(),
        &["text_config", "model_type"],
        Value::Str("llama".into()),
    );
    let config = with(config, &["text_config", "attention_bias"], Value::Bool(true));
    let error = find("llava").unwrap().import(&config).unwrap_err();
    assert!(error.to_string().contains("text_config.attention_bias"), "{error}");
}

#[rstest]
#[case::non_square(
    r#"{"vision_encoder": {"embeddings": {"patch_width": 8}}}"#,
    "vision_encoder.embeddings.patch_width"
)]
#[case::adapter_size(
    r#"{"vision_encoder": {"adapter": {"intermediate_size": 65}}}"#,
    "vision_encoder.adapter.intermediate_size"
)]
#[case::vision_gqa(
    r#"{"vision_encoder": {"encoder": {"block": {"mixer": {"head_groups": 1}}}}}"#,
    "vision_encoder.encoder.block.mixer.head_groups"
)]
#[case::vision_rotary(
    r#"{"vision_encoder": {"encoder": {"block": {"mixer": {"rotary": {"type": "default"}}}}}}"#,
    "vision_encoder.encoder.block.mixer.rotary.type"
)]
fn export_rejects_by_field(#[case] change: &str, #[case] path: &str) {
    let handler = find("llava").unwrap();
    let config = handler.import(&llava_config()).unwrap();
    let mut explicit = Value::Map(config.to_form(Form::Explicit));
    merge(&mut explicit, &Value::from_json_str(change).unwrap());
    let changed = load_base_model(ModelKind::MultiModal, &explicit).unwrap();
    let error = handler.export(&changed, HfLayout::V4).unwrap_err();
    assert!(
        error.problems().iter().any(|p| p.fast_llm.as_deref() == Some(path)),
        "{error}"
    );
}

fn merge(base: &mut Value, change: &Value) {
    match (base, change) {
        (Value::Map(b), Value::Map(c)) => {
            for (k, v) in c {
                match b.get_mut(k) {
                    Some(existing @ Value::Map(_)) if matches!(v, Value::Map(_)) => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, c) => *b = c.clone(),
    }
}

#[test]
fn llava_hybrid_ssm_reads_both_model_types_and_round_trips() {
    let handler = find("llava_hybrid_ssm").unwrap();
    assert_eq!(handler.model_types, ["llava_hybrid_ssm", "llava_hybrid"]);
    let report = check_handler(handler);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    // A Mistral text model is not what this format holds.
    let error = handler
        .import(&with(
            llava_config(),
            &["model_type"],
            Value::Str("llava_hybrid".into()),
        ))
        .unwrap_err();
    assert!(
        error.problems().iter().any(|p| p.hf.as_deref() == Some("text_config")),
        "{error}"
    );
}
