//! Every Apriel-family handler: registered once, coverage-clean; targeted imports, exports and
//! rejections.

use fastllm_core::config::{Form, Map, ModelKind, Value, load_base_model};
use fastllm_core::coverage::check_handler;
use fastllm_core::dict;
use fastllm_core::{ConvertError, HfLayout, handlers, registry_errors};
use rstest::rstest;

// Integration tests link the family explicitly (a crate nothing names keeps no registrations).
use fastllm_apriel as _;

fn map(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// Merges `extra` (a JSON object) into `base`, key by key at the top level.
fn with(mut base: Map, extra: &str) -> Map {
    base.extend(map(extra));
    base
}

fn import(format: &str, hf: &Map) -> Result<Map, ConvertError> {
    let handler = fastllm_core::find(format).unwrap();
    handler.import(hf).map(|c| c.to_form(Form::Architecture))
}

fn export(format: &str, kind: ModelKind, fast_llm: &str) -> Result<Map, ConvertError> {
    let handler = fastllm_core::find(format).unwrap();
    let config = load_base_model(kind, &Value::from_json_str(fast_llm).unwrap()).unwrap();
    handler.export(&config, HfLayout::V4)
}

fn get<'a>(m: &'a Map, path: &str) -> &'a Value {
    dict::get(m, path).unwrap_or_else(|| panic!("no {path} in {m:?}"))
}

/// The problems' (Fast-LLM path, HF key) pairs, flattened to the ones that are set.
fn named(error: ConvertError) -> Vec<String> {
    error
        .problems()
        .iter()
        .flat_map(|p| p.fast_llm.iter().chain(p.hf.iter()).cloned())
        .collect()
}

#[test]
fn the_family_registers_its_formats() {
    let names: Vec<&str> = handlers()
        .iter()
        .filter(|h| h.family == fastllm_apriel::FAMILY)
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["apriel2", "apriel2_text", "apriel_hybrid_ssm"]);
    assert!(registry_errors().is_empty(), "{:?}", registry_errors());
    assert_eq!(fastllm_core::find("apriel2").unwrap().model, ModelKind::MultiModal);
}

#[rstest]
fn every_handler_passes_coverage(#[values("apriel_hybrid_ssm", "apriel2_text", "apriel2")] name: &str) {
    let handler = fastllm_core::find(name).unwrap();
    let report = check_handler(handler);
    assert!(report.failures.is_empty(), "{name}: {:#?}", report.failures);
    assert!(report.samples > 0);
}

// ---------------------------------------------------------------------------------------------
// apriel_hybrid_ssm

fn hybrid(layout: &str) -> Map {
    map(&format!(
        r#"{{"model_type": "apriel_hybrid_ssm", "architectures": ["AprielHybridSSMForCausalLM"],
            "hidden_size": 100, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 25,
            "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 128, "sliding_window": null,
            "hybrid_block_layout": {layout}}}"#
    ))
}

#[test]
fn hybrid_mamba_without_ssm_cfg_takes_the_class_defaults() {
    let fl = import("apriel_hybrid_ssm", &hybrid(r#"["m2", "t"]"#)).unwrap();
    let mixer = get(&fl, "decoder.blocks.m2.mixer").as_map().unwrap();
    assert_eq!(get(mixer, "state_size"), &Value::Int(64));
    assert_eq!(
        get(mixer, "d_inner"),
        &Value::Int(4096),
        "absent d_inner is 4096, not hidden × expand"
    );
    assert_eq!(get(mixer, "d_xb"), &Value::Int(100), "d_xb null means hidden_size");
    assert_eq!(get(mixer, "dt_rank"), &Value::Int(7), "auto = ceil(100 / 16)");
    assert_eq!(get(mixer, "convolution_layer.bias.enabled"), &Value::Bool(true));
    assert_eq!(get(mixer, "dt_layer.bias.enabled"), &Value::Bool(true));
}

#[rstest]
#[case::left_to_the_defaults(r#"{"ssm_cfg": {"d_xb": null, "dt_rank": "auto"}}"#, 100, 7)]
#[case::given(r#"{"ssm_cfg": {"d_xb": 50, "dt_rank": 3}}"#, 50, 3)]
fn hybrid_mamba_sizes_are_read_or_derived_from_hidden_size(
    #[case] ssm_cfg: &str,
    #[case] d_xb: i128,
    #[case] dt_rank: i128,
) {
    let fl = import("apriel_hybrid_ssm", &with(hybrid(r#"["m2", "t"]"#), ssm_cfg)).unwrap();
    let mixer = get(&fl, "decoder.blocks.m2.mixer").as_map().unwrap();
    assert_eq!(
        (get(mixer, "d_xb"), get(mixer, "dt_rank")),
        (&Value::Int(d_xb), &Value::Int(dt_rank))
    );
}

#[rstest]
#[case(r#"{"ssm_cfg": {"d_conv": 5}}"#, "ssm_cfg.d_conv")]
#[case(r#"{"ssm_cfg": {"dt_rank": "big"}}"#, "ssm_cfg.dt_rank")]
#[case(r#"{"ssm_cfg": {"d_state": 16, "d_model": 100}}"#, "ssm_cfg.d_model")]
#[case(r#"{"ssm_cfg": [1]}"#, "ssm_cfg")]
fn hybrid_rejects_ssm_cfg_it_cannot_hold(#[case] extra: &str, #[case] key: &str) {
    let error = import("apriel_hybrid_ssm", &with(hybrid(r#"["t", "m2"]"#), extra)).unwrap_err();
    assert!(named(error.clone()).iter().any(|k| k == key), "{error}");
}

#[test]
fn hybrid_gdn_needs_its_keys() {
    let hf = with(
        hybrid(r#"["t", "gdn"]"#),
        r#"{"linear_attn_config": {"gdn_num_value_heads": 8, "gdn_num_key_heads": 4, "gdn_key_head_dim": 16,
            "gdn_value_head_dim": 16}}"#,
    );
    let error = import("apriel_hybrid_ssm", &hf).unwrap_err();
    assert!(
        named(error.clone()).contains(&"linear_attn_config.gdn_linear_conv_kernel_size".to_string()),
        "{error}"
    );
}

#[test]
fn hybrid_accepts_the_keys_its_class_writes() {
    let hf = with(
        hybrid(r#"["t"]"#),
        r#"{"layer_types": ["full_attention", "full_attention"],
            "linear_attn_config": {"short_conv_kernel_size": 4, "head_dim": 128, "num_heads": 32}}"#,
    );
    let fl = import("apriel_hybrid_ssm", &hf).unwrap();
    assert_eq!(get(&fl, "decoder.type"), &Value::Str("fixed".into()));
}

const HYBRID_FL: &str = r#"{"hidden_size": 64, "embeddings": {"vocab_size": 128},
    "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}},
    "decoder": {"type": "pattern", "num_blocks": 2, "pattern": ["a", "b"], "blocks": {
        "a": {"mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
                        "rotary": {"type": "default", "theta": 10000}},
              "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
              "normalization": {"type": "rms_norm", "epsilon": 1e-5}},
        "b": {"mixer": MIXER,
              "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
              "normalization": {"type": "rms_norm", "epsilon": 1e-5}}}}}"#;

#[rstest]
#[case(r#"{"type": "kda", "heads": 4, "head_dim": 16}"#, "decoder.blocks.b.mixer.type")]
#[case(
    r#"{"type": "mamba", "add_linear_biases": false, "convolution_layer": {"kernel_size": 3}}"#,
    "decoder.blocks.b.mixer.convolution_layer.kernel_size"
)]
#[case(
    r#"{"type": "mamba", "add_linear_biases": false, "convolution_layer": {"activation": "silu"}}"#,
    "decoder.blocks.b.mixer.convolution_layer.activation"
)]
#[case(
    r#"{"type": "mamba", "add_linear_biases": false, "z_layer": {"bias": {"enabled": true}}}"#,
    "decoder.blocks.b.mixer.z_layer.bias.enabled"
)]
#[case(
    r#"{"type": "gdn", "normalization": {"epsilon": 1e-6}}"#,
    "decoder.blocks.b.mixer.normalization.epsilon"
)]
fn hybrid_export_rejects_by_name(#[case] mixer: &str, #[case] path: &str) {
    let error = export("apriel_hybrid_ssm", ModelKind::Gpt, &HYBRID_FL.replace("MIXER", mixer)).unwrap_err();
    assert!(named(error.clone()).contains(&path.to_string()), "{error}");
}

#[test]
fn hybrid_export_writes_effective_mamba_biases() {
    let mixer = r#"{"type": "mamba", "add_linear_biases": true, "dt_layer": {"bias": {"enabled": false}}}"#;
    let hf = export("apriel_hybrid_ssm", ModelKind::Gpt, &HYBRID_FL.replace("MIXER", mixer)).unwrap();
    assert_eq!(
        get(&hf, "ssm_cfg.conv_bias"),
        &Value::Bool(true),
        "falls back to add_linear_biases"
    );
    assert_eq!(get(&hf, "ssm_cfg.dt_proj_bias"), &Value::Bool(false));
    assert_eq!(
        get(&hf, "hybrid_block_layout"),
        &Value::from_json_str(r#"["t", "m2"]"#).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// apriel2_text

const APRIEL2_HEADER: &str = r#""model_type": "apriel2_text", "architectures": ["Apriel2ForCausalLM"],
    "hidden_size": 64, "vocab_size": 128"#;

#[test]
fn apriel2_text_absent_decoder_is_the_class_default() {
    let fl = import("apriel2_text", &map(&format!("{{{APRIEL2_HEADER}}}"))).unwrap();
    assert_eq!(get(&fl, "decoder.num_blocks"), &Value::Int(32));
    assert_eq!(
        get(&fl, "decoder.block.mixer.rotary.type"),
        &Value::Str("default".into())
    );
    assert_eq!(get(&fl, "decoder.block.mlp.intermediate_size"), &Value::Int(16384));
    assert_eq!(get(&fl, "head.normalization.epsilon"), &Value::Float(1e-5));
}

#[rstest]
#[case::null("null")]
#[case::empty("{}")]
fn apriel2_text_null_or_empty_sub_configs_are_the_class_default(#[case] value: &str) {
    // Apriel2TextConfig reads `decoder or default` (same for head and embeddings).
    let absent = import("apriel2_text", &map(&format!("{{{APRIEL2_HEADER}}}"))).unwrap();
    let given = format!(r#"{{{APRIEL2_HEADER}, "decoder": {value}, "head": {value}, "embeddings": {value}}}"#);
    assert_eq!(import("apriel2_text", &map(&given)).unwrap(), absent);
}

#[rstest]
#[case(
    r#"{"type": "attention", "heads": 4, "head_groups": 2, "head_size": 16, "rotary": {"type": "linear"}}"#,
    "decoder.block.mixer.rotary.type"
)]
#[case(r#"{"type": "attention", "heads": 4, "head_groups": 2, "head_size": 16, "query_layer": {"bias": {"enabled": true, "lr": 1}}}"#, "decoder.block.mixer.query_layer.bias.lr")]
#[case(
    r#"{"type": "stochastic", "main_mixer_name": "a", "mixers": {"a": {"type": "stochastic"}}}"#,
    "decoder.block.mixer.mixers.a.type"
)]
#[case(
    r#"{"type": "kda", "heads": 4, "head_dim": 16, "normalization": {"epsilon": 1e-5, "type": "rms_norm"}}"#,
    "decoder.block.mixer.normalization.type"
)]
// Found by the `convert` fuzz target: K and V biases that differ imported, then could not export.
#[case(
    r#"{"type": "attention", "heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
        "key_layer": {"bias": {"enabled": true}}}"#,
    "decoder.block.mixer.value_layer.bias.enabled"
)]
#[case(
    r#"{"type": "attention", "heads": 4, "head_groups": 2, "head_size": 16, "value_layer": {"bias": {"enabled": false}}}"#,
    "decoder.block.mixer.value_layer.bias.enabled"
)]
fn apriel2_text_import_rejects_by_name(#[case] mixer: &str, #[case] key: &str) {
    let hf = map(&format!(
        r#"{{{APRIEL2_HEADER}, "decoder": {{"type": "fixed", "num_blocks": 2, "block": {{"mixer": {mixer},
            "mlp": {{"type": "mlp", "intermediate_size": 128, "gated": true, "add_linear_biases": false,
                    "activation": "silu"}},
            "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}}}}}"#
    ));
    let error = import("apriel2_text", &hf).unwrap_err();
    assert!(named(error.clone()).contains(&key.to_string()), "{error}");
}

const APRIEL2_FL: &str = r#"{"hidden_size": 64, "embeddings": {"vocab_size": 128},
    "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}},
    "decoder": {"num_blocks": 2, "block": {"mixer": MIXER,
        "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
        "normalization": {"type": "rms_norm", "epsilon": 1e-5}}}}"#;

#[rstest]
#[case(
    r#"{"heads": 4, "head_groups": 2, "head_size": 16, "causal": false}"#,
    "decoder.block.mixer.causal"
)]
#[case(
    r#"{"heads": 4, "head_groups": 2, "head_size": 16, "rotary": {"type": "none"}}"#,
    "decoder.block.mixer.rotary.type"
)]
#[case(
    r#"{"type": "mamba", "repeat_kv_before_conv": false}"#,
    "decoder.block.mixer.repeat_kv_before_conv"
)]
#[case(
    r#"{"type": "gdn", "output_layer": {"bias": {"enabled": true}}}"#,
    "decoder.block.mixer.output_layer.bias.enabled"
)]
fn apriel2_text_export_rejects_by_name(#[case] mixer: &str, #[case] path: &str) {
    let error = export("apriel2_text", ModelKind::Gpt, &APRIEL2_FL.replace("MIXER", mixer)).unwrap_err();
    assert!(named(error.clone()).contains(&path.to_string()), "{error}");
}

#[test]
fn apriel2_text_writes_raw_mamba_bias_flags_and_per_layer_biases() {
    let hf = export(
        "apriel2_text",
        ModelKind::Gpt,
        &APRIEL2_FL.replace(
            "MIXER",
            r#"{"type": "mamba", "add_linear_biases": false, "dt_layer": {"bias": {"enabled": true}}}"#,
        ),
    )
    .unwrap();
    let mixer = get(&hf, "decoder.block.mixer").as_map().unwrap();
    assert_eq!(get(mixer, "conv_bias"), &Value::Null);
    assert_eq!(get(mixer, "dt_proj_bias"), &Value::Bool(true));
    assert_eq!(get(mixer, "d_conv"), &Value::Int(4));
}

// ---------------------------------------------------------------------------------------------
// apriel2 (multimodal)

fn apriel2_hf(vision_extra: &str) -> Map {
    let mut vision = map(
        r#"{"embeddings": {"patch_height": 16, "patch_width": 16, "normalization": {"type": "rms_norm", "epsilon": 1e-5},
                "input_channels": 3},
            "num_channels": 3, "patch_size": 16, "num_hidden_layers": 2, "hidden_size": 64,
            "encoder": {"type": "fixed", "num_blocks": 2, "block": {
                "mixer": {"type": "attention", "heads": 4, "head_groups": 4, "head_size": 16,
                          "add_linear_biases": false, "causal": false, "cross_document_attention": false,
                          "rotary": {"type": "pixtral_2d", "theta": 10000.0, "patch_size": 16, "max_image_size": 1024}},
                "mlp": {"type": "mlp", "intermediate_size": 128, "gated": true, "add_linear_biases": false,
                        "activation": "silu"},
                "normalization": {"type": "rms_norm", "epsilon": 1e-5}}},
            "adapter": {"type": "mlp", "intermediate_size": 64, "gated": false, "add_linear_biases": true,
                        "activation": "gelu"}}"#,
    );
    for (path, value) in map(vision_extra) {
        *dict_get_mut(&mut vision, &path) = value;
    }
    let mut hf = map(
        r#"{"model_type": "apriel2", "architectures": ["Apriel2ForConditionalGeneration"], "hidden_size": 64,
            "vocab_size": 128, "image_token_index": 7}"#,
    );
    hf.insert("vision_encoder".into(), Value::Map(vision));
    hf
}

fn dict_get_mut<'a>(map: &'a mut Map, path: &str) -> &'a mut Value {
    let (head, rest) = path.split_once('.').map_or((path, None), |(h, r)| (h, Some(r)));
    let value = map.get_mut(head).unwrap();
    match (rest, value) {
        (Some(rest), Value::Map(inner)) => dict_get_mut(inner, rest),
        (None, value) => value,
        _ => panic!("no {path}"),
    }
}

#[test]
fn apriel2_imports_its_vision_encoder() {
    let fl = import("apriel2", &apriel2_hf("{}")).unwrap();
    assert_eq!(
        get(&fl, "vision_encoder.encoder.block.mixer.rotary.type"),
        &Value::Str("default_2d".into())
    );
    assert_eq!(
        get(&fl, "vision_encoder.adapter.activation"),
        &Value::Str("gelu".into())
    );
    assert_eq!(get(&fl, "image_token_index"), &Value::Int(7));
}

#[rstest]
#[case(r#"{"num_hidden_layers": 3}"#, "num_hidden_layers")]
#[case(r#"{"patch_size": 14}"#, "patch_size")]
#[case(r#"{"num_channels": 1}"#, "num_channels")]
#[case(r#"{"embeddings.input_channels": 4}"#, "embeddings.input_channels")]
#[case(
    r#"{"encoder.block.mixer.rotary.max_image_size": 512}"#,
    "encoder.block.mixer.rotary.max_image_size"
)]
#[case(
    r#"{"encoder.block.mixer.rotary.patch_size": 8}"#,
    "encoder.block.mixer.rotary.patch_size"
)]
#[case(
    r#"{"encoder.block.mixer.rotary.type": "default_2d"}"#,
    "encoder.block.mixer.rotary.type"
)]
fn apriel2_mirrors_must_agree(#[case] extra: &str, #[case] key: &str) {
    let error = import("apriel2", &apriel2_hf(extra)).unwrap_err();
    assert!(
        named(error.clone())
            .iter()
            .any(|k| k == &format!("vision_encoder.{key}")),
        "{error}"
    );
}

#[test]
fn apriel2_requires_a_vision_encoder() {
    let mut hf = apriel2_hf("{}");
    hf.remove("vision_encoder");
    let error = import("apriel2", &hf).unwrap_err();
    assert_eq!(named(error), ["vision_encoder"]);
}

/// A bias flag that is not a bool is refused by its key, not read as unset: with the value
/// layer's bias off, an unset key bias would follow `add_linear_biases` (on) and the K/V check
/// would blame the value layer instead.
#[rstest]
#[case("key_layer", r#""yes""#, r#"found str "yes""#)]
#[case("key_layer", "1", "found int 1")]
#[case("value_layer", "[]", "found list")]
fn apriel2_text_a_bias_flag_that_is_not_a_bool_is_refused_by_its_key(
    #[case] layer: &str,
    #[case] value: &str,
    #[case] found: &str,
) {
    let other = if layer == "key_layer" {
        "value_layer"
    } else {
        "key_layer"
    };
    let mixer = format!(
        r#"{{"type": "attention", "heads": 4, "head_groups": 2, "head_size": 16,
            "rotary": {{"type": "default", "theta": 10000}},
            "{other}": {{"bias": {{"enabled": false}}}}, "{layer}": {{"bias": {{"enabled": {value}}}}}}}"#
    );
    let hf = map(&format!(
        r#"{{{APRIEL2_HEADER}, "decoder": {{"type": "fixed", "num_blocks": 2, "block": {{"mixer": {mixer},
            "mlp": {{"type": "mlp", "intermediate_size": 128, "gated": true, "add_linear_biases": false,
                    "activation": "silu"}},
            "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}}}}}"#
    ));
    let error = import("apriel2_text", &hf).unwrap_err();
    let key = format!("decoder.block.mixer.{layer}.bias.enabled");
    let problems = error.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.hf.as_deref() == Some(key.as_str()) && p.message.contains(found)),
        "{error}"
    );
    assert!(
        !problems.iter().any(|p| p.message.contains("differs from key bias")),
        "{error}"
    );
}
