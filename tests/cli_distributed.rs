//! Fast-LLM training checkpoints through the CLI: the one-command export, `inspect`, and every
//! refusal exiting 2 with the rank file, shard and parameter named, nothing written and the input
//! untouched.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use fastllm_convert::checkpoint::writer::{TensorSpec, write_safetensors};
use fastllm_convert::config::Value;
use rstest::rstest;
use support::{Safetensors, cli, cli_watching_memory, copy_dir, names, repo, scratch, snapshot, synthetic_llama};

/// A distributed fixture's checkpoint (`crates/checkpoint/tests/data/distributed/<name>`).
fn checkpoint(name: &str) -> PathBuf {
    repo("crates/checkpoint/tests/data/distributed")
        .join(name)
        .join("checkpoint")
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
}

/// Runs `convert` with `args` on `input` into a fresh output beside it: exit 2, nothing at the
/// output path or beside it, the input unchanged. Returns stderr.
fn refused(input: &Path, args: &[&str]) -> String {
    let parent = input.parent().unwrap().join("out");
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    let output = parent.join("converted");
    let before = snapshot(input);
    let mut all = vec!["convert"];
    all.extend_from_slice(args);
    all.extend([input.to_str().unwrap(), output.to_str().unwrap()]);
    let out = cli(&all);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    assert!(names(&parent).is_empty(), "left behind: {:?}", names(&parent));
    assert_eq!(snapshot(input), before, "the input changed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of fixture `name`'s checkpoint to damage.
fn corruptible(name: &str, label: &str) -> PathBuf {
    let dir = scratch("cli_distributed", &format!("{name}-{label}")).join("checkpoint");
    copy_dir(&checkpoint(name), &dir);
    dir
}

/// Rewrites a rank file, letting `change` edit its tensors (name, dtype, shape, bytes).
fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<(String, String, Vec<usize>, Vec<u8>)>)) {
    let file = Safetensors::read(path);
    let int = |v: &Value| match v {
        Value::Int(i) => *i as usize,
        other => panic!("{other:?}"),
    };
    let mut tensors: Vec<(String, String, Vec<usize>, Vec<u8>)> = file
        .header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, entry)| {
            let entry = entry.as_map().unwrap();
            let Value::Str(dtype) = &entry["dtype"] else { panic!() };
            let Value::List(shape) = &entry["shape"] else { panic!() };
            let Value::List(offsets) = &entry["data_offsets"] else {
                panic!()
            };
            let data = file.data[int(&offsets[0])..int(&offsets[1])].to_vec();
            (name.clone(), dtype.clone(), shape.iter().map(int).collect(), data)
        })
        .collect();
    change(&mut tensors);
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(name, dtype, shape, _)| TensorSpec {
            name: name.clone(),
            dtype: dtype.clone(),
            shape: shape.clone(),
        })
        .collect();
    std::fs::remove_file(path).unwrap();
    write_safetensors(path, &Default::default(), &specs, |i, out| out.write_all(&tensors[i].3)).unwrap();
}

#[rstest]
#[case("llama_tp2_pp2_dp2", "llama")]
#[case("apriel2_hybrid_tp2_pp2_dp2", "apriel2_text")]
#[case("mixtral_tp2_dp2", "fast_llm")]
fn a_training_checkpoint_exports_in_one_command(#[case] name: &str, #[case] to: &str) {
    let output = scratch("cli_distributed", &format!("{name}-export")).join(to);
    let input = checkpoint(name);
    let before = snapshot(&input);
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        to,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]));
    assert_names(
        &stdout,
        &[
            &format!("fast_llm_distributed -> {to}"),
            "not converted: shards exp_avgs, exp_avgs_sq",
            "not converted: training state metadata.completed_steps = 1000, metadata.documents_seen = 64000",
        ],
    );
    assert!(output.join("model.safetensors").is_file() || output.join("model_0.safetensors").is_file());
    assert_eq!(snapshot(&input), before, "the input changed");
}

#[test]
fn the_json_summary_lists_the_shards_and_state_not_converted() {
    let output = scratch("cli_distributed", "json").join("hf");
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "fast_llm_distributed",
        "--to",
        "llama",
        "--shard",
        "exp_avgs",
        "--dry-run",
        "--json",
        checkpoint("llama_tp2").to_str().unwrap(),
        output.to_str().unwrap(),
    ]));
    let report = Value::from_json_str(&stdout).unwrap();
    let report = report.as_map().unwrap();
    let strings = |v: &[&str]| Value::List(v.iter().map(|s| Value::Str(s.to_string())).collect());
    assert_eq!(report["skipped_shards"], strings(&["weights", "exp_avgs_sq"]));
    assert_eq!(
        report["training_state"].as_map().unwrap()["metadata.completed_steps"],
        Value::Int(1000)
    );
    let Value::List(tensors) = &report["tensors"] else {
        panic!()
    };
    let first = tensors[0].as_map().unwrap();
    let Value::List(from) = &first["from"] else { panic!() };
    assert!(
        matches!(&from[0], Value::Str(s) if s.ends_with("/exp_avgs")),
        "{from:?}"
    );
    assert!(!output.exists());
}

#[test]
fn inspect_shows_the_parallel_layout_shards_and_step() {
    let stdout = ok(&cli(&["inspect", checkpoint("llama_tp2_pp2_dp2").to_str().unwrap()]));
    assert_names(
        &stdout,
        &[
            "format: fast_llm_distributed",
            "model: gpt  hidden_size: 16  layers: 2  vocab: 32",
            "parallel: world 8 = tensor 2 × pipeline 2 × data 2  pipeline_first: true  sequence_data: 1  zero_stage: 3",
            "stages: 3  layers_per_stage: 2",
            "shards: weights, exp_avgs, exp_avgs_sq  dtype: F32",
            "tensors: 17  parameters: 5712",
            "step: 1000  documents_seen: 64000",
            "files: metadata.yaml, rank_0.safetensors,",
            "rank_7.safetensors",
        ],
    );
}

#[test]
fn a_missing_rank_file_is_named() {
    let input = corruptible("llama_tp2_pp2_dp2", "missing");
    std::fs::remove_file(input.join("rank_6.safetensors")).unwrap();
    let message = refused(&input, &["--from", "auto", "--to", "llama"]);
    assert_names(&message, &["`rank_6.safetensors` is missing", "world size is 8"]);
}

#[test]
fn a_shard_of_the_wrong_size_is_named_with_its_rank_file() {
    let input = corruptible("llama_dp2_zero2", "size");
    rewrite(&input.join("rank_1.safetensors"), |tensors| {
        let weights = tensors.iter_mut().find(|t| t.0 == "weights_shard").unwrap();
        weights.2 = vec![weights.2[0] - 1];
        weights.3.truncate(weights.3.len() - 4);
    });
    let message = refused(&input, &["--from", "fast_llm_distributed", "--to", "fast_llm"]);
    assert_names(
        &message,
        &["rank_1.safetensors", "`weights_shard`", "the layout implies", "stage_0"],
    );
}

#[test]
fn nonzero_padding_is_named_with_its_rank_file_shard_and_parameter() {
    // The last element of data rank 1's `exp_avgs` shard is padding of the last stage.
    let input = corruptible("llama_dp2_zero3", "padding");
    rewrite(&input.join("rank_1.safetensors"), |tensors| {
        let state = tensors.iter_mut().find(|t| t.0 == "exp_avgs_shard").unwrap();
        let last = state.3.len() - 4;
        state.3[last..].copy_from_slice(&1.0f32.to_le_bytes());
    });
    let message = refused(&input, &["--from", "auto", "--to", "llama"]);
    assert_names(
        &message,
        &[
            "rank_1.safetensors",
            "`exp_avgs_shard`",
            "the padding of stage_",
            "after `",
            "is not zero",
        ],
    );
}

#[test]
fn a_shard_of_the_wrong_dtype_is_named() {
    let input = corruptible("llama_world1", "dtype");
    rewrite(&input.join("rank_0.safetensors"), |tensors| {
        tensors.iter_mut().find(|t| t.0 == "exp_avgs_sq_shard").unwrap().1 = "I32".into();
    });
    let message = refused(&input, &["--from", "auto", "--to", "llama"]);
    assert_names(
        &message,
        &["rank_0.safetensors", "`exp_avgs_sq_shard` is I32", "is F32"],
    );
}

#[rstest]
#[case::unknown_shard(
    "llama_tp2",
    &["--from", "auto", "--to", "llama", "--shard", "grads"],
    &["metadata.yaml", "no shard `grads`", "weights, exp_avgs, exp_avgs_sq"],
)]
#[case::frozen_parameters_have_no_optimizer_state(
    "llama_tp2_pp2_dp2",
    &["--from", "auto", "--to", "fast_llm", "--shard", "exp_avgs"],
    &[
        "2 tensor problems",
        "`decoder.0.mlp.layer_2.weight` is frozen",
        "`decoder.1.mlp.layer_2.weight` is frozen",
        "no `exp_avgs` state",
    ],
)]
#[case::a_distributed_output_needs_a_layout(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed"],
    &["--to fast_llm_distributed needs --layout"],
)]
#[case::read_as_the_state_dict_format(
    "llama_tp2",
    &["--from", "fast_llm", "--to", "llama"],
    &["metadata.yaml", "`format` is `distributed`: a distributed training checkpoint", "--from fast_llm_distributed"],
)]
#[case::config_only_is_refused_as_a_distributed_output(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed", "--layout", "tp=2", "--config-only"],
    &["--config-only does not apply to a fast_llm_distributed output"],
)]
#[case::a_layout_the_model_cannot_take_names_the_key_and_parameter(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed", "--layout", "tp=4,dp=2"],
    &["--layout tp=4,pp=1,dp=2", "`decoder.0.mixer.query.weight`", "does not split over 4 tensor ranks"],
)]
#[case::too_many_pipeline_ranks(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed", "--layout", "pp=8"],
    &["--layout tp=1,pp=8,dp=1", "4 stages for 8 pipeline ranks", "layers_per_stage"],
)]
#[case::a_bad_layout_key(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed", "--layout", "tensor=2"],
    &["--layout: unknown key `tensor`"],
)]
#[case::a_layout_for_another_format(
    "llama_tp2",
    &["--from", "auto", "--to", "llama", "--layout", "tp=2"],
    &["--layout is for --to fast_llm_distributed; llama is not a distributed layout"],
)]
#[case::optimizer_state_in_an_hf_format(
    "llama_tp2",
    &["--from", "auto", "--to", "llama", "--optimizer-state"],
    &["--optimizer-state: llama cannot hold optimizer state"],
)]
#[case::dtype_of_a_distributed_output(
    "llama_tp2",
    &["--from", "auto", "--to", "fast_llm_distributed", "--layout", "tp=2", "--dtype", "bf16"],
    &["--dtype does not apply to a fast_llm_distributed output", "optimization_dtype"],
)]
fn refusals_name_what_is_wrong(#[case] name: &str, #[case] args: &[&str], #[case] message: &[&str]) {
    let input = corruptible(name, &args.join("_").replace("--", ""));
    assert_names(&refused(&input, args), message);
}

#[test]
fn shard_applies_to_distributed_inputs_only() {
    let input = scratch("cli_distributed", "shard-of-fast-llm").join("fast_llm");
    copy_dir(
        &repo("crates/checkpoint/tests/data/distributed/llama_tp2/fast_llm"),
        &input,
    );
    let message = refused(&input, &["--from", "auto", "--to", "llama", "--shard", "weights"]);
    assert_names(
        &message,
        &[
            "--shard weights",
            "only a fast_llm_distributed input has shards",
            "a fast_llm checkpoint holds weights only",
        ],
    );
}

#[test]
fn carried_keys_and_companion_files_come_along() {
    // A training checkpoint imported from an HF model keeps that model's metadata in
    // metadata.yaml (`metadata.hf_metadata`), like a fast_llm one; its tokenizer sits beside it.
    let input = corruptible("llama_tp2", "carried");
    let text = std::fs::read_to_string(input.join("metadata.yaml")).unwrap();
    let carried = "metadata:\n  hf_metadata:\n    format: llama\n    format_keys: {}\n    generic:\n      \
                   bos_token_id: 128000\n      max_position_embeddings: 131072\n";
    assert!(text.contains("\nmetadata:\n"));
    std::fs::write(
        input.join("metadata.yaml"),
        text.replacen("\nmetadata:\n", &format!("\n{carried}"), 1),
    )
    .unwrap();
    std::fs::write(input.join("tokenizer.json"), r#"{"version": "1.0"}"#).unwrap();
    let out = scratch("cli_distributed", "carried-out");
    let hf = out.join("hf");
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "llama",
        input.to_str().unwrap(),
        hf.to_str().unwrap(),
    ]));
    assert_names(
        &stdout,
        &[
            "carried config keys: bos_token_id, max_position_embeddings",
            "copied files: tokenizer.json",
            "not converted: training state metadata.completed_steps = 1000",
        ],
    );
    assert!(!stdout.contains("hf_metadata"), "{stdout}");
    let config = Value::from_json_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    let config = config.as_map().unwrap();
    assert_eq!(config["bos_token_id"], Value::Int(128000));
    assert_eq!(config["max_position_embeddings"], Value::Int(131072));
    assert_eq!(
        std::fs::read_to_string(hf.join("tokenizer.json")).unwrap(),
        r#"{"version": "1.0"}"#
    );

    // To fast_llm the keys are stored; --drop-key removes one, and says so.
    let fast_llm = out.join("fast_llm");
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "fast_llm_distributed",
        "--to",
        "fast_llm",
        "--drop-key",
        "bos_token_id",
        input.to_str().unwrap(),
        fast_llm.to_str().unwrap(),
    ]));
    assert_names(
        &stdout,
        &[
            "carried config keys: max_position_embeddings",
            "dropped (--drop-key): config key bos_token_id = 128000",
        ],
    );
    let metadata = std::fs::read_to_string(fast_llm.join("metadata.yaml")).unwrap();
    assert!(metadata.contains("max_position_embeddings: 131072"), "{metadata}");
    assert!(!metadata.contains("bos_token_id"), "{metadata}");
    assert!(fast_llm.join("tokenizer.json").is_file());

    // Re-sharded, the keys are stored and the tokenizer comes along; exported from there, the HF
    // config is the same.
    let resharded = out.join("resharded");
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm_distributed",
        "--layout",
        "dp=2,zero=3",
        input.to_str().unwrap(),
        resharded.to_str().unwrap(),
    ]));
    assert_names(
        &stdout,
        &[
            "carried config keys: bos_token_id, max_position_embeddings",
            "copied files: tokenizer.json",
        ],
    );
    let hf_again = out.join("hf_again");
    ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "llama",
        resharded.to_str().unwrap(),
        hf_again.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(hf_again.join("config.json")).unwrap(),
        std::fs::read_to_string(hf.join("config.json")).unwrap()
    );
    assert!(hf_again.join("tokenizer.json").is_file());
}

#[test]
fn a_checkpoint_resharded_by_the_cli_is_described_by_inspect_and_exports_with_its_state() {
    // The issue's two commands: re-shard a world-1 run to tp2 × pp2 × dp2 (ZeRO 3), then export
    // it with its optimizer state.
    let dir = scratch("cli_distributed", "reshard");
    let (resharded, exported) = (dir.join("resharded"), dir.join("exported"));
    let input = checkpoint("llama_world1");
    let layout = "tp=2,pp=2,dp=2,zero=3,pipeline_first,layers_per_stage=2";
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "auto",
        "--to",
        "fast_llm_distributed",
        "--layout",
        layout,
        "--optimizer-state",
        input.to_str().unwrap(),
        resharded.to_str().unwrap(),
    ]));
    assert_names(
        &stdout,
        &["fast_llm_distributed -> fast_llm_distributed", "rank_7.safetensors"],
    );
    let described = ok(&cli(&["inspect", resharded.to_str().unwrap()]));
    assert_names(
        &described,
        &[
            "format: fast_llm_distributed",
            "parallel: world 8 = tensor 2 × pipeline 2 × data 2  pipeline_first: true  sequence_data: 1  zero_stage: 3",
            "stages: 3  layers_per_stage: 2",
            "shards: weights, exp_avgs, exp_avgs_sq  dtype: F32",
            "tensors: 17  parameters: 5712",
            // The trainer's progress is kept.
            "step: 1000  documents_seen: 64000",
        ],
    );
    let stdout = ok(&cli(&[
        "convert",
        "--from",
        "fast_llm_distributed",
        "--to",
        "fast_llm",
        "--optimizer-state",
        "--json",
        resharded.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]));
    let summary = Value::from_json_str(&stdout).unwrap();
    let summary = summary.as_map().unwrap();
    assert_eq!(summary["tensor_count"], Value::Int(17 * 3));
    assert_eq!(summary["skipped_shards"], Value::List(Vec::new()));
}

#[test]
fn optimizer_state_from_an_input_without_it_is_refused() {
    let input = scratch("cli_distributed", "no-state").join("hf");
    copy_dir(&repo("crates/checkpoint/tests/data/distributed/llama_tp2/hf"), &input);
    let message = refused(
        &input,
        &[
            "--from",
            "auto",
            "--to",
            "fast_llm_distributed",
            "--layout",
            "tp=2",
            "--optimizer-state",
        ],
    );
    assert_names(
        &message,
        &["--optimizer-state: the llama input at", "holds no optimizer state"],
    );
}

/// README, "Memory": from local safetensors files, a parameter that needs no transform is never
/// held whole; each rank's slice of it is read from the file in blocks. The largest tensors here
/// (the embeddings and the output head, 8192 x 4096 in float32: 128 MiB each) are larger than
/// the whole conversion's peak resident memory, writer buffers and all.
#[test]
fn hf_to_distributed_holds_no_parameter_whole() {
    let dir = scratch("cli_distributed", "memory");
    let hf = synthetic_llama(&dir, 4096, 1, 1 << 40);
    let largest: u64 = 8192 * 4096 * 4;
    let output = dir.join("distributed");
    let args = [
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm_distributed",
        "--layout",
        "tp=2",
    ];
    let paths = [hf.to_str().unwrap(), output.to_str().unwrap()];
    let (run, peak) = cli_watching_memory(&[&args[..], &paths[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(output.join("rank_1.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        peak > 0 && peak < largest,
        "peak resident memory {} MiB, the largest tensor {} MiB",
        peak >> 20,
        largest >> 20
    );
}
