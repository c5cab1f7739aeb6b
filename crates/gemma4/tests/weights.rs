//! Gemma 4 weight declarations: for a small dense and a small MoE config, the exact plan (Fast-LLM
//! name and shape ↔ HF names and shapes, transform) as formats.md §11.3 and fast-llm-state-dict.md
//! §2–§3 / §6.5 state it; for every sample (and imported HF config), the plan's parameters are
//! Fast-LLM's layout; synthetic HF → Fast-LLM → HF is bit-identical; and the stacked experts land
//! element by element where Fast-LLM expects them.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_checkpoint::{Checkpoint, open_fast_llm, open_hf};
use fastllm_core::config::{BaseModelConfig, Value, load_base_model};
use fastllm_core::weights::{PlanEntry, Transform, plan};
use fastllm_core::{Handler, HfLayout, find};
use fastllm_layout as layout;
use rstest::rstest;

use fastllm_gemma4 as _;

use Transform::{Concat, Copy, Reshape, Transpose, TransposeExperts};

fn handler() -> &'static Handler {
    find("gemma4").unwrap()
}

fn json(text: &str) -> Value {
    Value::from_json_str(text).unwrap()
}

fn typed(config: &Value) -> BaseModelConfig {
    load_base_model(handler().model, config).unwrap()
}

fn plan_of(config: &Value) -> Vec<PlanEntry> {
    plan(&handler().converter().base_model, &typed(config)).unwrap()
}

const RMS: &str = r#"{"type": "rms_norm", "epsilon": 1e-06}"#;
const FIXED: &str = r#"{"type": "fixed_rms_norm", "epsilon": 1e-06}"#;
const SLIDING_ROPE: &str = r#"{"type": "default", "theta": 10000.0}"#;
const FULL_ROPE: &str = r#"{"type": "proportional", "theta": 1000000.0, "partial_rotary_factor": 0.25}"#;

/// A block: attention (`mixer` fields spliced in), the MLP, and Gemma 4's norms (`extra`: more
/// block fields, e.g. `pre_mlp_normalization`).
fn block(mixer: &str, rotary: &str, mlp: &str, extra: &str) -> String {
    format!(
        r#"{{
            "mixer": {{"heads": 2, "add_linear_biases": false, "softmax_scale_power": 0.0, "rotary": {rotary},
                       "query_norm": {RMS}, "key_norm": {RMS}, "value_norm": {FIXED}, {mixer}}},
            "mlp": {mlp},
            "normalization": {RMS},
            "post_mixer_normalization": {RMS},
            "post_mlp_normalization": {RMS},
            "output_scale": {{"enabled": true, "lr_scale": 0.0}}{extra}
        }}"#
    )
}

/// H 16 (so the scales are exact: `16 ** 0.5 = 4`, `16 ** -0.5 = 0.25`), V 32, one sliding and
/// one full block.
fn model(sliding: &str, full: &str, tied: bool) -> Value {
    json(&format!(
        r#"{{
            "hidden_size": 16, "tied_embedding_weight": {tied},
            "embeddings": {{"vocab_size": 32, "embedding_scale": 4.0}},
            "decoder": {{"type": "pattern", "num_blocks": 2, "pattern": ["sliding_attention", "full_attention"],
                         "blocks": {{"sliding_attention": {sliding}, "full_attention": {full}}}}},
            "head": {{"normalization": {RMS}}}
        }}"#
    ))
}

const DENSE_MLP: &str = r#"{"intermediate_size": 12, "gated": true, "activation": "gelu", "add_linear_biases": false}"#;

/// Dense, untied. Sliding: 2 heads, 1 KV head of 4; full: 2 heads, 1 KV head of 8 (not shared);
/// I 12. The sliding block leaves `pre_mlp_normalization` unset (the block norm applies).
fn dense_config() -> Value {
    model(
        &block(
            r#""head_groups": 1, "head_size": 4, "window_size": 8"#,
            SLIDING_ROPE,
            DENSE_MLP,
            "",
        ),
        &block(
            r#""head_groups": 1, "head_size": 8"#,
            FULL_ROPE,
            DENSE_MLP,
            &format!(r#", "pre_mlp_normalization": {RMS}"#),
        ),
        false,
    )
}

/// Dense I 6, 3 experts of I 4 (top 2).
fn hybrid_mlp() -> String {
    let branch = |size: usize| {
        format!(
            r#""intermediate_size": {size}, "gated": true, "activation": "gelu", "add_linear_biases": false,
               "pre_norm": {RMS}, "post_norm": {RMS}"#
        )
    };
    format!(
        r#"{{"type": "hybrid_moe", "dense": {{{}}},
             "routed": {{"type": "moe", {}, "experts": 3, "experts_per_token": 2,
                        "router_normalization": {FIXED}, "router_scale": {{"enabled": true}},
                        "router_per_expert_scale": {{"enabled": true}}, "router_input_scale": 0.25}}}}"#,
        branch(6),
        branch(4)
    )
}

/// MoE, tied. Sliding: 2 heads, 2 KV heads of 4; full: 2 heads, 1 shared K/V head of 8.
fn moe_config() -> Value {
    let none = r#", "pre_mlp_normalization": {"type": "none"}"#;
    model(
        &block(
            r#""head_groups": 2, "head_size": 4, "window_size": 8"#,
            SLIDING_ROPE,
            &hybrid_mlp(),
            none,
        ),
        &block(
            r#""head_groups": 1, "head_size": 8, "shared_key_value": true"#,
            FULL_ROPE,
            &hybrid_mlp(),
            none,
        ),
        true,
    )
}

/// One expected entry: Fast-LLM name and shape, HF names and shapes, transform.
type Expected = (String, Vec<usize>, Vec<String>, Vec<Vec<usize>>, Transform);

fn entry(fast_llm: &str, shape: &[usize], hf: &[(&str, &[usize])], transform: Transform) -> Expected {
    (
        fast_llm.to_string(),
        shape.to_vec(),
        hf.iter().map(|(name, _)| name.to_string()).collect(),
        hf.iter().map(|(_, shape)| shape.to_vec()).collect(),
        transform,
    )
}

fn assert_plan(entries: &[PlanEntry], expected: Vec<Expected>) {
    let mut got: Vec<Expected> = entries
        .iter()
        .map(|e| {
            (
                e.fast_llm.clone(),
                e.fast_llm_shape.clone(),
                e.hf.clone(),
                e.hf_shapes.clone(),
                e.transform,
            )
        })
        .collect();
    let mut want = expected;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let names = |list: &[Expected]| list.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// The attention of block `i` (`q`: query rows, `kv`: key/value rows, `hs`: head size; `shared`:
/// only `k_proj`).
fn attention(i: usize, q: usize, kv: usize, hs: usize, shared: bool) -> Vec<Expected> {
    let (fl, hf) = (format!("decoder.{i}.mixer"), format!("model.layers.{i}.self_attn"));
    let key_value = if shared {
        entry(
            &format!("{fl}.key_value.weight"),
            &[kv, 16],
            &[(&format!("{hf}.k_proj.weight"), &[kv, 16])],
            Copy,
        )
    } else {
        entry(
            &format!("{fl}.key_value.weight"),
            &[kv, 16],
            &[
                (&format!("{hf}.k_proj.weight"), &[kv / 2, 16]),
                (&format!("{hf}.v_proj.weight"), &[kv / 2, 16]),
            ],
            Concat,
        )
    };
    vec![
        entry(
            &format!("{fl}.query.weight"),
            &[q, 16],
            &[(&format!("{hf}.q_proj.weight"), &[q, 16])],
            Copy,
        ),
        key_value,
        entry(
            &format!("{fl}.dense.weight"),
            &[16, q],
            &[(&format!("{hf}.o_proj.weight"), &[16, q])],
            Copy,
        ),
        entry(
            &format!("{fl}.query_norm.weight"),
            &[hs],
            &[(&format!("{hf}.q_norm.weight"), &[hs])],
            Copy,
        ),
        entry(
            &format!("{fl}.key_norm.weight"),
            &[hs],
            &[(&format!("{hf}.k_norm.weight"), &[hs])],
            Copy,
        ),
    ]
}

/// A `[16]` norm weight of block `i`.
fn block_norm(i: usize, fast_llm: &str, hf: &str) -> Expected {
    entry(
        &format!("decoder.{i}.{fast_llm}.weight"),
        &[16],
        &[(&format!("model.layers.{i}.{hf}.weight"), &[16])],
        Copy,
    )
}

/// Block `i`'s norms and scale shared by dense and MoE blocks.
fn block_rest(i: usize) -> Vec<Expected> {
    vec![
        block_norm(i, "norm_1", "input_layernorm"),
        block_norm(i, "post_mixer_norm", "post_attention_layernorm"),
        block_norm(i, "post_mlp_norm", "post_feedforward_layernorm"),
        entry(
            &format!("decoder.{i}.output_scale"),
            &[1],
            &[(&format!("model.layers.{i}.layer_scalar"), &[1])],
            Copy,
        ),
    ]
}

/// A dense gated MLP of size `size` at Fast-LLM `fl` ↔ HF `hf`.
fn dense_mlp(fl: &str, hf: &str, size: usize) -> Vec<Expected> {
    vec![
        entry(
            &format!("{fl}.layer_1.weight"),
            &[2 * size, 16],
            &[
                (&format!("{hf}.gate_proj.weight"), &[size, 16]),
                (&format!("{hf}.up_proj.weight"), &[size, 16]),
            ],
            Concat,
        ),
        entry(
            &format!("{fl}.layer_2.weight"),
            &[size, 16],
            &[(&format!("{hf}.down_proj.weight"), &[16, size])],
            Transpose,
        ),
    ]
}

fn root(tied: bool) -> Vec<Expected> {
    let mut out = vec![
        entry(
            "embeddings.word_embeddings_weight",
            &[32, 16],
            &[("model.embed_tokens.weight", &[32, 16])],
            Copy,
        ),
        entry("head.final_norm.weight", &[16], &[("model.norm.weight", &[16])], Copy),
    ];
    if !tied {
        out.push(entry(
            "head.output_weights",
            &[32, 16],
            &[("lm_head.weight", &[32, 16])],
            Copy,
        ));
    }
    out
}

#[test]
fn dense_plan_is_the_state_dict() {
    let mut expected = root(false);
    // Sliding: q 2·4, K/V 2·1·4. Full: q 2·8, K/V 2·1·8.
    expected.extend(attention(0, 8, 8, 4, false));
    expected.extend(attention(1, 16, 16, 8, false));
    for i in 0..2 {
        expected.extend(block_rest(i));
        expected.push(block_norm(i, "norm_2", "pre_feedforward_layernorm"));
        expected.extend(dense_mlp(
            &format!("decoder.{i}.mlp"),
            &format!("model.layers.{i}.mlp"),
            12,
        ));
    }
    assert_plan(&plan_of(&dense_config()), expected);
}

#[test]
fn moe_plan_is_the_state_dict() {
    let mut expected = root(true);
    // Sliding: q 2·4, K/V 2·2·4. Full: q 2·8, shared K 1·8.
    expected.extend(attention(0, 8, 16, 4, false));
    expected.extend(attention(1, 16, 8, 8, true));
    for i in 0..2 {
        let (fl, hf) = (format!("decoder.{i}.mlp"), format!("model.layers.{i}"));
        expected.extend(block_rest(i));
        // No norm_2: the pre-MLP norm is `none`; the branches carry their own.
        expected.extend(dense_mlp(&format!("{fl}.dense"), &format!("{hf}.mlp"), 6));
        expected.extend([
            block_norm(i, "mlp.dense.pre_norm", "pre_feedforward_layernorm"),
            block_norm(i, "mlp.dense.post_norm", "post_feedforward_layernorm_1"),
            block_norm(i, "mlp.routed.pre_norm", "pre_feedforward_layernorm_2"),
            block_norm(i, "mlp.routed.post_norm", "post_feedforward_layernorm_2"),
            entry(
                &format!("{fl}.routed.router.weight"),
                &[3, 16],
                &[(&format!("{hf}.router.proj.weight"), &[3, 16])],
                Copy,
            ),
            entry(
                &format!("{fl}.routed.router_scale"),
                &[16],
                &[(&format!("{hf}.router.scale"), &[16])],
                Copy,
            ),
            entry(
                &format!("{fl}.routed.router_per_expert_scale"),
                &[3],
                &[(&format!("{hf}.router.per_expert_scale"), &[3])],
                Copy,
            ),
            // [E·2I, H] ↔ [E, 2I, H]; [E·I, H] ↔ [E, H, I].
            entry(
                &format!("{fl}.routed.layer_1.weight"),
                &[24, 16],
                &[(&format!("{hf}.experts.gate_up_proj"), &[3, 8, 16])],
                Reshape,
            ),
            entry(
                &format!("{fl}.routed.layer_2.weight"),
                &[12, 16],
                &[(&format!("{hf}.experts.down_proj"), &[3, 16, 4])],
                TransposeExperts,
            ),
        ]);
    }
    assert_plan(&plan_of(&moe_config()), expected);
}

/// The small configs are ones the config side accepts (they export).
#[rstest]
fn small_configs_export(#[values(0, 1)] which: usize) {
    let config = load_base_model(handler().model, &small_configs()[which]).unwrap();
    for layout in [HfLayout::V4, HfLayout::V5] {
        handler().export(&config, layout).unwrap();
    }
}

fn small_configs() -> Vec<Value> {
    vec![dense_config(), moe_config()]
}

/// Every sample config and the two small ones.
fn configs() -> Vec<Value> {
    let mut configs = handler().converter().samples.clone();
    configs.extend(small_configs());
    configs
}

fn assert_layout(config: &BaseModelConfig, label: &str) {
    let planned: Vec<(String, Vec<usize>)> = plan(&handler().converter().base_model, config)
        .unwrap_or_else(|e| panic!("{label}: {e:?}"))
        .into_iter()
        .map(|e| (e.fast_llm, e.fast_llm_shape))
        .collect();
    let gaps = layout::coverage_gaps(&layout::parameters(config), &planned);
    assert!(gaps.is_empty(), "{label}: {gaps:#?}");
    let mut sorted = planned.clone();
    sorted.sort();
    let mut expected = layout::parameters(config);
    expected.sort();
    assert_eq!(sorted, expected, "{label}");
}

#[test]
fn plans_are_the_fast_llm_layout() {
    for (i, config) in configs().iter().enumerate() {
        assert_layout(
            &load_base_model(handler().model, config).unwrap(),
            &format!("config {i}"),
        );
    }
}

/// HF configs as released (from the conformance cases), imported: their plans are the layout.
#[rstest]
fn imported_plans_are_the_fast_llm_layout(
    #[values("gemma4__dense_small_like", "gemma4__moe_26b_a4b_like")] case: &str,
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/conformance/cases/{case}.json"));
    let case_json = json(&std::fs::read_to_string(path).unwrap());
    let hf = case_json.as_map().unwrap()["input"].as_map().unwrap().clone();
    let config = handler().import(&hf).unwrap();
    assert_layout(&config, case);
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gemma4-weights").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

/// Synthetic HF → Fast-LLM → HF for config `i` of [`configs`] (scratch directories named after
/// `test`); returns the HF input and the Fast-LLM middle.
fn round_trip(test: &str, i: usize, dtype: &str) -> (Checkpoint, Checkpoint) {
    let config = load_base_model(handler().model, &configs()[i]).unwrap();
    let (input, middle, back) = (
        scratch(&format!("{test}-{i}-{dtype}-synthetic")),
        scratch(&format!("{test}-{i}-{dtype}-mid")),
        scratch(&format!("{test}-{i}-{dtype}-back")),
    );
    write_synthetic_hf(
        handler(),
        &config,
        &input,
        &SyntheticStorage {
            dtype,
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    convert(
        &Conversion {
            input: &input,
            from: Side::Hf(handler()),
            output: &middle,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let options = Options {
        max_shard_bytes: 4_000,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &middle,
            from: Side::FastLlm,
            output: &back,
            to: Side::Hf(handler()),
        },
        &options,
    )
    .unwrap();
    let (input, back) = (open_hf(&input).unwrap(), open_hf(&back).unwrap());
    assert_same_tensors(&back, &input);
    (input, open_fast_llm(&middle).unwrap())
}

#[test]
fn synthetic_checkpoints_round_trip() {
    // Every sample config and both small ones: synthetic HF → Fast-LLM → HF is the identity.
    for i in 0..configs().len() {
        round_trip("round-trip", i, "BF16");
    }
}

/// Element `index` (of `size` bytes) of a tensor's data.
fn element(data: &[u8], index: usize, size: usize) -> &[u8] {
    &data[index * size..(index + 1) * size]
}

#[rstest]
fn experts_land_where_fast_llm_expects_them(#[values("BF16", "F32")] dtype: &str) {
    // The small MoE config: E 3, I 4, H 16.
    let (e_count, size, h_count) = (3, 4, 16);
    let moe = configs().len() - 1;
    let (hf, fast_llm) = round_trip("experts", moe, dtype);
    let bytes = if dtype == "F32" { 4 } else { 2 };
    for block in 0..2 {
        let get = |checkpoint: &Checkpoint, name: String| checkpoint.files.get(&name).unwrap().data.to_vec();
        // down_proj [E, H, I] → layer_2 [E·I, H]: row e·I + i, column h is down_proj[e, h, i].
        let down = get(&hf, format!("model.layers.{block}.experts.down_proj"));
        let layer_2 = get(&fast_llm, format!("decoder.{block}.mlp.routed.layer_2.weight/weights"));
        for e in 0..e_count {
            for i in 0..size {
                for h in 0..h_count {
                    assert_eq!(
                        element(&layer_2, (e * size + i) * h_count + h, bytes),
                        element(&down, (e * h_count + h) * size + i, bytes),
                        "block {block} expert {e} ({i}, {h})"
                    );
                }
            }
        }
        // gate_up_proj [E, 2I, H] → layer_1 [E·2I, H]: the same bytes, expert-major [gate; up].
        let gate_up = get(&hf, format!("model.layers.{block}.experts.gate_up_proj"));
        let layer_1 = get(&fast_llm, format!("decoder.{block}.mlp.routed.layer_1.weight/weights"));
        assert!(gate_up == layer_1, "block {block}: gate_up_proj bytes");
    }
    // Shared K/V (the full block): key_value is k_proj's bytes alone.
    let k = hf.files.get("model.layers.1.self_attn.k_proj.weight").unwrap().data;
    let key_value = fast_llm
        .files
        .get("decoder.1.mixer.key_value.weight/weights")
        .unwrap()
        .data;
    assert!(k == key_value);
    assert!(hf.files.get("model.layers.1.self_attn.v_proj.weight").is_err());
}
