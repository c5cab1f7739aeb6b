//! The architecture-path walker: every architecture-hint field, descending into sub-configs,
//! dict entries (by key) and list entries (by index), in Fast-LLM's field order.

use fastllm_config::*;
use rstest::rstest;

fn load_as<T: ConfigClass>(json: &str) -> T {
    load::<T>(&Value::from_json_str(json).unwrap()).unwrap()
}

fn dotted(paths: Vec<Vec<String>>) -> Vec<String> {
    paths.into_iter().map(|p| p.join(".")).collect()
}

fn linear(prefix: &str) -> Vec<String> {
    vec![prefix.to_string(), format!("{prefix}.weight"), format!("{prefix}.bias")]
}

fn attention(prefix: &str) -> Vec<String> {
    let mut out = vec![prefix.to_string()];
    for layer in ["query_layer", "key_layer", "value_layer", "dense_layer"] {
        out.extend(linear(&format!("{prefix}.{layer}")));
    }
    out.push(format!("{prefix}.rotary"));
    for field in [
        "heads",
        "head_groups",
        "head_size",
        "add_linear_biases",
        "causal",
        "softmax_scale_power",
        "query_norm",
        "key_norm",
        "value_norm",
        "shared_key_value",
    ] {
        out.push(format!("{prefix}.{field}"));
    }
    out
}

#[test]
fn linear_layer() {
    assert_eq!(
        dotted(AffineLinearConfig::default().architecture_paths()),
        vec!["weight", "bias"]
    );
}

#[rstest]
#[case::none(r#"{"type": "none"}"#, vec![])]
#[case::layer_norm(r#"{}"#, vec!["weight", "epsilon", "zero_centered", "bias"])]
#[case::rms_norm(r#"{"type": "rms_norm"}"#, vec!["weight", "epsilon", "zero_centered"])]
#[case::gated(r#"{"type": "gated_rms_norm"}"#, vec!["weight", "epsilon", "zero_centered"])]
fn normalizations(#[case] json: &str, #[case] expected: Vec<&str>) {
    let norm: NormalizationConfig =
        NormalizationConfig::parse_map(Value::from_json_str(json).unwrap().as_map().unwrap(), &mut Ctx::new()).unwrap();
    let mut out = Vec::new();
    FieldType::walk(&norm, &mut Vec::new(), &mut out);
    assert_eq!(dotted(out), expected);
}

#[test]
fn decoder_block_in_field_order() {
    let block: DecoderBlockConfig = load_as(
        r#"{"mixer": {"rotary": {"type": "default"}}, "normalization": {"type": "none"}, "mlp": {"post_norm": {"type": "fixed_rms_norm"}}}"#,
    );
    let mut expected = attention("mixer");
    // The rotary's own field comes right after it.
    let rotary = expected.iter().position(|p| p == "mixer.rotary").unwrap();
    expected.insert(rotary + 1, "mixer.rotary.theta".into());
    expected.extend(["mlp", "mlp.pre_norm", "mlp.post_norm", "mlp.post_norm.epsilon"].map(String::from));
    expected.extend(linear("mlp.layer_1"));
    expected.extend(linear("mlp.layer_2"));
    expected.extend(
        [
            "mlp.intermediate_size",
            "mlp.add_linear_biases",
            "mlp.gated",
            "mlp.activation",
        ]
        .map(String::from),
    );
    expected.extend(
        [
            "normalization",
            "pre_mixer_normalization",
            "pre_mlp_normalization",
            "post_mixer_normalization",
            "post_mlp_normalization",
            "output_scale",
        ]
        .map(String::from),
    );
    assert_eq!(dotted(block.architecture_paths()), expected);
}

#[test]
fn dict_entries_by_sorted_key() {
    let mixer: StochasticMixerConfig = load_as(r#"{"mixers": {"z": {}, "a": {}}}"#);
    // A dict entry is not a field: its path only prefixes the entry's own fields.
    let mut expected = vec!["mixers".to_string()];
    expected.extend(attention("mixers.a").into_iter().skip(1));
    expected.extend(attention("mixers.z").into_iter().skip(1));
    expected.push("main_mixer_name".into());
    assert_eq!(dotted(mixer.architecture_paths()), expected);
}

#[test]
fn pattern_blocks_by_name() {
    let sequence: PatternBlockSequenceConfig =
        load_as(r#"{"blocks": {"m": {"mixer": {"type": "gdn"}}, "a": {}}, "pattern": ["m", "a"], "num_blocks": 3}"#);
    let paths = dotted(sequence.architecture_paths());
    assert_eq!(paths[0], "blocks");
    assert_eq!(paths[1], "blocks.a.mixer");
    let m = paths.iter().position(|p| p == "blocks.m.mixer").unwrap();
    assert!(paths[..m].iter().all(|p| p == "blocks" || p.starts_with("blocks.a")));
    assert!(paths.contains(&"blocks.m.mixer.normalization.epsilon".to_string()));
    assert!(paths.contains(&"blocks.m.mixer.convolution_layer.kernel_size".to_string()));
    assert_eq!(&paths[paths.len() - 2..], ["pattern", "num_blocks"]);
    assert_eq!(sequence.expanded_pattern(), ["m", "a", "m"]);
}

#[test]
fn core_fields_are_not_architecture() {
    // `d_inner` is `core` and `enabled` is `unknown`: neither is walked.
    let mamba: MambaConfig = load_as(r#"{"z_layer": {"bias": {"enabled": true}}}"#);
    let paths = dotted(mamba.architecture_paths());
    assert!(
        !paths.iter().any(|p| p.ends_with("d_inner") || p.ends_with("enabled")),
        "{paths:?}"
    );
    assert!(paths.contains(&"d_xb".to_string()));
}

#[test]
fn whole_models() {
    let gpt = load_base_model(ModelKind::Gpt, &Value::from_json_str("{}").unwrap()).unwrap();
    let paths = dotted(gpt.architecture_paths());
    assert_eq!(paths.first().map(String::as_str), Some("decoder"));
    assert_eq!(
        &paths[paths.len() - 3..],
        ["tied_embedding_weight", "hidden_size", "peft"]
    );
    let multimodal = load_base_model(ModelKind::MultiModal, &Value::from_json_str("{}").unwrap()).unwrap();
    let paths = dotted(multimodal.architecture_paths());
    assert!(paths.contains(&"vision_encoder.embeddings.patch_height".to_string()));
    assert!(paths.contains(&"vision_encoder.adapter.intermediate_size".to_string()));
    assert!(
        !paths.iter().any(|p| p.starts_with("vision_encoder.normalization")),
        "feature-hinted subtree has no architecture fields"
    );
}
