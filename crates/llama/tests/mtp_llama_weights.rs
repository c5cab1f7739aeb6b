//! MTP-Llama's weights: the plan of a small config, name by name, and synthetic checkpoints of
//! every sample config round-tripping HF → Fast-LLM → HF bit for bit.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::Options;
use fastllm_checkpoint::synthetic::{fast_llm_to_hf, synthetic_to_fast_llm};
use fastllm_checkpoint::{Checkpoint, open_fast_llm, open_hf};
use fastllm_core::config::Map;
use fastllm_core::config::{Form, Value, load_base_model};
use fastllm_core::weights::{PlanEntry, Transform, plan};
use fastllm_core::{dict, find};
use fastllm_layout as layout;
use rstest::rstest;

use fastllm_llama as _;

/// The value at `path` of a full-form Fast-LLM dict (absent: `null`).
fn fl_value<'a>(fl: &'a Map, path: &str) -> &'a Value {
    dict::get(fl, path).unwrap_or(&Value::Null)
}

/// One expected plan entry: Fast-LLM name and shape, HF names and shapes, transform.
type Expected = (String, Vec<usize>, Vec<(String, Vec<usize>)>, Transform);

fn entry(fast_llm: &str, shape: &[usize], hf: &[(&str, &[usize])], transform: Transform) -> Expected {
    (
        fast_llm.to_string(),
        shape.to_vec(),
        hf.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect(),
        transform,
    )
}

/// The plan produces exactly the parameters of Fast-LLM's model (the independent layout).
fn assert_layout(config: &fastllm_core::config::BaseModelConfig, entries: &[PlanEntry]) {
    let planned: Vec<(String, Vec<usize>)> = entries
        .iter()
        .map(|e| (e.fast_llm.clone(), e.fast_llm_shape.clone()))
        .collect();
    let gaps = layout::coverage_gaps(&layout::parameters(config), &planned);
    assert!(gaps.is_empty(), "{gaps:#?}");
}

fn actual(entries: &[PlanEntry]) -> Vec<Expected> {
    entries
        .iter()
        .map(|e| {
            (
                e.fast_llm.clone(),
                e.fast_llm_shape.clone(),
                e.hf.iter().cloned().zip(e.hf_shapes.iter().cloned()).collect(),
                e.transform,
            )
        })
        .collect()
}

/// A Llama block (H 64, 4 heads, 2 KV heads of 16, gated MLP of 128, no biases), state-dict doc
/// §3.2/§3.3/§3.7 and formats.md §3.3.
fn llama_block(fl: &str, hf: &str) -> Vec<Expected> {
    let (f, h) = (|n: &str| format!("{fl}.{n}"), |n: &str| format!("{hf}.{n}"));
    vec![
        entry(
            &f("mixer.query.weight"),
            &[64, 64],
            &[(&h("self_attn.q_proj.weight"), &[64, 64])],
            Transform::Copy,
        ),
        entry(
            &f("mixer.key_value.weight"),
            &[64, 64],
            &[
                (&h("self_attn.k_proj.weight"), &[32, 64]),
                (&h("self_attn.v_proj.weight"), &[32, 64]),
            ],
            Transform::Concat,
        ),
        entry(
            &f("mixer.dense.weight"),
            &[64, 64],
            &[(&h("self_attn.o_proj.weight"), &[64, 64])],
            Transform::Copy,
        ),
        entry(
            &f("mlp.layer_1.weight"),
            &[256, 64],
            &[
                (&h("mlp.gate_proj.weight"), &[128, 64]),
                (&h("mlp.up_proj.weight"), &[128, 64]),
            ],
            Transform::Concat,
        ),
        entry(
            &f("mlp.layer_2.weight"),
            &[128, 64],
            &[(&h("mlp.down_proj.weight"), &[64, 128])],
            Transform::Transpose,
        ),
        entry(
            &f("norm_1.weight"),
            &[64],
            &[(&h("input_layernorm.weight"), &[64])],
            Transform::Copy,
        ),
        entry(
            &f("norm_2.weight"),
            &[64],
            &[(&h("post_attention_layernorm.weight"), &[64])],
            Transform::Copy,
        ),
    ]
}

/// formats.md §7: Llama's embeddings and decoder, the MTP blocks and norms, then the head, whose
/// final norm is `model.mtp_norms.0`.
#[test]
fn plan_of_three_prediction_heads() {
    let handler = find("mtp_llama").unwrap();
    let config = load_base_model(
        handler.model,
        &Value::from_json_str(
            r#"{"hidden_size": 64, "embeddings": {"vocab_size": 128},
                "decoder": {"num_blocks": 2, "block": {
                    "mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
                              "rotary": {"type": "default", "theta": 10000}},
                    "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
                    "normalization": {"type": "rms_norm", "epsilon": 1e-5}}},
                "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}, "prediction_heads": 3}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let mut expected = vec![entry(
        "embeddings.word_embeddings_weight",
        &[128, 64],
        &[("model.embed_tokens.weight", &[128, 64])],
        Transform::Copy,
    )];
    expected.extend(llama_block("decoder.0", "model.layers.0"));
    expected.extend(llama_block("decoder.1", "model.layers.1"));
    expected.extend(llama_block("multi_token_prediction.blocks.0", "model.mtp_heads.0"));
    expected.extend(llama_block("multi_token_prediction.blocks.1", "model.mtp_heads.1"));
    expected.extend([
        entry(
            "multi_token_prediction.heads.0.final_norm.weight",
            &[64],
            &[("model.mtp_norms.1.weight", &[64])],
            Transform::Copy,
        ),
        entry(
            "multi_token_prediction.heads.1.final_norm.weight",
            &[64],
            &[("model.mtp_norms.2.weight", &[64])],
            Transform::Copy,
        ),
        entry(
            "head.final_norm.weight",
            &[64],
            &[("model.mtp_norms.0.weight", &[64])],
            Transform::Copy,
        ),
        entry(
            "head.output_weights",
            &[128, 64],
            &[("lm_head.weight", &[128, 64])],
            Transform::Copy,
        ),
    ]);
    let got = plan(&handler.converter().base_model, &config).unwrap();
    assert_layout(&config, &got);
    assert_eq!(actual(&got), expected);
}

/// One prediction head and tied embeddings: no MTP tensors, no `lm_head`; the final norm is
/// still `model.mtp_norms.0`.
#[test]
fn plan_of_one_prediction_head_with_tied_embeddings() {
    let handler = find("mtp_llama").unwrap();
    let config = load_base_model(
        handler.model,
        &Value::from_json_str(
            r#"{"hidden_size": 64, "embeddings": {"vocab_size": 128}, "tied_embedding_weight": true,
                "decoder": {"num_blocks": 1, "block": {
                    "mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false},
                    "mlp": {"intermediate_size": 128, "gated": true, "add_linear_biases": false},
                    "normalization": {"type": "rms_norm", "epsilon": 1e-5}}},
                "head": {"normalization": {"type": "rms_norm", "epsilon": 1e-5}, "prediction_heads": 1}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let got = plan(&handler.converter().base_model, &config).unwrap();
    assert_layout(&config, &got);
    let mut expected = vec![entry(
        "embeddings.word_embeddings_weight",
        &[128, 64],
        &[("model.embed_tokens.weight", &[128, 64])],
        Transform::Copy,
    )];
    expected.extend(llama_block("decoder.0", "model.layers.0"));
    expected.push(entry(
        "head.final_norm.weight",
        &[64],
        &[("model.mtp_norms.0.weight", &[64])],
        Transform::Copy,
    ));
    assert_eq!(actual(&got), expected);
}

/// With a pattern decoder the MTP blocks copy the expanded pattern's last block (Fast-LLM's
/// `last_block_config`): with `a b a` that is `a`, not the pattern's last name `b`.
#[test]
fn pattern_decoder_mtp_blocks_copy_the_last_block() {
    let handler = find("mtp_llama").unwrap();
    let block = |width: usize| {
        format!(
            r#"{{"mixer": {{"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false}},
                "mlp": {{"intermediate_size": {width}, "gated": true, "add_linear_biases": false}},
                "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}"#
        )
    };
    let config = load_base_model(
        handler.model,
        &Value::from_json_str(&format!(
            r#"{{"hidden_size": 64, "embeddings": {{"vocab_size": 128}},
                "decoder": {{"type": "pattern", "num_blocks": 3, "pattern": ["a", "b"], "blocks": {{"a": {}, "b": {}}}}},
                "head": {{"normalization": {{"type": "rms_norm", "epsilon": 1e-5}}, "prediction_heads": 2}}}}"#,
            block(128),
            block(96)
        ))
        .unwrap(),
    )
    .unwrap();
    let entries = plan(&handler.converter().base_model, &config).unwrap();
    let mut planned: Vec<(String, Vec<usize>)> = entries
        .iter()
        .map(|e| (e.fast_llm.clone(), e.fast_llm_shape.clone()))
        .collect();
    let mut expected = layout::parameters(&config);
    planned.sort();
    expected.sort();
    assert_eq!(planned, expected);
    let shape = |name: &str| {
        entries
            .iter()
            .find(|e| e.fast_llm == name)
            .unwrap_or_else(|| panic!("{name} not planned"))
            .fast_llm_shape
            .clone()
    };
    // Blocks 0 and 2 are `a` (128), block 1 is `b` (96); the last block is `a`.
    assert_eq!(shape("decoder.1.mlp.layer_1.weight"), [192, 64]);
    assert_eq!(shape("multi_token_prediction.blocks.0.mlp.layer_1.weight"), [256, 64]);
    assert_eq!(
        entries
            .iter()
            .find(|e| e.fast_llm == "multi_token_prediction.blocks.0.mlp.layer_2.weight")
            .unwrap()
            .hf,
        ["model.mtp_heads.0.mlp.down_proj.weight"]
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mtp_llama").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

#[rstest]
fn synthetic_checkpoints_round_trip(#[values("mtp_llama")] format: &str) {
    let handler = find(format).unwrap();
    let samples = &handler.converter().samples;
    assert!(!samples.is_empty());
    for (i, sample) in samples.iter().enumerate() {
        let config = load_base_model(handler.model, sample).unwrap();
        let (input, middle, back) = (
            scratch(&format!("{format}-{i}-synthetic")),
            scratch(&format!("{format}-{i}-mid")),
            scratch(&format!("{format}-{i}-back")),
        );
        synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
        let fast_llm = open_fast_llm(&middle).unwrap();
        let Value::Int(heads) = fl_value(&config.to_form(Form::Full), "head.prediction_heads").clone() else {
            panic!("prediction_heads is an int");
        };
        for k in 0..heads - 1 {
            for name in [
                format!("multi_token_prediction.blocks.{k}.mlp.layer_2.weight/weights"),
                format!("multi_token_prediction.heads.{k}.final_norm.weight/weights"),
            ] {
                assert!(fast_llm.files.get(&name).is_ok(), "{name}");
            }
        }
        fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();
        assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&input).unwrap());
    }
}

/// A Fast-LLM checkpoint whose decoder is a pattern (of identical blocks) converts to MTP-Llama:
/// the MTP heads copy the pattern's last block, and the result equals the fixed-decoder original.
#[test]
fn a_pattern_decoder_checkpoint_exports() {
    let handler = find("mtp_llama").unwrap();
    let sample = handler
        .converter()
        .samples
        .iter()
        .find(|s| fl_value(s.as_map().unwrap(), "head.prediction_heads") != &Value::Int(1))
        .expect("a sample with extra prediction heads");
    let config = load_base_model(handler.model, sample).unwrap();
    let (input, middle, back) = (scratch("pattern-in"), scratch("pattern-mid"), scratch("pattern-back"));
    synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
    // Rewrite the middle's decoder as a one-name pattern of the same block.
    let path = middle.join("metadata.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let Value::Map(mut metadata) = fastllm_core::config::parse_document(&text, Some("yaml")).unwrap() else {
        panic!("metadata.yaml is a mapping")
    };
    let Some(Value::Map(config)) = metadata.get_mut("config") else {
        panic!("config")
    };
    let Some(Value::Map(base_model)) = config.get_mut("base_model") else {
        panic!("base_model")
    };
    let Some(Value::Map(decoder)) = base_model.get("decoder").cloned() else {
        panic!("decoder")
    };
    let pattern = Value::from_json_str(r#"{"type": "pattern", "pattern": ["x"]}"#).unwrap();
    let Value::Map(mut pattern) = pattern else {
        unreachable!()
    };
    pattern.insert("num_blocks".into(), decoder["num_blocks"].clone());
    pattern.insert(
        "blocks".into(),
        Value::Map([("x".to_string(), decoder["block"].clone())].into_iter().collect()),
    );
    base_model.insert("decoder".into(), Value::Map(pattern));
    std::fs::write(&path, Value::Map(metadata).to_yaml()).unwrap();
    assert_eq!(
        fl_value(
            &fastllm_checkpoint::convert::fast_llm_base_model(&open_fast_llm(&middle).unwrap())
                .unwrap()
                .to_form(Form::Full),
            "decoder.type"
        ),
        &Value::Str("pattern".into())
    );
    fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();
    assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&input).unwrap());
}
