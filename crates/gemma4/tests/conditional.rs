//! The gemma4_conditional handler (published Gemma 4 checkpoints, `Gemma4ForConditionalGeneration`):
//! registered beside gemma4 and coverage-clean; the released configs (`tests/data`) import only
//! with their towers dropped, naming every key; the text model is exactly what the gemma4 format
//! reads from the same text config; the export is a text-only wrapper that imports back; weights
//! are gemma4's under `model.language_model`; a tiny synthetic checkpoint with a vision tower
//! converts only with `text_only`, listing every dropped key and tensor.

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, ConversionError, Options, Side, convert};
use fastllm_checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_checkpoint::writer::{TensorSpec, write_safetensors};
use fastllm_checkpoint::{Checkpoint, open_fast_llm, open_hf};
use fastllm_core::config::{BaseModelConfig, Form, Map, Value, load_base_model};
use fastllm_core::coverage::check_handler;
use fastllm_core::hint::{Hint, spell};
use fastllm_core::weights::plan;
use fastllm_core::{Carried, ConvertError, Handler, HfLayout, Problem, detect, find};
use rstest::rstest;

use fastllm_gemma4 as _;

fn conditional() -> &'static Handler {
    find("gemma4_conditional").unwrap()
}

fn text() -> &'static Handler {
    find("gemma4").unwrap()
}

fn map(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// A released `config.json` from `tests/data`.
fn released(name: &str) -> Map {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.config.json"));
    map(&std::fs::read_to_string(path).unwrap())
}

fn hf_keys(problems: &[Problem]) -> Vec<String> {
    problems.iter().filter_map(|p| p.hf.clone()).collect()
}

fn problems(error: ConvertError) -> Vec<Problem> {
    error.problems().to_vec()
}

#[test]
fn registered_beside_gemma4_and_chosen_by_model_type() {
    let handler = conditional();
    assert_eq!(handler.model_types, ["gemma4"]);
    assert_eq!(handler.architecture, "Gemma4ForConditionalGeneration");
    assert_eq!(handler.family, fastllm_gemma4::FAMILY);
    assert_eq!(detect(&released("gemma-4-31B-it")).unwrap().name, "gemma4_conditional");
    let parts: Vec<&str> = handler.unconverted().iter().map(|p| p.part).collect();
    assert_eq!(parts, ["vision tower", "audio tower"]);
}

#[test]
fn coverage_is_clean() {
    let report = check_handler(conditional());
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.samples >= 2);
}

/// Root keys of the released configs that hold a tower (the rest are `null` or class defaults).
const RELEASED_TOWER_KEYS: &[&str] = &["vision_config", "vision_soft_tokens_per_image", "eoa_token_id"];

#[rstest]
fn released_configs_convert_their_text_model_only_with_the_towers_dropped(
    #[values("gemma-4-31B-it", "gemma-4-26B-A4B-it")] name: &str,
) {
    let hf = released(name);
    let rejected = problems(conditional().import(&hf).unwrap_err());
    assert_eq!(hf_keys(&rejected), RELEASED_TOWER_KEYS, "{rejected:#?}");
    for problem in &rejected {
        assert!(problem.message.contains(&spell(Hint::TextOnly)), "{problem:?}");
        assert!(
            problem
                .message
                .contains("tower, which gemma4_conditional does not convert"),
            "{problem:?}"
        );
    }
    let (text_only, dropped) = conditional().without_unconverted(&hf);
    assert_eq!(dropped, RELEASED_TOWER_KEYS);
    let config = conditional().import(&text_only).unwrap();
    // The text model is what the gemma4 format reads from the same text config.
    let mut text_config = hf["text_config"].as_map().unwrap().clone();
    text_config.insert(
        "architectures".into(),
        Value::List(vec![Value::Str("Gemma4ForCausalLM".into())]),
    );
    assert_eq!(config, text().import(&text_config).unwrap());
}

#[rstest]
#[case::dense("gemma-4-31B-it", 60, 5376, "mlp")]
#[case::moe("gemma-4-26B-A4B-it", 30, 2816, "hybrid_moe")]
fn released_text_models_are_what_the_model_cards_say(
    #[case] name: &str,
    #[case] blocks: i128,
    #[case] hidden: i128,
    #[case] mlp: &str,
) {
    let (text_only, _) = conditional().without_unconverted(&released(name));
    let fl = conditional().import(&text_only).unwrap().to_form(Form::Full);
    let get = |path: &str| fastllm_core::dict::get(&fl, path).cloned().unwrap();
    assert_eq!(get("decoder.num_blocks"), Value::Int(blocks));
    assert_eq!(get("hidden_size"), Value::Int(hidden));
    assert_eq!(get("tied_embedding_weight"), Value::Bool(true));
    assert_eq!(get("decoder.blocks.full_attention.mlp.type"), Value::Str(mlp.into()));
    // Full attention: 512-wide heads sharing K and V.
    assert_eq!(get("decoder.blocks.full_attention.mixer.head_size"), Value::Int(512));
    assert_eq!(
        get("decoder.blocks.full_attention.mixer.shared_key_value"),
        Value::Bool(true)
    );
    assert_eq!(
        get("decoder.blocks.sliding_attention.mixer.window_size"),
        Value::Int(1024)
    );
}

#[rstest]
fn the_export_is_a_text_only_wrapper_that_imports_back(
    #[values("gemma-4-31B-it", "gemma-4-26B-A4B-it")] name: &str,
    #[values(HfLayout::V4, HfLayout::V5)] layout: HfLayout,
) {
    let (text_only, _) = conditional().without_unconverted(&released(name));
    let config = conditional().import(&text_only).unwrap();
    let hf = conditional().export(&config, layout).unwrap();
    let expected_root = map(
        r#"{"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
            "vision_config": null, "audio_config": null, "tie_word_embeddings": true,
            "image_token_id": 258880, "video_token_id": 258884, "boi_token_id": 255999, "eoi_token_id": 258882,
            "audio_token_id": 258881, "boa_token_id": 256000, "eoa_token_index": 258883}"#,
    );
    for (key, value) in &expected_root {
        assert_eq!(&hf[key], value, "{key}");
    }
    assert_eq!(hf.len(), expected_root.len() + 1, "and text_config: {hf:#?}");
    // text_config is the gemma4 export of the same model, under the text class's model_type.
    let mut text_config = text().export(&config, layout).unwrap();
    text_config.insert("model_type".into(), Value::Str("gemma4_text".into()));
    text_config.remove("architectures");
    assert_eq!(hf["text_config"], Value::Map(text_config));
    assert_eq!(conditional().import(&hf).unwrap(), config, "no --text-only needed");
}

/// transformers 5.23 loads the text-only export of the 31B release (no towers built for `null`
/// sub-configs) and saves it in its own schema (`per_layer_config`); that imports back to the
/// same model with no opt-in. Reference written by `tests/data/resave.py`.
#[test]
fn transformers_loads_the_text_only_export() {
    let resaved = released("gemma-4-31B-it.text-only.resaved");
    assert_eq!(resaved["vision_config"], Value::Null);
    assert_eq!(resaved["audio_config"], Value::Null);
    assert!(
        resaved["text_config"]
            .as_map()
            .unwrap()
            .contains_key("per_layer_config")
    );
    let (text_only, _) = conditional().without_unconverted(&released("gemma-4-31B-it"));
    assert_eq!(
        conditional().import(&resaved).unwrap(),
        conditional().import(&text_only).unwrap()
    );
    // Our export writes every root key transformers does, but generic metadata.
    let config = conditional().import(&text_only).unwrap();
    let ours = conditional().export(&config, HfLayout::V5).unwrap();
    let theirs: Vec<&String> = resaved
        .keys()
        .filter(|k| !fastllm_core::GENERIC_METADATA.contains(&k.as_str()))
        .collect();
    assert_eq!(
        ours.keys()
            .filter(|k| k.as_str() != "architectures" && k.as_str() != "model_type")
            .collect::<Vec<_>>(),
        theirs
    );
    // Completed as a conversion writes it, the export is what transformers saves of it, but the
    // newer schema 5.23 folds the full-attention sizes into (see tests/complete_config.rs).
    let (mut complete, _) = conditional()
        .export_carrying(&config, &Carried::none("fast_llm"), HfLayout::V5)
        .unwrap();
    let mut resaved = resaved.clone();
    resaved.remove("transformers_version");
    for hf in [&mut complete, &mut resaved] {
        let Some(Value::Map(text_config)) = hf.get_mut("text_config") else {
            panic!("no text_config")
        };
        for key in ["per_layer_config", "global_head_dim", "num_global_key_value_heads"] {
            text_config.remove(key);
        }
    }
    assert_eq!(complete, resaved);
}

/// The export of the first sample config (a small dense model), with `changes` merged in: at the
/// root, or into `text_config` for keys `text_config.<key>`.
fn small(changes: &str) -> Map {
    let config = load_base_model(conditional().model, &conditional().converter().samples[0]).unwrap();
    let mut hf = conditional().export(&config, HfLayout::V4).unwrap();
    for (key, value) in map(changes) {
        match key.strip_prefix("text_config.") {
            Some(inner) => {
                let Some(Value::Map(text_config)) = hf.get_mut("text_config") else {
                    panic!("no text_config")
                };
                text_config.insert(inner.into(), value);
            }
            None => {
                hf.insert(key, value);
            }
        }
    }
    hf
}

#[rstest]
#[case::tied_differently(r#"{"tie_word_embeddings": false}"#, "tie_word_embeddings")]
#[case::text_model_type(r#"{"text_config.model_type": "llama"}"#, "text_config.model_type")]
#[case::pre_release_expert_size(
    r#"{"text_config.expert_intermediate_size": 64}"#,
    "text_config.expert_intermediate_size"
)]
#[case::per_layer_embeddings(
    r#"{"text_config.hidden_size_per_layer_input": 256}"#,
    "text_config.hidden_size_per_layer_input"
)]
#[case::kv_shared_layers(r#"{"text_config.num_kv_shared_layers": 2}"#, "text_config.num_kv_shared_layers")]
#[case::unknown_text_key(r#"{"text_config.altup_num_inputs": 4}"#, "text_config.altup_num_inputs")]
#[case::unknown_root_key(r#"{"mm_tokens_per_image": 256}"#, "mm_tokens_per_image")]
#[case::moved_image_token(r#"{"image_token_id": 5}"#, "image_token_id")]
#[case::null_audio_token(r#"{"audio_token_id": null}"#, "audio_token_id")]
#[case::audio_tower(r#"{"audio_config": {"model_type": "gemma4_audio"}}"#, "audio_config")]
#[case::vision_config_not_a_dict(r#"{"vision_config": 3}"#, "vision_config")]
fn imports_reject_by_key(#[case] changes: &str, #[case] key: &str) {
    let rejected = problems(conditional().import(&small(changes)).unwrap_err());
    assert!(hf_keys(&rejected).iter().any(|k| k == key), "{rejected:#?}");
}

#[test]
fn a_text_only_wrapper_needs_no_opt_in() {
    let hf = small("{}");
    assert_eq!(conditional().without_unconverted(&hf).1, Vec::<String>::new());
    conditional().import(&hf).unwrap();
    // Token ids spelled out with their class values, and explicit null towers, hold nothing.
    let (_, dropped) = conditional().without_unconverted(&small(r#"{"image_token_id": 258880, "audio_config": null}"#));
    assert!(dropped.is_empty(), "{dropped:?}");
}

#[test]
fn text_model_export_problems_name_the_text_config_key() {
    // Sliding and full blocks with different head counts: one HF key, two values.
    let mut fl = sample(0).to_form(Form::Full);
    let heads = ["decoder", "blocks", "full_attention", "mixer"]
        .iter()
        .try_fold(&mut fl, |map, key| match map.get_mut(*key) {
            Some(Value::Map(inner)) => Some(inner),
            _ => None,
        })
        .unwrap();
    heads.insert("heads".into(), Value::Int(8));
    let config = load_base_model(conditional().model, &Value::Map(fl)).unwrap();
    let rejected = problems(conditional().export(&config, HfLayout::V4).unwrap_err());
    assert_eq!(hf_keys(&rejected), ["text_config.num_attention_heads"], "{rejected:#?}");
}

// --- Weights ---

/// The sample configs (dense tied, MoE untied).
fn sample(i: usize) -> BaseModelConfig {
    load_base_model(conditional().model, &conditional().converter().samples[i]).unwrap()
}

#[rstest]
fn weights_are_gemma4_s_under_the_language_model(#[values(0, 1)] i: usize) {
    let config = sample(i);
    let ours = plan(&conditional().converter().base_model, &config).unwrap();
    let theirs = plan(&text().converter().base_model, &config).unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        let moved: Vec<String> =
            b.hf.iter()
                .map(|n| match n.strip_prefix("model.") {
                    Some(rest) => format!("model.language_model.{rest}"),
                    None => n.clone(),
                })
                .collect();
        assert_eq!((&a.fast_llm, &a.hf, &a.hf_shapes), (&b.fast_llm, &moved, &b.hf_shapes));
    }
    let untied = i == 1;
    assert_eq!(ours.iter().any(|e| e.hf == ["lm_head.weight"]), untied);
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gemma4-conditional")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// A tiny vision tower's `vision_config` (hidden 8, one layer of 2 heads of 4, patch 2).
const VISION_CONFIG: &str = r#"{"model_type": "gemma4_vision", "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 4,
    "patch_size": 2, "position_embedding_size": 4, "standardize": true, "use_clipped_linears": false}"#;

/// The tensors of [`VISION_CONFIG`]'s tower, as `modeling_gemma4.py` names them (the 31B /
/// 26B-A4B kind: no clipped linears, standardised output), for a text model of width `text`.
fn vision_tower(text: usize) -> Vec<TensorSpec> {
    let (hidden, heads, head_dim, intermediate) = (8, 2, 4, 16);
    let layer = "model.vision_tower.encoder.layers.0";
    let mut tensors = vec![
        (
            "model.vision_tower.patch_embedder.input_proj.weight".to_string(),
            vec![hidden, 3 * 2 * 2],
        ),
        (
            "model.vision_tower.patch_embedder.position_embedding_table".into(),
            vec![2, 4, hidden],
        ),
    ];
    for (name, shape) in [
        ("self_attn.q_proj.linear.weight", vec![heads * head_dim, hidden]),
        ("self_attn.k_proj.linear.weight", vec![heads * head_dim, hidden]),
        ("self_attn.v_proj.linear.weight", vec![heads * head_dim, hidden]),
        ("self_attn.o_proj.linear.weight", vec![hidden, heads * head_dim]),
        ("self_attn.q_norm.weight", vec![head_dim]),
        ("self_attn.k_norm.weight", vec![head_dim]),
        ("mlp.gate_proj.linear.weight", vec![intermediate, hidden]),
        ("mlp.up_proj.linear.weight", vec![intermediate, hidden]),
        ("mlp.down_proj.linear.weight", vec![hidden, intermediate]),
        ("input_layernorm.weight", vec![hidden]),
        ("post_attention_layernorm.weight", vec![hidden]),
        ("pre_feedforward_layernorm.weight", vec![hidden]),
        ("post_feedforward_layernorm.weight", vec![hidden]),
    ] {
        tensors.push((format!("{layer}.{name}"), shape));
    }
    tensors.push(("model.vision_tower.std_bias".into(), vec![hidden]));
    tensors.push(("model.vision_tower.std_scale".into(), vec![hidden]));
    tensors.push((
        "model.embed_vision.embedding_projection.weight".into(),
        vec![text, hidden],
    ));
    tensors
        .into_iter()
        .map(|(name, shape)| TensorSpec {
            name,
            dtype: "BF16".into(),
            shape,
        })
        .collect()
}

/// Adds [`vision_tower`]'s tensors (bytes `0x5a`) to the checkpoint at `dir`, and `root` (JSON
/// object) to its config.json.
fn add_tower(dir: &Path, root: &str) {
    let checkpoint = open_hf(dir).unwrap();
    let text = match fastllm_core::dict::get(&checkpoint.config, "text_config.hidden_size") {
        Some(Value::Int(h)) => *h as usize,
        _ => panic!("no text hidden size"),
    };
    let mut tensors: Vec<(TensorSpec, Vec<u8>)> = checkpoint
        .files
        .names()
        .map(|n| {
            let t = checkpoint.files.get(n).unwrap();
            let spec = TensorSpec {
                name: n.to_string(),
                dtype: t.dtype.to_string(),
                shape: t.shape.to_vec(),
            };
            (spec, t.data.to_vec())
        })
        .collect();
    let mut config = checkpoint.config.clone();
    drop(checkpoint);
    for spec in vision_tower(text) {
        let bytes = vec![0x5a; spec.byte_len().unwrap()];
        tensors.push((spec, bytes));
    }
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let path = dir.join("model.safetensors");
    std::fs::remove_file(&path).unwrap();
    write_safetensors(&path, &Default::default(), &specs, |i, out| {
        out.write_all(&tensors[i].1)
    })
    .unwrap();
    config.extend(map(root));
    std::fs::write(dir.join("config.json"), Value::Map(config).to_json_pretty()).unwrap();
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint) {
    assert_eq!(got.files.difference(&want.files), None);
}

/// A synthetic text-only checkpoint of sample `i` (`plain`) and a copy with a vision tower
/// (`tower`): `vision_config` set, `vision_soft_tokens_per_image`, and the tower's tensors.
fn checkpoints(test: &str, i: usize) -> (PathBuf, PathBuf) {
    let (plain, tower) = (
        scratch(&format!("{test}-{i}-plain")),
        scratch(&format!("{test}-{i}-tower")),
    );
    write_synthetic_hf(
        conditional(),
        &sample(i),
        &plain,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    write_synthetic_hf(
        conditional(),
        &sample(i),
        &tower,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    add_tower(
        &tower,
        &format!(r#"{{"vision_config": {VISION_CONFIG}, "vision_soft_tokens_per_image": 4}}"#),
    );
    (plain, tower)
}

fn to_fast_llm(
    input: &Path,
    output: &Path,
    text_only: bool,
) -> Result<fastllm_checkpoint::convert::Summary, ConversionError> {
    let options = Options {
        text_only,
        ..Options::default()
    };
    convert(
        &Conversion {
            input,
            from: Side::Hf(conditional()),
            output,
            to: Side::FastLlm,
        },
        &options,
    )
}

/// Every dotted key of `hf` whose value is not a dict, with its value.
fn leaves(hf: &Map, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (key, value) in hf {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Map(inner) if !inner.is_empty() => leaves(inner, &path, out),
            _ => out.push((path, value.clone())),
        }
    }
}

#[rstest]
fn a_checkpoint_with_a_vision_tower_converts_only_with_text_only(
    #[values(0, 1)] i: usize,
    #[values(HfLayout::V4, HfLayout::V5)] layout: HfLayout,
) {
    let (plain, tower) = checkpoints(&format!("tower-{layout:?}"), i);
    let middle = scratch(&format!("tower-{layout:?}-{i}-fast-llm"));
    // Refused by default, naming the keys; nothing is written.
    let error = to_fast_llm(&tower, &middle, false).unwrap_err();
    let ConversionError::ConfigFile { source: error, .. } = error else {
        panic!("{error}")
    };
    assert_eq!(
        hf_keys(error.problems()),
        ["vision_config", "vision_soft_tokens_per_image"]
    );
    assert!(!middle.exists());
    // With the opt-in: every dropped key and tensor listed, the text model converted.
    let summary = to_fast_llm(&tower, &middle, true).unwrap();
    let dropped_keys: Vec<&str> = summary.dropped_keys.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(dropped_keys, ["vision_config", "vision_soft_tokens_per_image"]);
    let mut dropped = summary.dropped_tensors.clone();
    dropped.sort();
    let text_hidden = 64;
    let mut expected: Vec<String> = vision_tower(text_hidden).into_iter().map(|t| t.name).collect();
    expected.sort();
    assert_eq!(dropped, expected);
    // The same Fast-LLM checkpoint as from the text-only input, which needs no opt-in.
    let reference = scratch(&format!("tower-{layout:?}-{i}-reference"));
    let plain_summary = to_fast_llm(&plain, &reference, false).unwrap();
    assert!(plain_summary.dropped_keys.is_empty() && plain_summary.dropped_tensors.is_empty());
    assert_same_tensors(&open_fast_llm(&middle).unwrap(), &open_fast_llm(&reference).unwrap());
    // Back to the wrapper: the text-only checkpoint, bit for bit, and its config.json as
    // transformers saves it (`plain`'s is the bare export, not completed).
    let back = scratch(&format!("tower-{layout:?}-{i}-back"));
    let options = Options {
        layout,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &middle,
            from: Side::FastLlm,
            output: &back,
            to: Side::Hf(conditional()),
        },
        &options,
    )
    .unwrap();
    assert_same_tensors(&open_hf(&back).unwrap(), &open_hf(&plain).unwrap());
    let (back, plain) = (open_hf(&back).unwrap().config, open_hf(&plain).unwrap().config);
    let mut completed = plain.clone();
    fastllm_core::complete::complete(&conditional().converter().hf_class, &mut completed, layout);
    assert_eq!(back, completed);
    // Every key of the input is kept with its value, but where transformers 4.57's save would
    // leave it out: a `PretrainedConfig` key at the class default (`tie_word_embeddings` true,
    // what an absent key means, in Gemma4Config and Gemma4TextConfig alike). transformers 5.24
    // writes both: `tie_word_embeddings` is a key of both classes there. And where 5.24 folds
    // the full-attention keys into `per_layer_config`, which it writes instead.
    let (mut input, mut output) = (Vec::new(), Vec::new());
    leaves(&plain, "", &mut input);
    leaves(&back, "", &mut output);
    let left_out: Vec<&str> = input
        .iter()
        .filter(|entry| !output.contains(entry))
        .map(|(key, _)| key.as_str())
        .collect();
    let tied = i == 0;
    let folded = ["text_config.global_head_dim", "text_config.num_global_key_value_heads"];
    let expected: &[&str] = match layout {
        HfLayout::V4 if tied => &[
            folded[0],
            folded[1],
            "text_config.tie_word_embeddings",
            "tie_word_embeddings",
        ],
        _ => &folded,
    };
    assert_eq!(left_out, expected);
    assert!(fastllm_core::dict::get(&back, "text_config.per_layer_config").is_some());
    let tied_in = |hf: &Map| fastllm_core::dict::get(hf, "text_config.tie_word_embeddings").cloned();
    assert_eq!(
        tied_in(&back),
        (layout == HfLayout::V5 || !tied).then_some(Value::Bool(tied))
    );
}

#[test]
fn tower_tensors_without_a_tower_config_are_named() {
    let (_, tower) = checkpoints("tensors-only", 0);
    add_tower_config_null(&tower);
    let out = scratch("tensors-only-out");
    let error = to_fast_llm(&tower, &out, false).unwrap_err().to_string();
    assert!(
        error.contains("18 tensor(s) of the vision tower, which gemma4_conditional does not convert"),
        "{error}"
    );
    assert!(
        error.contains(&spell(Hint::TextOnly)) && error.contains("model.embed_vision.embedding_projection.weight"),
        "{error}"
    );
    assert!(!out.exists());
}

/// Resets the tower keys of the config.json at `dir` (its tensors stay).
fn add_tower_config_null(dir: &Path) {
    let path = dir.join("config.json");
    let mut config = map(&std::fs::read_to_string(&path).unwrap());
    config.insert("vision_config".into(), Value::Null);
    config.remove("vision_soft_tokens_per_image");
    std::fs::write(path, Value::Map(config).to_json_pretty()).unwrap();
}

#[test]
fn the_text_model_extracts_to_gemma4_directly() {
    let (_, tower) = checkpoints("extract", 1);
    let out = scratch("extract-gemma4");
    let options = Options {
        text_only: true,
        dry_run: true,
        ..Options::default()
    };
    let plan = convert(
        &Conversion {
            input: &tower,
            from: Side::Hf(conditional()),
            output: &out,
            to: Side::Hf(text()),
        },
        &options,
    )
    .unwrap();
    assert_eq!(plan.dropped_tensors.len(), 18);
    assert!(!out.exists(), "a dry run writes nothing");
    let options = Options {
        text_only: true,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &tower,
            from: Side::Hf(conditional()),
            output: &out,
            to: Side::Hf(text()),
        },
        &options,
    )
    .unwrap();
    let (input, output) = (open_hf(&tower).unwrap(), open_hf(&out).unwrap());
    assert_eq!(output.config["model_type"], Value::Str("gemma4_text".into()));
    for name in output.files.names() {
        let source = match name.strip_prefix("model.") {
            Some(rest) => format!("model.language_model.{rest}"),
            None => name.to_string(),
        };
        let (a, b) = (output.files.get(name).unwrap(), input.files.get(&source).unwrap());
        assert!(a.shape == b.shape && a.data == b.data, "{name} ← {source}");
    }
    let text_tensors = input.files.names().filter(|n| !n.contains("vision")).count();
    assert_eq!(output.files.len(), text_tensors);
}
