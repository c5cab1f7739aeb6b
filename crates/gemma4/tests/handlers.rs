//! The gemma4 handler: registered, coverage-clean, and its targeted import/export/reject rules.

use fastllm_core::config::{Map, ModelKind, Value, load_base_model};
use fastllm_core::coverage::check_handler;
use fastllm_core::{HfLayout, Problem, handlers, registry_errors};
use rstest::rstest;

// Integration tests link the family explicitly (a crate nothing names keeps no registrations).
use fastllm_gemma4 as _;

fn handler() -> &'static fastllm_core::Handler {
    fastllm_core::find("gemma4").unwrap()
}

#[test]
fn the_family_registers_gemma4() {
    let names: Vec<&str> = handlers()
        .iter()
        .filter(|h| h.family == fastllm_gemma4::FAMILY)
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["gemma4", "gemma4_conditional"]);
    assert_eq!(handler().model_types, ["gemma4_text"]);
    assert_eq!(handler().architecture, "Gemma4ForCausalLM");
    assert_eq!(handler().model, ModelKind::Gpt);
    assert!(registry_errors().is_empty(), "{:?}", registry_errors());
}

#[test]
fn coverage_is_clean() {
    let report = check_handler(handler());
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.samples >= 2);
}

fn map(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// A small dense Gemma 4 `config.json` with `changes` merged in at the top level.
fn hf_config(changes: &str) -> Map {
    let mut hf = map(r#"{
            "model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"],
            "hidden_size": 64, "vocab_size": 128, "intermediate_size": 128,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "global_head_dim": 32, "sliding_window": 32,
            "hidden_size_per_layer_input": 0,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
        }"#);
    hf.extend(map(changes));
    hf
}

fn import(hf: &Map) -> Result<Map, Vec<Problem>> {
    handler()
        .import(hf)
        .map(|c| c.to_form(fastllm_core::config::Form::Full))
        .map_err(|e| e.problems().to_vec())
}

fn get<'a>(map: &'a Map, path: &str) -> &'a Value {
    fastllm_core::dict::get(map, path).unwrap_or_else(|| panic!("no {path}"))
}

fn hf_keys(problems: &[Problem]) -> Vec<String> {
    problems.iter().filter_map(|p| p.hf.clone()).collect()
}

#[test]
fn absent_keys_take_the_gemma4_text_config_defaults() {
    let hf = map(
        r#"{"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "hidden_size_per_layer_input": 0}"#,
    );
    let fl = import(&hf).unwrap();
    assert_eq!(get(&fl, "decoder.num_blocks"), &Value::Int(30));
    let pattern = get(&fl, "decoder.pattern");
    let Value::List(pattern) = pattern else { panic!() };
    assert_eq!(pattern[5], Value::Str("full_attention".into()));
    assert_eq!(pattern[29], Value::Str("full_attention".into()));
    assert_eq!(pattern[28], Value::Str("sliding_attention".into()));
    let full = "decoder.blocks.full_attention.mixer";
    assert_eq!(get(&fl, &format!("{full}.head_size")), &Value::Int(512));
    assert_eq!(get(&fl, &format!("{full}.head_groups")), &Value::Int(4));
    assert_eq!(
        get(&fl, &format!("{full}.rotary.partial_rotary_factor")),
        &Value::Float(0.25)
    );
    assert_eq!(
        get(&fl, "decoder.blocks.sliding_attention.mixer.window_size"),
        &Value::Int(512)
    );
    assert_eq!(get(&fl, "tied_embedding_weight"), &Value::Bool(true));
}

#[rstest]
#[case::per_layer_embeddings(r#"{"hidden_size_per_layer_input": 256}"#, "hidden_size_per_layer_input")]
#[case::attention_bias(r#"{"attention_bias": true}"#, "attention_bias")]
#[case::double_wide_mlp(r#"{"use_double_wide_mlp": true}"#, "use_double_wide_mlp")]
#[case::bidirectional(r#"{"use_bidirectional_attention": "all"}"#, "use_bidirectional_attention")]
#[case::layer_type(
    r#"{"layer_types": ["sliding_attention", "chunked_attention", "sliding_attention", "full_attention"]}"#,
    "layer_types.1"
)]
#[case::layer_count(r#"{"num_hidden_layers": 6}"#, "layer_types")]
#[case::inert_global_heads(r#"{"num_global_key_value_heads": 1}"#, "num_global_key_value_heads")]
#[case::moe_keys_on_a_dense_model(r#"{"num_experts": 8}"#, "num_experts")]
#[case::sliding_rope_type(
    r#"{"rope_parameters": {"sliding_attention": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0},
        "full_attention": {"rope_type": "proportional", "rope_theta": 1e6, "partial_rotary_factor": 0.25}}}"#,
    "rope_parameters.sliding_attention.factor"
)]
#[case::activation(r#"{"hidden_activation": "gelu_new"}"#, "hidden_activation")]
#[case::per_layer_not_uniform(
    r#"{"per_layer_config": {"1": {"head_dim": 32}, "3": {"head_dim": 64}}}"#,
    "per_layer_config"
)]
#[case::per_layer_partial(r#"{"per_layer_config": {"1": {"head_dim": 32}}}"#, "per_layer_config")]
#[case::per_layer_on_sliding(
    r#"{"per_layer_config": {"0": {"head_dim": 32}, "1": {"head_dim": 32}, "3": {"head_dim": 32}}}"#,
    "per_layer_config.0"
)]
#[case::pre_release_expert_size(r#"{"expert_intermediate_size": 32}"#, "expert_intermediate_size")]
#[case::per_layer_index(r#"{"per_layer_config": {"7": {"head_dim": 32}}}"#, "per_layer_config.7")]
#[case::per_layer_unknown_key(
    r#"{"per_layer_config": {"1": {"sliding_window": 8}}}"#,
    "per_layer_config.1.sliding_window"
)]
#[case::per_layer_contradiction(
    r#"{"per_layer_config": {"1": {"head_dim": 64}, "3": {"head_dim": 64}}}"#,
    "global_head_dim"
)]
fn imports_reject_by_key(#[case] changes: &str, #[case] key: &str) {
    let problems = import(&hf_config(changes)).unwrap_err();
    assert!(hf_keys(&problems).iter().any(|k| k == key), "{problems:#?}");
}

#[test]
fn a_null_pre_release_expert_size_is_inert() {
    // google/gemma-4-31B-it's text config holds `"expert_intermediate_size": null`.
    let with = import(&hf_config(r#"{"expert_intermediate_size": null}"#)).unwrap();
    assert_eq!(with, import(&hf_config("{}")).unwrap());
    let config = handler().import(&hf_config("{}")).unwrap();
    assert!(
        !handler()
            .export(&config, HfLayout::V4)
            .unwrap()
            .contains_key("expert_intermediate_size")
    );
}

#[test]
fn absent_per_layer_embedding_size_is_the_class_default_and_rejected() {
    let mut hf = hf_config("{}");
    hf.remove("hidden_size_per_layer_input");
    let problems = import(&hf).unwrap_err();
    assert_eq!(hf_keys(&problems), ["hidden_size_per_layer_input"]);
    assert!(problems[0].message.contains("256"), "{problems:?}");
}

#[rstest]
#[case::zero_padded(r#"{"per_layer_config": {"01": {"head_dim": 48, "num_key_value_heads": 1}, "03": {"head_dim": 48, "num_key_value_heads": 1}}}"#, 48, 1)]
#[case::empty_means_the_sliding_shape(r#"{"per_layer_config": {}}"#, 16, 2)]
#[case::shared_key_value(r#"{"attention_k_eq_v": true, "num_global_key_value_heads": 1}"#, 32, 1)]
#[case::global_heads_only_with_shared_key_value(r#"{"num_global_key_value_heads": 2}"#, 32, 2)]
fn full_attention_shape(#[case] changes: &str, #[case] head_size: i128, #[case] head_groups: i128) {
    let mut hf = hf_config(changes);
    if hf.contains_key("per_layer_config") {
        // The 5.24 schema has no global_head_dim.
        hf.remove("global_head_dim");
    }
    let fl = import(&hf).unwrap();
    let mixer = "decoder.blocks.full_attention.mixer";
    assert_eq!(get(&fl, &format!("{mixer}.head_size")), &Value::Int(head_size));
    assert_eq!(get(&fl, &format!("{mixer}.head_groups")), &Value::Int(head_groups));
}

#[test]
fn vision_bidirectional_attention_reads_as_causal_and_exports_null() {
    let fl = import(&hf_config(r#"{"use_bidirectional_attention": "vision"}"#)).unwrap();
    let config = load_base_model(ModelKind::Gpt, &Value::Map(fl)).unwrap();
    let hf = handler().export(&config, HfLayout::V5).unwrap();
    assert_eq!(hf["use_bidirectional_attention"], Value::Null);
}

#[test]
fn both_layouts_write_the_same_nested_rope_block() {
    let config = handler().import(&hf_config("{}")).unwrap();
    let v4 = handler().export(&config, HfLayout::V4).unwrap();
    let v5 = handler().export(&config, HfLayout::V5).unwrap();
    assert_eq!(v4, v5);
    assert_eq!(
        v5["rope_parameters"],
        Value::from_json_str(
            r#"{"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "proportional", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25}}"#
        )
        .unwrap()
    );
    assert!(!v5.contains_key("per_layer_config") && !v5.contains_key("rope_theta"));
}

/// Exports the import of `hf_config(changes)` after `edit` changes its Fast-LLM form.
fn export_edited(changes: &str, edit: impl FnOnce(&mut Map)) -> Result<Map, Vec<Problem>> {
    let mut fl = import(&hf_config(changes)).unwrap();
    edit(&mut fl);
    let config = load_base_model(ModelKind::Gpt, &Value::Map(fl)).unwrap();
    handler()
        .export(&config, HfLayout::V5)
        .map_err(|e| e.problems().to_vec())
}

fn set(fl: &mut Map, path: &str, value: Value) {
    let (parent, leaf) = path.rsplit_once('.').unwrap();
    let mut target = fl;
    for part in parent.split('.') {
        let Some(Value::Map(inner)) = target.get_mut(part) else {
            panic!("no {part}")
        };
        target = inner;
    }
    target.insert(leaf.into(), value);
}

const MOE: &str = r#"{"enable_moe_block": true, "num_experts": 8, "top_k_experts": 2, "moe_intermediate_size": 32}"#;
const SLIDING: &str = "decoder.blocks.sliding_attention";
const FULL: &str = "decoder.blocks.full_attention";

#[rstest]
#[case::embedding_scale("{}", "embeddings.embedding_scale", Value::Float(1.0))]
#[case::router_input_scale(
    MOE,
    "decoder.blocks.full_attention.mlp.routed.router_input_scale",
    Value::Float(1.0)
)]
#[case::full_window("{}", "decoder.blocks.full_attention.mixer.window_size", Value::Int(8))]
#[case::shared_key_value_on_sliding("{}", "decoder.blocks.sliding_attention.mixer.shared_key_value", Value::Bool(true))]
#[case::softmax_scale(
    "{}",
    "decoder.blocks.sliding_attention.mixer.softmax_scale_power",
    Value::Float(0.5)
)]
#[case::output_scale("{}", "decoder.blocks.sliding_attention.output_scale.enabled", Value::Bool(false))]
#[case::full_heads("{}", "decoder.blocks.full_attention.mixer.heads", Value::Int(8))]
#[case::mlp_size("{}", "decoder.blocks.full_attention.mlp.intermediate_size", Value::Int(256))]
fn exports_reject_by_path(#[case] changes: &str, #[case] path: &str, #[case] value: Value) {
    let problems = export_edited(changes, |fl| set(fl, path, value)).unwrap_err();
    // A safe-set conflict is reported at its second writer and names the first.
    assert!(
        problems
            .iter()
            .any(|p| p.fast_llm.as_deref() == Some(path) || p.message.contains(&format!("`{path}`"))),
        "{problems:#?}"
    );
}

#[test]
fn full_kv_heads_differing_from_sliding_need_shared_key_value() {
    let path = format!("{FULL}.mixer.head_groups");
    let problems = export_edited("{}", |fl| set(fl, &path, Value::Int(1))).unwrap_err();
    assert_eq!(hf_keys(&problems), ["num_key_value_heads"], "{problems:#?}");
    let hf = export_edited("{}", |fl| {
        set(fl, &path, Value::Int(1));
        set(fl, &format!("{FULL}.mixer.shared_key_value"), Value::Bool(true));
    })
    .unwrap();
    assert_eq!(hf["num_global_key_value_heads"], Value::Int(1));
    assert_eq!(hf["num_key_value_heads"], Value::Int(2));
    assert_eq!(hf["attention_k_eq_v"], Value::Bool(true));
}

#[test]
fn unknown_blocks_and_rope_types_are_rejected_by_name() {
    let problems = export_edited("{}", |fl| {
        set(
            fl,
            &format!("{SLIDING}.mixer.rotary"),
            Value::Map(map(r#"{"type": "llama3", "theta": 1e4}"#)),
        );
        let blocks = fl.get_mut("decoder").and_then(|d| match d {
            Value::Map(d) => d.get_mut("blocks"),
            _ => None,
        });
        let Some(Value::Map(blocks)) = blocks else { panic!() };
        let extra = blocks["full_attention"].clone();
        blocks.insert("chunked".into(), extra);
    })
    .unwrap_err();
    let paths: Vec<_> = problems.iter().filter_map(|p| p.fast_llm.clone()).collect();
    assert!(paths.contains(&"decoder.blocks.chunked".to_string()), "{problems:#?}");
    assert!(paths.contains(&format!("{SLIDING}.mixer.rotary.type")), "{problems:#?}");
}

#[test]
fn pre_norms_compare_by_value() {
    // Unset pre-norms mean the block norm; an equal explicit one exports too (D9).
    export_edited("{}", |fl| {
        set(fl, &format!("{SLIDING}.pre_mlp_normalization"), Value::Null);
        let norm = get(fl, &format!("{FULL}.normalization")).clone();
        set(fl, &format!("{FULL}.pre_mixer_normalization"), norm);
    })
    .unwrap();
    let path = format!("{FULL}.pre_mlp_normalization");
    let problems = export_edited("{}", |fl| {
        set(fl, &path, Value::Map(map(r#"{"type": "rms_norm", "epsilon": 1e-5}"#)));
    })
    .unwrap_err();
    assert!(
        problems.iter().any(|p| p.fast_llm.as_deref() == Some(path.as_str())),
        "{problems:#?}"
    );
}

#[test]
fn a_moe_model_round_trips() {
    let hf = hf_config(MOE);
    let config = handler().import(&hf).unwrap();
    let back = handler().export(&config, HfLayout::V4).unwrap();
    for key in [
        "num_experts",
        "top_k_experts",
        "moe_intermediate_size",
        "enable_moe_block",
        "intermediate_size",
    ] {
        assert_eq!(back[key], hf[key], "{key}");
    }
    assert_eq!(handler().import(&back).unwrap(), config);
}
