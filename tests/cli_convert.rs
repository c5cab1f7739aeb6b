//! `fastllm-convert convert` and `inspect`: whole checkpoints through the CLI, and every hostile
//! input exiting 2 with the file and tensor named and nothing left at the output path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::checkpoint::writer::{TensorSpec, write_safetensors};
use fastllm_convert::checkpoint::{open_fast_llm, open_hf};
use fastllm_convert::config::Value;
use rstest::rstest;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .unwrap()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn fixture(format: &str, part: &str) -> PathBuf {
    repo("tests/fixtures/weights").join(format).join(part)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_convert").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rejected(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of a fixture's HF input to damage.
fn copy_input(format: &str, name: &str) -> PathBuf {
    let dir = scratch(name).join("input");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(format, "hf_input").join(file), dir.join(file)).unwrap();
    }
    dir
}

#[test]
fn the_readme_command_converts_the_bundled_sample_both_ways() {
    let root = scratch("sample");
    let (fast_llm, back) = (root.join("fast_llm"), root.join("back"));
    let sample = repo("samples/llama-tiny");
    ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm",
        sample.to_str().unwrap(),
        fast_llm.to_str().unwrap(),
    ]));
    let metadata = open_fast_llm(&fast_llm).unwrap().config;
    assert_eq!(metadata["format"], Value::Str("fast_llm".into()));
    assert!(fast_llm.join("ok").is_file());
    ok(&cli(&[
        "convert",
        "--from",
        "fast_llm",
        "--to",
        "llama",
        fast_llm.to_str().unwrap(),
        back.to_str().unwrap(),
    ]));
    let (a, b) = (open_hf(&sample).unwrap(), open_hf(&back).unwrap());
    assert_eq!(a.files.names().collect::<Vec<_>>(), b.files.names().collect::<Vec<_>>());
    for name in a.files.names() {
        assert!(
            a.files.get(name).unwrap().data == b.files.get(name).unwrap().data,
            "{name}"
        );
    }
}

#[test]
fn hf_to_hf_across_families() {
    let root = scratch("hf2hf");
    // This Mistral fixture has `sliding_window: 32`, which Llama cannot hold: rejected by name.
    let out = root.join("llama");
    let stderr = rejected(&cli(&[
        "convert",
        "--from",
        "mistral",
        "--to",
        "llama",
        fixture("mistral", "hf_input").to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("window_size") && stderr.contains("no sliding window"),
        "{stderr}"
    );
    // Named by the input's file and the HF key the user wrote there.
    assert!(
        stderr.contains("hf_input/config.json") && stderr.contains("HF `sliding_window`"),
        "{stderr}"
    );
    assert!(!out.exists());
    // Llama -> Mistral is representable: same tensors, Mistral's config.
    let mistral = root.join("mistral");
    ok(&cli(&[
        "convert",
        "--from",
        "llama",
        "--to",
        "mistral",
        fixture("llama", "hf_input").to_str().unwrap(),
        mistral.to_str().unwrap(),
    ]));
    let converted = open_hf(&mistral).unwrap();
    assert_eq!(converted.config["model_type"], Value::Str("mistral".into()));
    assert_eq!(converted.files.len(), 21);
}

#[test]
fn dry_run_and_json_write_nothing() {
    let out = scratch("dry").join("out");
    let text = ok(&cli(&[
        "convert",
        "--from",
        "mixtral",
        "--to",
        "fast_llm",
        "--dry-run",
        fixture("mixtral", "hf_input").to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        text.contains("decoder.0.mlp.layer_1.weight/weights") && text.contains("[1024, 64]"),
        "{text}"
    );
    assert!(!out.exists());
    let json = ok(&cli(&[
        "convert",
        "--from",
        "qwen2",
        "--to",
        "fast_llm",
        "--dry-run",
        "--json",
        fixture("qwen2", "hf_input").to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    let report = Value::from_json_str(&json).unwrap();
    assert_eq!(report.as_map().unwrap()["tensor_count"], Value::Int(20));
    assert!(!out.exists());
    // A dry run of the config alone says what it would write, not that it wrote.
    let text = ok(&cli(&[
        "convert",
        "--from",
        "qwen2",
        "--to",
        "fast_llm",
        "--dry-run",
        "--config-only",
        fixture("qwen2", "hf_input").to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        text.contains("would write the config only: qwen2 -> fast_llm"),
        "{text}"
    );
    assert!(!text.contains("wrote"), "{text}");
    assert!(!out.exists());
}

#[test]
fn an_existing_output_needs_force() {
    let root = scratch("force");
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let input = fixture("llama", "hf_input");
    let stderr = rejected(&cli(&[
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(stderr.contains("--force"), "{stderr}");
    ok(&cli(&[
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm",
        "--force",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(out.join("metadata.yaml").is_file());
}

/// Rewrites the input's weights: `edit` gets the tensor list and may drop, add or reshape.
fn rewrite_weights(input: &Path, edit: impl Fn(&mut Vec<(TensorSpec, Vec<u8>)>)) {
    let checkpoint = open_hf(input).unwrap();
    let mut tensors: Vec<(TensorSpec, Vec<u8>)> = checkpoint
        .files
        .names()
        .map(|n| {
            let t = checkpoint.files.get(n).unwrap();
            (
                TensorSpec {
                    name: n.to_string(),
                    dtype: t.dtype.to_string(),
                    shape: t.shape.to_vec(),
                },
                t.data.to_vec(),
            )
        })
        .collect();
    drop(checkpoint);
    edit(&mut tensors);
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let path = input.join("model.safetensors");
    std::fs::remove_file(&path).unwrap();
    write_safetensors(&path, &Default::default(), &specs, |i, out| {
        out.write_all(&tensors[i].1)
    })
    .unwrap();
}

#[rstest]
#[case::shape_mismatch("shape", |t: &mut Vec<(TensorSpec, Vec<u8>)>| {
    let (spec, _) = t.iter_mut().find(|(s, _)| s.name == "model.layers.1.self_attn.o_proj.weight").unwrap();
    spec.shape = vec![32, 128];
}, "`model.layers.1.self_attn.o_proj.weight` in model.safetensors: shape [32, 128], the config implies [64, 64]")]
#[case::leftover("leftover", |t: &mut Vec<(TensorSpec, Vec<u8>)>| {
    t.push((TensorSpec { name: "model.layers.0.self_attn.rotary_emb.inv_freq".into(), dtype: "F32".into(), shape: vec![2] }, vec![0; 8]));
}, "model.layers.0.self_attn.rotary_emb.inv_freq")]
#[case::missing("missing", |t: &mut Vec<(TensorSpec, Vec<u8>)>| t.retain(|(s, _)| s.name != "model.norm.weight"), "`model.norm.weight` (for Fast-LLM `head.final_norm.weight`): missing from model.safetensors")]
#[case::dtype("dtype", |t: &mut Vec<(TensorSpec, Vec<u8>)>| {
    let (spec, data) = t.iter_mut().find(|(s, _)| s.name == "model.layers.0.self_attn.v_proj.weight").unwrap();
    spec.dtype = "F16".into();
    data.truncate(data.len() / 2);
}, "dtype F16 differs from F32")]
fn hostile_weights_exit_2_and_leave_nothing(
    #[case] name: &str,
    #[case] edit: fn(&mut Vec<(TensorSpec, Vec<u8>)>),
    #[case] needle: &str,
) {
    let input = copy_input("llama", name);
    rewrite_weights(&input, edit);
    let out = input.parent().unwrap().join("out");
    let stderr = rejected(&cli(&[
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(stderr.contains(needle), "{stderr}");
    assert!(stderr.contains(input.to_str().unwrap()), "the input is named: {stderr}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(input.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no staging directory left behind: {leftovers:?}");
}

/// A tiny `Gemma4ForConditionalGeneration` checkpoint with a (two-tensor) vision tower.
fn gemma4_with_a_vision_tower(name: &str) -> PathBuf {
    let handler = fastllm_convert::core::find("gemma4_conditional").unwrap();
    let config = fastllm_convert::config::load_base_model(handler.model, &handler.converter().samples[0]).unwrap();
    let input = scratch(name).join("input");
    fastllm_convert::checkpoint::synthetic::write_synthetic_hf(
        handler,
        &config,
        &input,
        &fastllm_convert::checkpoint::synthetic::SyntheticStorage {
            dtype: "F32",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
    rewrite_weights(&input, |tensors| {
        for tensor in [
            "model.vision_tower.std_bias",
            "model.embed_vision.embedding_projection.weight",
        ] {
            let spec = TensorSpec {
                name: tensor.into(),
                dtype: "F32".into(),
                shape: vec![4],
            };
            tensors.push((spec, vec![0; 16]));
        }
    });
    let path = input.join("config.json");
    let mut hf = Value::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let Value::Map(root) = &mut hf else { panic!() };
    root.insert(
        "vision_config".into(),
        Value::from_json_str(r#"{"model_type": "gemma4_vision", "hidden_size": 4}"#).unwrap(),
    );
    std::fs::write(&path, hf.to_json_pretty()).unwrap();
    input
}

#[test]
fn text_only_drops_a_vision_tower_listing_every_key_and_tensor() {
    let input = gemma4_with_a_vision_tower("gemma4-tower");
    let out = input.parent().unwrap().join("out");
    let args = |extra: &[&'static str]| {
        let mut args = vec!["convert", "--from", "auto", "--to", "fast_llm"];
        args.extend_from_slice(extra);
        args.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&'static str]| {
        let args = args(extra);
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let stderr = rejected(&run(&[]));
    assert!(
        stderr.contains("HF `vision_config`: part of the vision tower, which gemma4_conditional does not convert")
            && stderr.contains("--text-only"),
        "{stderr}"
    );
    assert!(!out.exists());
    let text = ok(&run(&["--text-only"]));
    assert!(
        text.contains("--text-only dropped 1 config key(s) the format does not convert: vision_config"),
        "{text}"
    );
    assert!(
        text.contains(
            "--text-only dropped 2 tensor(s) the format does not convert: \
             model.embed_vision.embedding_projection.weight, model.vision_tower.std_bias"
        ),
        "{text}"
    );
    let report = Value::from_json_str(&ok(&run(&["--text-only", "--json", "--dry-run"]))).unwrap();
    let report = report.as_map().unwrap();
    assert_eq!(
        report["dropped_keys"],
        Value::from_json_str(
            r#"[{"key": "vision_config", "value": {"model_type": "gemma4_vision", "hidden_size": 4}, "by": "--text-only"}]"#,
        )
        .unwrap()
    );
    assert_eq!(
        report["dropped_tensors"],
        Value::from_json_str(r#"["model.embed_vision.embedding_projection.weight", "model.vision_tower.std_bias"]"#)
            .unwrap()
    );
    let text = ok(&cli(&["inspect", input.to_str().unwrap()]));
    assert!(
        text.contains("format: gemma4_conditional")
            && text.contains("hidden_size: 64")
            && text.contains("not converted (--text-only drops them): config keys vision_config; 2 tensors"),
        "{text}"
    );
}

/// A tiny published Gemma 4 checkpoint: [`gemma4_with_a_vision_tower`] with the release's
/// `config.json` shape (`google/gemma-4-31B-it`): complete as transformers 5.x saves it, the
/// wrapper's `dtype` and its generation stop tokens `eos_token_id` [1, 106] beside the text
/// model's 1, the text model's 262144 context, `use_bidirectional_attention: "vision"`, the
/// pre-release `expert_intermediate_size: null`, tower keys the class lacks; plus a tokenizer
/// and a generation config.
fn released_gemma4(name: &str) -> PathBuf {
    use fastllm_convert::core::{Carried, HfLayout, find};
    let input = gemma4_with_a_vision_tower(name);
    let handler = find("gemma4_conditional").unwrap();
    let config = fastllm_convert::config::load_base_model(handler.model, &handler.converter().samples[0]).unwrap();
    let (mut hf, _) = handler
        .export_carrying(&config, &Carried::none("fast_llm"), HfLayout::V5)
        .unwrap();
    let path = input.join("config.json");
    let Value::Map(with_tower) = Value::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap() else {
        panic!()
    };
    let release = |json: &str| Value::from_json_str(json).unwrap().as_map().unwrap().clone();
    hf.extend(release(
        r#"{"dtype": "bfloat16", "eos_token_id": [1, 106], "transformers_version": "5.5.0.dev0",
            "vision_soft_tokens_per_image": 280, "eoa_token_id": 258883}"#,
    ));
    hf.insert("vision_config".into(), with_tower["vision_config"].clone());
    let Some(Value::Map(text_config)) = hf.get_mut("text_config") else {
        panic!()
    };
    text_config.extend(release(
        r#"{"dtype": "bfloat16", "max_position_embeddings": 262144, "use_bidirectional_attention": "vision",
            "expert_intermediate_size": null}"#,
    ));
    std::fs::write(&path, Value::Map(hf).to_json_pretty()).unwrap();
    std::fs::write(input.join("tokenizer.json"), r#"{"model": {"type": "BPE"}}"#).unwrap();
    std::fs::write(input.join("generation_config.json"), r#"{"eos_token_id": [1, 106]}"#).unwrap();
    input
}

fn read_config(dir: &Path) -> fastllm_convert::config::Map {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    Value::from_json_str(&text).unwrap().as_map().unwrap().clone()
}

/// The released Gemma 4's text model, through `--text-only`, `--drop-key` and the carried keys:
/// back to the wrapper (through Fast-LLM) its config.json is restored but for what
/// `--text-only` dropped; as `gemma4` (directly or through Fast-LLM) the text model's metadata
/// moves to the root, where the wrapper's `eos_token_id` and the text model's collide until one
/// is dropped by name. Tokenizer and generation files are copied at every step.
#[rstest]
#[case::back_to_the_wrapper(&["gemma4_conditional", "fast_llm", "gemma4_conditional"])]
#[case::to_gemma4(&["gemma4_conditional", "gemma4"])]
#[case::to_gemma4_through_fast_llm(&["gemma4_conditional", "fast_llm", "gemma4"])]
fn a_released_gemma4_keeps_its_metadata_text_only(#[case] path: &[&str]) {
    let name = format!("released-{}", path.join("-"));
    let input = released_gemma4(&name);
    let original = read_config(&input);
    let mut current = input.clone();
    for (i, step) in path.windows(2).enumerate() {
        let next = input.parent().unwrap().join(format!("step-{i}"));
        let mut args = vec!["convert", "--from", step[0], "--to", step[1], "--hf-layout", "v5"];
        if i == 0 {
            args.push("--text-only");
        }
        let (from, to) = (current.to_str().unwrap(), next.to_str().unwrap());
        let out = cli(&[args.as_slice(), &[from, to]].concat());
        let text = if step[1] == "gemma4" {
            // Two values for gemma4's one `eos_token_id`: refused, naming both.
            let stderr = rejected(&out);
            assert!(
                stderr.contains(
                    "HF `eos_token_id`: [1,106] and `text_config.eos_token_id` 1 both become gemma4's `eos_token_id`"
                ) && stderr.contains("--drop-key eos_token_id or --drop-key text_config.eos_token_id"),
                "{stderr}"
            );
            assert!(!next.exists());
            args.extend(["--drop-key", "text_config.eos_token_id"]);
            let text = ok(&cli(&[args.as_slice(), &[from, to]].concat()));
            assert!(
                text.lines()
                    .any(|l| l == "dropped (--drop-key): config key text_config.eos_token_id = 1"),
                "{text}"
            );
            assert!(
                text.lines().any(|l| l
                    == "not carried: config key text_config.expert_intermediate_size = null: \
                        gemma4's Gemma4TextConfig has no such key (`expert_intermediate_size`)"),
                "{text}"
            );
            text
        } else {
            ok(&out)
        };
        if i == 0 {
            assert!(
                text.contains(
                    "--text-only dropped 3 config key(s) the format does not convert: \
                     vision_config, vision_soft_tokens_per_image, eoa_token_id"
                ),
                "{text}"
            );
        }
        for file in ["tokenizer.json", "generation_config.json"] {
            assert_eq!(
                std::fs::read(next.join(file)).unwrap(),
                std::fs::read(input.join(file)).unwrap()
            );
        }
        current = next;
    }
    let written = read_config(&current);
    let mut expected = original.clone();
    for key in ["transformers_version", "vision_soft_tokens_per_image", "eoa_token_id"] {
        expected.remove(key);
    }
    expected.insert("vision_config".into(), Value::Null);
    if path.last() == Some(&"gemma4") {
        // The text model at the root, with the wrapper's generation stop tokens.
        let Value::Map(mut text_config) = expected["text_config"].clone() else {
            panic!()
        };
        text_config.remove("expert_intermediate_size");
        text_config.insert("eos_token_id".into(), original["eos_token_id"].clone());
        text_config.insert(
            "architectures".into(),
            Value::from_json_str(r#"["Gemma4ForCausalLM"]"#).unwrap(),
        );
        expected = text_config;
    }
    assert_eq!(written, expected);
}

#[test]
fn pickle_checkpoints_are_refused_by_name() {
    let input = scratch("pickle").join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        fixture("llama", "hf_input").join("config.json"),
        input.join("config.json"),
    )
    .unwrap();
    std::fs::write(input.join("pytorch_model.bin"), b"not unpickled").unwrap();
    let out = input.parent().unwrap().join("out");
    let stderr = rejected(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("pytorch_model.bin") && stderr.contains("never unpickled"),
        "{stderr}"
    );
}

/// Formats whose weight conversion is not declared yet (their config converts).
const WITHOUT_WEIGHTS: &[&str] = &[];

#[test]
fn every_format_converts_weights_except_the_listed_ones() {
    let without: Vec<&str> = fastllm_convert::core::handlers()
        .iter()
        .filter(|h| h.converter().base_model.weights().is_empty())
        .map(|h| h.name)
        .collect();
    assert_eq!(
        without, WITHOUT_WEIGHTS,
        "update WITHOUT_WEIGHTS (and the README) when a format gains weights"
    );
}

#[test]
fn inspect_describes_a_checkpoint() {
    let text = ok(&cli(&["inspect", fixture("qwen2", "hf_input").to_str().unwrap()]));
    assert!(
        text.contains("format: qwen2") && text.contains("tensors: 26") && text.contains("dtype F32"),
        "{text}"
    );
    let text = ok(&cli(&["inspect", fixture("qwen2", "fast_llm").to_str().unwrap()]));
    assert!(
        text.contains("format: fast_llm") && text.contains("tensors: 20"),
        "{text}"
    );
}

#[test]
fn a_config_json_that_is_not_a_mapping_is_named() {
    let input = copy_input("llama", "not-a-mapping");
    std::fs::write(input.join("config.json"), "[]").unwrap();
    let out = scratch("not-a-mapping-out").join("out");
    let stderr = rejected(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("config.json") && stderr.contains("expected a mapping"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// The tensors of an HF or Fast-LLM checkpoint: name → (dtype, shape, bytes).
fn tensors(dir: &Path) -> std::collections::BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let checkpoint = if dir.join("metadata.yaml").exists() {
        open_fast_llm(dir).unwrap()
    } else {
        open_hf(dir).unwrap()
    };
    let files = &checkpoint.files;
    (files.names())
        .map(|n| {
            let t = files.get(n).unwrap();
            (n.to_string(), (t.dtype.to_string(), t.shape.to_vec(), t.data.to_vec()))
        })
        .collect()
}

/// The Llama fixture in BF16 (each value's top half: truncated, independently of the cast under
/// test), with the edge values of BF16 in `model.norm.weight`: -0, ±inf, ±max, subnormals.
fn bf16_llama(name: &str) -> PathBuf {
    let input = copy_input("llama", name);
    rewrite_weights(&input, |tensors| {
        for (spec, data) in tensors.iter_mut() {
            spec.dtype = "BF16".into();
            *data = data.chunks(4).flat_map(|x| [x[2], x[3]]).collect();
            if spec.name == "model.norm.weight" {
                let edges: [u16; 8] = [0x8000, 0x7F80, 0xFF80, 0x7F7F, 0xFF7F, 0x0001, 0x807F, 0x0080];
                for (element, edge) in data.chunks_mut(2).zip(edges) {
                    element.copy_from_slice(&edge.to_le_bytes());
                }
            }
        }
    });
    let path = input.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(r#""dtype": "float32""#, r#""dtype": "bfloat16""#)).unwrap();
    input
}

#[test]
fn bf16_through_f32_and_back_is_bit_identical() {
    let input = bf16_llama("dtype_round_trip");
    let root = input.parent().unwrap();
    let (wide, back) = (root.join("fast_llm"), root.join("back"));
    let run = |to: &str, dtype: &str, from: &Path, out: &Path| {
        ok(&cli(&[
            "convert",
            "--from",
            "auto",
            "--to",
            to,
            "--dtype",
            dtype,
            "--hf-layout",
            "v5",
            from.to_str().unwrap(),
            out.to_str().unwrap(),
        ]))
    };
    run("fast_llm", "f32", &input, &wide);
    let widened = tensors(&wide);
    assert!(widened.values().all(|(dtype, ..)| dtype == "F32"));
    let norm = &widened["head.final_norm.weight/weights"].2;
    let edges: Vec<u32> = norm[..32]
        .chunks(4)
        .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
        .collect();
    assert_eq!(
        edges,
        [
            0x8000_0000,
            0x7F80_0000,
            0xFF80_0000,
            0x7F7F_0000,
            0xFF7F_0000,
            0x0001_0000,
            0x807F_0000,
            0x0080_0000
        ]
    );
    let metadata = std::fs::read_to_string(wide.join("metadata.yaml")).unwrap();
    assert!(
        metadata.contains("dtype: float32"),
        "the carried dtype says what was written:\n{metadata}"
    );
    run("llama", "bf16", &wide, &back);
    assert!(
        tensors(&back) == tensors(&input),
        "BF16 -> F32 -> BF16 gives back every bit"
    );
    let mut expected = read_config(&input);
    let mut config = read_config(&back);
    expected.remove("transformers_version");
    config.remove("transformers_version");
    assert_eq!(config, expected);
}

/// The Llama fixture with values beyond F16's range in one tensor.
fn beyond_f16(name: &str) -> PathBuf {
    let input = copy_input("llama", name);
    rewrite_weights(&input, |tensors| {
        let (_, data) = tensors
            .iter_mut()
            .find(|(s, _)| s.name == "model.layers.0.mlp.down_proj.weight")
            .unwrap();
        for (i, value) in [(3, 70000f32), (10, -1e9), (11, 65504.0), (12, 65519.0)] {
            data[4 * i..4 * i + 4].copy_from_slice(&value.to_le_bytes());
        }
    });
    input
}

#[test]
fn f16_overflow_is_refused_by_tensor_unless_allowed() {
    let input = beyond_f16("dtype_overflow");
    let out = input.parent().unwrap().join("out");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["convert", "--from", "auto", "--to", "fast_llm", "--dtype", "f16"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend([input.display().to_string(), out.display().to_string()]);
        args
    };
    let run = |extra: &[&'static str]| {
        let args = args(extra);
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let stderr = rejected(&run(&[]));
    assert!(
        stderr.contains(&format!(
            "{}: tensor `decoder.0.mlp.layer_2.weight/weights`: casting F32 to F16 turns 2 finite values into \
             infinity (largest magnitude 1e9); --allow-overflow",
            input.join("model.safetensors").display()
        )),
        "{stderr}"
    );
    assert!(!out.exists());
    let summary = ok(&run(&["--allow-overflow"]));
    assert!(
        summary.contains(
            "overflowed to infinity (--allow-overflow): `decoder.0.mlp.layer_2.weight/weights` 2 values (largest \
             magnitude 1e9)"
        ),
        "{summary}"
    );
    let written = &tensors(&out)["decoder.0.mlp.layer_2.weight/weights"];
    assert_eq!(written.0, "F16");
    let json = ok(&run(&["--allow-overflow", "--force", "--json"]));
    let Value::Map(report) = Value::from_json_str(&json).unwrap() else {
        panic!()
    };
    let Some(Value::List(overflows)) = report.get("overflows") else {
        panic!("{json}")
    };
    let Value::Map(overflow) = &overflows[0] else { panic!() };
    assert_eq!(
        overflow["tensor"],
        Value::Str("decoder.0.mlp.layer_2.weight/weights".into())
    );
    assert_eq!(overflow["count"], Value::Int(2));
    assert_eq!(overflow["largest"], Value::Float(1e9));
    assert_eq!(overflows.len(), 1);
}

#[test]
fn dtype_on_a_training_checkpoint_writes_bf16_and_says_so() {
    let input = repo("crates/checkpoint/tests/data/distributed/llama_tp2_pp2_dp2/checkpoint");
    let root = scratch("dtype_distributed");
    let (plain, cast) = (root.join("f32"), root.join("bf16"));
    let plan = ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "llama",
        "--dtype",
        "bf16",
        "--dry-run",
        "--json",
        input.to_str().unwrap(),
        cast.to_str().unwrap(),
    ]));
    let Value::Map(plan) = Value::from_json_str(&plan).unwrap() else {
        panic!()
    };
    assert_eq!(plan["bytes"], Value::Int(11424), "half the float32 bytes");
    let Value::List(planned) = &plan["tensors"] else {
        panic!()
    };
    for tensor in planned {
        let Value::Map(tensor) = tensor else { panic!() };
        assert_eq!(tensor["dtype"], Value::Str("BF16".into()));
        assert_eq!(tensor["cast_from"], Value::Str("F32".into()));
    }
    for (out, extra) in [(&plain, None), (&cast, Some("bf16"))] {
        let mut args = vec!["convert", "--from", "auto", "--to", "llama"];
        args.extend(extra.map(|d| ["--dtype", d]).into_iter().flatten());
        args.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
        ok(&cli(&args));
    }
    let (plain, written) = (tensors(&plain), tensors(&cast));
    assert_eq!(plain.keys().collect::<Vec<_>>(), written.keys().collect::<Vec<_>>());
    for (name, (dtype, shape, data)) in &written {
        let (_, plain_shape, plain_data) = &plain[name];
        assert_eq!((dtype.as_str(), shape), ("BF16", plain_shape), "{name}");
        let expected: Vec<u8> = (plain_data.chunks(4))
            .flat_map(|x| {
                let value = u32::from_le_bytes(x.try_into().unwrap());
                fastllm_convert::checkpoint::cast::f32_to_bf16(value).to_le_bytes()
            })
            .collect();
        assert!(*data == expected, "{name}");
    }
    assert_eq!(read_config(&cast)["torch_dtype"], Value::Str("bfloat16".into()));
    assert!(!read_config(&root.join("f32")).contains_key("torch_dtype"));
}
