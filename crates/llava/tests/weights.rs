//! The Llava formats' weights: the plan of small configs, name by name (state-dict doc §2, §3.9; formats.md
//! §12.4, §13), and synthetic checkpoints of every sample config round-tripping HF → Fast-LLM → HF bit
//! for bit.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_checkpoint::synthetic::{SyntheticStorage, fast_llm_to_hf, synthetic_to_fast_llm, write_synthetic_hf};
use fastllm_checkpoint::{Checkpoint, open_hf};
use fastllm_core::config::{Value, load_base_model};
use fastllm_core::find;
use fastllm_core::weights::{PlanEntry, Transform, plan};
use fastllm_layout as layout;
use rstest::rstest;

use fastllm_llava as _;

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

/// Text H 64, vocab 100, 4 heads / 1 KV head of 8, MLP 96; vision Hv 32, 2×16 heads, MLP 40,
/// 2×2 patches; adapter 32 → 64 → 64.
fn config(tied: bool, projector_bias: bool) -> Value {
    Value::from_json_str(&format!(
        r#"{{
            "hidden_size": 64, "image_token_index": 10, "tied_embedding_weight": {tied},
            "embeddings": {{"vocab_size": 100}},
            "head": {{"normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}},
            "decoder": {{"num_blocks": 1, "block": {{
                "mixer": {{"heads": 4, "head_groups": 1, "head_size": 8, "add_linear_biases": false,
                          "rotary": {{"type": "default", "theta": 10000}}}},
                "mlp": {{"intermediate_size": 96, "gated": true, "add_linear_biases": false}},
                "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}}},
            "vision_encoder": {{
                "hidden_size": 32,
                "embeddings": {{"patch_height": 2, "patch_width": 2, "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}},
                "encoder": {{"num_blocks": 2, "block": {{
                    "mixer": {{"heads": 2, "head_groups": 2, "head_size": 16, "add_linear_biases": false, "causal": false,
                              "rotary": {{"type": "default_2d", "theta": 10000}}}},
                    "mlp": {{"intermediate_size": 40, "gated": true, "add_linear_biases": false, "activation": "gelu"}},
                    "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}}},
                "adapter": {{"intermediate_size": 64, "gated": false, "add_linear_biases": {projector_bias}, "activation": "gelu"}}
            }}
        }}"#
    ))
    .unwrap()
}

fn vision_block(i: usize) -> Vec<Expected> {
    let f = |n: &str| format!("vision_encoder.encoder.{i}.{n}");
    let h = |n: &str| format!("vision_tower.transformer.layers.{i}.{n}");
    vec![
        entry(
            &f("mixer.query.weight"),
            &[32, 32],
            &[(&h("attention.q_proj.weight"), &[32, 32])],
            Transform::Copy,
        ),
        entry(
            &f("mixer.key_value.weight"),
            &[64, 32],
            &[
                (&h("attention.k_proj.weight"), &[32, 32]),
                (&h("attention.v_proj.weight"), &[32, 32]),
            ],
            Transform::Concat,
        ),
        entry(
            &f("mixer.dense.weight"),
            &[32, 32],
            &[(&h("attention.o_proj.weight"), &[32, 32])],
            Transform::Copy,
        ),
        entry(
            &f("mlp.layer_1.weight"),
            &[80, 32],
            &[
                (&h("feed_forward.gate_proj.weight"), &[40, 32]),
                (&h("feed_forward.up_proj.weight"), &[40, 32]),
            ],
            Transform::Concat,
        ),
        entry(
            &f("mlp.layer_2.weight"),
            &[40, 32],
            &[(&h("feed_forward.down_proj.weight"), &[32, 40])],
            Transform::Transpose,
        ),
        entry(
            &f("norm_1.weight"),
            &[32],
            &[(&h("attention_norm.weight"), &[32])],
            Transform::Copy,
        ),
        entry(
            &f("norm_2.weight"),
            &[32],
            &[(&h("ffn_norm.weight"), &[32])],
            Transform::Copy,
        ),
    ]
}

/// The vision encoder (`blocks` Pixtral blocks) and the adapter of [`config`].
fn expected_vision(blocks: usize, projector_bias: bool) -> Vec<Expected> {
    let mut out = vec![
        entry(
            "vision_encoder.embeddings.patch_embeddings.weight",
            &[32, 12],
            &[("vision_tower.patch_conv.weight", &[32, 3, 2, 2])],
            Transform::Reshape,
        ),
        entry(
            "vision_encoder.embeddings.normalization.weight",
            &[32],
            &[("vision_tower.ln_pre.weight", &[32])],
            Transform::Copy,
        ),
    ];
    out.extend((0..blocks).flat_map(vision_block));
    out.push(entry(
        "vision_encoder.adapter.layer_1.weight",
        &[64, 32],
        &[("multi_modal_projector.linear_1.weight", &[64, 32])],
        Transform::Copy,
    ));
    if projector_bias {
        out.push(entry(
            "vision_encoder.adapter.layer_1.bias",
            &[64],
            &[("multi_modal_projector.linear_1.bias", &[64])],
            Transform::Copy,
        ));
    }
    out.push(entry(
        "vision_encoder.adapter.layer_2.weight",
        &[64, 64],
        &[("multi_modal_projector.linear_2.weight", &[64, 64])],
        Transform::Transpose,
    ));
    if projector_bias {
        out.push(entry(
            "vision_encoder.adapter.layer_2.bias",
            &[64],
            &[("multi_modal_projector.linear_2.bias", &[64])],
            Transform::Copy,
        ));
    }
    out
}

fn expected(tied: bool, projector_bias: bool) -> Vec<Expected> {
    let mut out = expected_vision(2, projector_bias);
    let l = "language_model.model.layers.0";
    out.extend([
        entry(
            "embeddings.word_embeddings_weight",
            &[100, 64],
            &[("language_model.model.embed_tokens.weight", &[100, 64])],
            Transform::Copy,
        ),
        entry(
            "decoder.0.mixer.query.weight",
            &[32, 64],
            &[(&format!("{l}.self_attn.q_proj.weight"), &[32, 64])],
            Transform::Copy,
        ),
        entry(
            "decoder.0.mixer.key_value.weight",
            &[16, 64],
            &[
                (&format!("{l}.self_attn.k_proj.weight"), &[8, 64]),
                (&format!("{l}.self_attn.v_proj.weight"), &[8, 64]),
            ],
            Transform::Concat,
        ),
        entry(
            "decoder.0.mixer.dense.weight",
            &[64, 32],
            &[(&format!("{l}.self_attn.o_proj.weight"), &[64, 32])],
            Transform::Copy,
        ),
        entry(
            "decoder.0.mlp.layer_1.weight",
            &[192, 64],
            &[
                (&format!("{l}.mlp.gate_proj.weight"), &[96, 64]),
                (&format!("{l}.mlp.up_proj.weight"), &[96, 64]),
            ],
            Transform::Concat,
        ),
        entry(
            "decoder.0.mlp.layer_2.weight",
            &[96, 64],
            &[(&format!("{l}.mlp.down_proj.weight"), &[64, 96])],
            Transform::Transpose,
        ),
        entry(
            "decoder.0.norm_1.weight",
            &[64],
            &[(&format!("{l}.input_layernorm.weight"), &[64])],
            Transform::Copy,
        ),
        entry(
            "decoder.0.norm_2.weight",
            &[64],
            &[(&format!("{l}.post_attention_layernorm.weight"), &[64])],
            Transform::Copy,
        ),
        entry(
            "head.final_norm.weight",
            &[64],
            &[("language_model.model.norm.weight", &[64])],
            Transform::Copy,
        ),
    ]);
    if !tied {
        out.push(entry(
            "head.output_weights",
            &[100, 64],
            &[("language_model.lm_head.weight", &[100, 64])],
            Transform::Copy,
        ));
    }
    out
}

#[rstest]
#[case::untied_with_projector_biases(false, true)]
#[case::tied_without_projector_biases(true, false)]
fn plan_names_and_shapes(#[case] tied: bool, #[case] projector_bias: bool) {
    let handler = find("llava").unwrap();
    let config = load_base_model(handler.model, &config(tied, projector_bias)).unwrap();
    // The config is one the format holds.
    handler.export(&config, fastllm_core::HfLayout::V4).unwrap();
    let got = plan(&handler.converter().base_model, &config).unwrap();
    assert_layout(&config, &got);
    assert_eq!(actual(&got), expected(tied, projector_bias));
}

/// llava_hybrid_ssm: [`config`]'s vision side with one block, and an Apriel hybrid text model of
/// an attention, a Mamba and a gated-delta-net block (state-dict doc §3.3–§3.5; formats.md §9).
fn hybrid_config() -> Value {
    let Value::Map(mut root) = config(true, false) else {
        unreachable!()
    };
    let mut vision = root["vision_encoder"].as_map().unwrap().clone();
    let mut encoder = vision["encoder"].as_map().unwrap().clone();
    encoder.insert("num_blocks".into(), Value::Int(1));
    vision.insert("encoder".into(), Value::Map(encoder));
    root.insert("vision_encoder".into(), Value::Map(vision));
    let decoder = r#"{"type": "pattern", "num_blocks": 3, "pattern": ["t", "m2", "gdn"], "blocks": {
        "t": {"mixer": {"heads": 4, "head_groups": 2, "head_size": 16, "add_linear_biases": false,
                        "rotary": {"type": "default", "theta": 10000}},
              "mlp": {"intermediate_size": 96, "gated": true, "add_linear_biases": false},
              "normalization": {"type": "rms_norm", "epsilon": 1e-5}},
        "m2": {"mixer": {"type": "mamba", "state_size": 8, "d_inner": 96, "d_xb": 32, "dt_rank": 4,
                         "add_linear_biases": false, "repeat_kv_before_conv": false,
                         "convolution_layer": {"bias": {"enabled": true}}, "dt_layer": {"bias": {"enabled": false}}},
               "mlp": {"intermediate_size": 96, "gated": true, "add_linear_biases": false},
               "normalization": {"type": "rms_norm", "epsilon": 1e-5}},
        "gdn": {"mixer": {"type": "gdn", "value_heads": 4, "key_heads": 2, "key_head_dim": 8, "value_head_dim": 16,
                          "convolution_layer": {"kernel_size": 3}},
                "mlp": {"intermediate_size": 96, "gated": true, "add_linear_biases": false},
                "normalization": {"type": "rms_norm", "epsilon": 1e-5}}}}"#;
    root.insert("decoder".into(), Value::from_json_str(decoder).unwrap());
    Value::Map(root)
}

fn hybrid_expected() -> Vec<Expected> {
    let mut out = expected_vision(1, false);
    out.push(entry(
        "embeddings.word_embeddings_weight",
        &[100, 64],
        &[("language_model.model.embed_tokens.weight", &[100, 64])],
        Transform::Copy,
    ));
    let plain = |i: usize, fl: &str, hf: &str, shape: &[usize]| {
        entry(
            &format!("decoder.{i}.{fl}"),
            shape,
            &[(&format!("language_model.model.layers.{i}.{hf}"), shape)],
            Transform::Copy,
        )
    };
    let l = |i: usize, n: &str| format!("language_model.model.layers.{i}.{n}");
    for i in 0..3 {
        out.extend([
            entry(
                &format!("decoder.{i}.mlp.layer_1.weight"),
                &[192, 64],
                &[
                    (&l(i, "mlp.gate_proj.weight"), &[96, 64]),
                    (&l(i, "mlp.up_proj.weight"), &[96, 64]),
                ],
                Transform::Concat,
            ),
            entry(
                &format!("decoder.{i}.mlp.layer_2.weight"),
                &[96, 64],
                &[(&l(i, "mlp.down_proj.weight"), &[64, 96])],
                Transform::Transpose,
            ),
            plain(i, "norm_1.weight", "input_layernorm.weight", &[64]),
            plain(i, "norm_2.weight", "post_attention_layernorm.weight", &[64]),
        ]);
    }
    // Attention (Mistral names under `self_attn`).
    out.extend([
        plain(0, "mixer.query.weight", "self_attn.q_proj.weight", &[64, 64]),
        entry(
            "decoder.0.mixer.key_value.weight",
            &[64, 64],
            &[
                (&l(0, "self_attn.k_proj.weight"), &[32, 64]),
                (&l(0, "self_attn.v_proj.weight"), &[32, 64]),
            ],
            Transform::Concat,
        ),
        plain(0, "mixer.dense.weight", "self_attn.o_proj.weight", &[64, 64]),
    ]);
    // Mamba: di 96, dx 32, N 8, R 4, K 4 (default), C = dx (no repeat before the convolution).
    out.extend([
        plain(1, "mixer.in_proj.weight", "mixer.in_proj.weight", &[256, 64]),
        plain(1, "mixer.dt_in_proj.weight", "mixer.dt_in_proj.weight", &[4, 64]),
        plain(1, "mixer.dt_proj.weight", "mixer.dt_proj.weight", &[96, 4]),
        plain(1, "mixer.convolution.weight", "mixer.conv1d.weight", &[32, 1, 4]),
        plain(1, "mixer.convolution.bias", "mixer.conv1d.bias", &[32]),
        plain(1, "mixer.A_log", "mixer.A_log", &[96, 8]),
        plain(1, "mixer.D", "mixer.D", &[96]),
        plain(1, "mixer.out_proj.weight", "mixer.out_proj.weight", &[64, 96]),
    ]);
    // Gated delta net: nk 2, nv 4, dk 8, dv 16 (Q 16, Vv 64), K 3.
    out.extend([
        plain(2, "mixer.in_proj_qkvz.weight", "mixer.in_proj_qkvz.weight", &[160, 64]),
        plain(2, "mixer.in_proj_ba.weight", "mixer.in_proj_ba.weight", &[8, 64]),
        plain(2, "mixer.convolution.weight", "mixer.convolution.weight", &[96, 1, 3]),
        plain(2, "mixer.out_proj.weight", "mixer.out_proj.weight", &[64, 64]),
        plain(2, "mixer.dt_bias", "mixer.dt_bias", &[4]),
        plain(2, "mixer.A_log", "mixer.A_log", &[4]),
        plain(2, "mixer.norm.weight", "mixer.norm.weight", &[16]),
    ]);
    // Tied embeddings: no `lm_head`.
    out.push(entry(
        "head.final_norm.weight",
        &[64],
        &[("language_model.model.norm.weight", &[64])],
        Transform::Copy,
    ));
    out
}

/// The text model's order is the Apriel tables' (a mixer's parameters, then the MLP's and the
/// norms'), so the hybrid plan is compared as a set; the vision side keeps its order.
#[test]
fn hybrid_plan_names_and_shapes() {
    let handler = find("llava_hybrid_ssm").unwrap();
    let config = load_base_model(handler.model, &hybrid_config()).unwrap();
    handler.export(&config, fastllm_core::HfLayout::V4).unwrap();
    let entries = plan(&handler.converter().base_model, &config).unwrap();
    assert_layout(&config, &entries);
    let got = actual(&entries);
    let mut want = hybrid_expected();
    let vision = expected_vision(1, false).len();
    assert_eq!(got[..vision], want[..vision], "the vision side comes first");
    let sorted = |entries: &mut Vec<Expected>| entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got = got;
    sorted(&mut got);
    sorted(&mut want);
    assert_eq!(got, want);
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("llava").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

fn round_trip(format: &str, tag: &str, sample: &Value) {
    let handler = find(format).unwrap();
    let config = load_base_model(handler.model, sample).unwrap();
    let (input, middle, back) = (
        scratch(&format!("{format}-{tag}-synthetic")),
        scratch(&format!("{format}-{tag}-mid")),
        scratch(&format!("{format}-{tag}-back")),
    );
    synthetic_to_fast_llm(handler, &config, &input, &middle).unwrap();
    fast_llm_to_hf(handler, &middle, &back, &Options::default()).unwrap();
    assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&input).unwrap());
}

#[rstest]
fn synthetic_checkpoints_round_trip(#[values("llava", "llava_hybrid_ssm")] format: &str) {
    let samples = &find(format).unwrap().converter().samples;
    assert!(!samples.is_empty());
    for (i, sample) in samples.iter().enumerate() {
        round_trip(format, &i.to_string(), sample);
    }
}

#[rstest]
#[case::untied_with_projector_biases(false, true)]
#[case::tied_without_projector_biases(true, false)]
fn test_configs_round_trip(#[case] tied: bool, #[case] projector_bias: bool) {
    round_trip(
        "llava",
        &format!("{tied}-{projector_bias}"),
        &config(tied, projector_bias),
    );
}

#[test]
fn hybrid_test_config_round_trips() {
    round_trip("llava_hybrid_ssm", "test-config", &hybrid_config());
}

/// transformers >= 4.52's spelling of a legacy Llava tensor name.
fn new_spelling(name: &str) -> String {
    for (legacy, new) in [
        ("language_model.model.", "model.language_model."),
        ("language_model.lm_head.", "lm_head."),
        ("vision_tower.", "model.vision_tower."),
        ("multi_modal_projector.", "model.multi_modal_projector."),
    ] {
        if let Some(rest) = name.strip_prefix(legacy) {
            return format!("{new}{rest}");
        }
    }
    panic!("{name}: not a Llava tensor name");
}

/// A copy of the HF checkpoint `from` with the tensors `rename` picks renamed to the new spelling.
fn respelled(from: &Path, to: &Path, rename: impl Fn(&str) -> bool) {
    use fastllm_checkpoint::writer::{TensorSpec, write_safetensors};
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("config.json"), to.join("config.json")).unwrap();
    let checkpoint = open_hf(from).unwrap();
    let names: Vec<&str> = checkpoint.files.names().collect();
    let specs: Vec<TensorSpec> = names
        .iter()
        .map(|n| {
            let t = checkpoint.files.get(n).unwrap();
            TensorSpec {
                name: if rename(n) { new_spelling(n) } else { n.to_string() },
                dtype: t.dtype.to_string(),
                shape: t.shape.to_vec(),
            }
        })
        .collect();
    write_safetensors(&to.join("model.safetensors"), &Default::default(), &specs, |i, out| {
        out.write_all(&checkpoint.files.get(names[i]).unwrap().data)
    })
    .unwrap();
}

#[rstest]
#[case::llava("llava", config(false, true))]
#[case::llava_hybrid_ssm("llava_hybrid_ssm", hybrid_config())]
fn transformers_4_52_names_import_like_the_legacy_ones(#[case] format: &str, #[case] sample: Value) {
    let handler = find(format).unwrap();
    let config = load_base_model(handler.model, &sample).unwrap();
    let tag = format!("{format}-respelled");
    let (legacy, new, mixed) = (
        scratch(&format!("{tag}-legacy")),
        scratch(&format!("{tag}-new")),
        scratch(&format!("{tag}-mixed")),
    );
    let (from_legacy, from_new, from_mixed) = (
        scratch(&format!("{tag}-legacy-fl")),
        scratch(&format!("{tag}-new-fl")),
        scratch(&format!("{tag}-mixed-fl")),
    );
    write_synthetic_hf(
        handler,
        &config,
        &legacy,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    respelled(&legacy, &new, |_| true);
    assert!(
        open_hf(&new)
            .unwrap()
            .files
            .names()
            .any(|n| n.starts_with("model.language_model."))
    );
    convert(
        &Conversion {
            input: &legacy,
            from: Side::Hf(handler),
            output: &from_legacy,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    convert(
        &Conversion {
            input: &new,
            from: Side::Hf(handler),
            output: &from_new,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let fast_llm = |dir: &Path| fastllm_checkpoint::open_fast_llm(dir).unwrap();
    assert_same_tensors(&fast_llm(&from_new), &fast_llm(&from_legacy));

    // Half one spelling, half the other: named, not guessed.
    respelled(&legacy, &mixed, |n| !n.starts_with("vision_tower."));
    let error = convert(
        &Conversion {
            input: &mixed,
            from: Side::Hf(handler),
            output: &from_mixed,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("`model.vision_tower.") && error.contains("missing"),
        "{error}"
    );
    assert!(!from_mixed.exists());
}
