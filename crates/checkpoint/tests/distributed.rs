//! Fast-LLM distributed checkpoints against the reference's own conversions of them
//! (`tests/data/distributed/`, written by `scripts/make_distributed_fixtures.py`): the layout equals
//! Fast-LLM's placement rank by rank, every parameter of every shard is reassembled bit for bit,
//! one `convert` to HF and to the Fast-LLM state-dict format writes what the reference's own
//! conversions wrote, and every corruption is refused with the file, shard and parameter named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert, detect};
use fastllm_checkpoint::distributed::{DistributedCheckpoint, DistributedError, ShardKind};
use fastllm_checkpoint::writer::{TensorSpec, write_safetensors};
use fastllm_checkpoint::{CheckpointError, FileSet, open_fast_llm, open_hf};
use fastllm_config::Value;
use fastllm_core::HfLayout;
use rstest::rstest;
use safetensors::SafeTensors;

use fastllm_apriel as _;
use fastllm_llama as _;

const FIXTURES: [&str; 14] = [
    "llama_world1",
    "llama_tp2",
    "llama_pp2",
    "llama_dp2_zero2",
    "llama_dp2_zero3",
    "llama_tied_pp2",
    "llama_tp2_pp2_dp2",
    "mixtral_tp2_dp2",
    "mtp_llama_tp2_pp2",
    "apriel2_hybrid_world1",
    "apriel2_hybrid_tp2",
    "apriel2_hybrid_pp2",
    "apriel2_hybrid_dp2_zero3",
    "apriel2_hybrid_tp2_pp2_dp2",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/distributed")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("distributed").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(name: &str) -> DistributedCheckpoint {
    DistributedCheckpoint::open(&fixture(name).join("checkpoint")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One test per fixture and check.
macro_rules! per_fixture {
    ($fixtures:tt $($test:ident => $check:ident),* $(,)?) => {
        $(per_fixture!(@one $fixtures $test $check);)*
    };
    (@one [$($fixture:literal),* $(,)?] $test:ident $check:ident) => {
        #[rstest]
        fn $test(#[values($($fixture),*)] name: &str) {
            $check(name)
        }
    };
}

per_fixture! {
    [
        "llama_world1",
        "llama_tp2",
        "llama_pp2",
        "llama_dp2_zero2",
        "llama_dp2_zero3",
        "llama_tied_pp2",
        "llama_tp2_pp2_dp2",
        "mixtral_tp2_dp2",
        "mtp_llama_tp2_pp2",
        "apriel2_hybrid_world1",
        "apriel2_hybrid_tp2",
        "apriel2_hybrid_pp2",
        "apriel2_hybrid_dp2_zero3",
        "apriel2_hybrid_tp2_pp2_dp2",
    ]
    weights => weights_are_the_reference_s,
    optimizer_state => optimizer_state_is_the_reference_s,
    layout => the_layout_is_fast_llm_s,
    fast_llm_export => the_fast_llm_export_is_the_reference_s,
    optimizer_shard_export => an_optimizer_shard_exports_in_place_of_the_weights,
    detection => auto_detects_the_distributed_format,
}

// `mtp_llama_tp2_pp2` has no HF export: the reference's mtp_llama export does not run with
// transformers 5 (see the fixtures' README).
per_fixture! {
    [
        "llama_world1",
        "llama_tp2",
        "llama_pp2",
        "llama_dp2_zero2",
        "llama_dp2_zero3",
        "llama_tied_pp2",
        "llama_tp2_pp2_dp2",
        "mixtral_tp2_dp2",
        "apriel2_hybrid_world1",
        "apriel2_hybrid_tp2",
        "apriel2_hybrid_pp2",
        "apriel2_hybrid_dp2_zero3",
        "apriel2_hybrid_tp2_pp2_dp2",
    ]
    hf_export => the_hf_export_is_the_reference_s,
}

#[test]
fn every_fixture_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".md"))
        .collect();
    found.sort();
    let mut listed = FIXTURES.map(String::from).to_vec();
    listed.sort();
    assert_eq!(found, listed);
}

fn weights_are_the_reference_s(name: &str) {
    // `fast_llm/` is Fast-LLM's own conversion of the checkpoint to its state-dict format.
    let checkpoint = open(name);
    let reference = open_fast_llm(&fixture(name).join("fast_llm")).unwrap();
    let stored: Vec<String> = checkpoint
        .parameters()
        .map(|p| format!("{}/weights", p.parameter.name))
        .collect();
    let mut sorted = stored.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        reference.files.names().collect::<Vec<_>>(),
        "{name}: parameter set"
    );
    // A reused buffer, longer than some parameters and full of another's bytes, is overwritten.
    let mut reused = vec![0xA5; 1 << 12];
    for placed in checkpoint.parameters() {
        let parameter = &placed.parameter.name;
        let want = reference.files.get(&format!("{parameter}/weights")).unwrap();
        assert_eq!(
            (checkpoint.dtype(), placed.parameter.shape().as_slice()),
            (want.dtype, want.shape),
            "{name}: {parameter}"
        );
        let got = checkpoint.read(parameter, "weights").unwrap();
        assert!(got == want.data, "{name}: {parameter}: bytes differ");
        reused.fill(0xA5);
        reused = checkpoint.read_reusing(parameter, "weights", reused).unwrap();
        assert!(
            reused == want.data,
            "{name}: {parameter}: bytes differ in a reused buffer"
        );
    }
}

fn optimizer_state_is_the_reference_s(name: &str) {
    // Every trained parameter's exp_avgs / exp_avgs_sq, exported by Fast-LLM's own FSDPs.
    let checkpoint = open(name);
    assert_eq!(checkpoint.shard_names(), ["weights", "exp_avgs", "exp_avgs_sq"]);
    let bytes = std::fs::read(fixture(name).join("optimizer_state.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let mut compared = 0;
    for placed in checkpoint.parameters() {
        let parameter = &placed.parameter.name;
        for shard in ["exp_avgs", "exp_avgs_sq"] {
            let key = format!("{parameter}/{shard}");
            match (checkpoint.read(parameter, shard), reference.tensor(&key)) {
                (Ok(got), Ok(want)) => {
                    assert!(got == want.data(), "{name}: {key}: bytes differ");
                    compared += 1;
                }
                (Err(CheckpointError::Distributed(DistributedError::FrozenParameter { .. })), Err(_)) => {
                    assert!(placed.parameter.frozen, "{name}: {key}")
                }
                (got, want) => panic!(
                    "{name}: {key}: read {:?}, reference has it: {}",
                    got.err(),
                    want.is_ok()
                ),
            }
        }
    }
    assert_eq!(compared, reference.len(), "{name}: every reference tensor compared");
}

fn the_hf_export_is_the_reference_s(name: &str) {
    // One conversion, distributed → HF, equals Fast-LLM's own HF export of the checkpoint: the
    // same tensors bit for bit, and config.json but the transformers version it records.
    let reference = open_hf(&fixture(name).join("hf")).unwrap();
    let format = fastllm_core::detect(&reference.config).unwrap();
    let hf = scratch(&format!("{name}-hf")).join("hf");
    let options = Options {
        layout: HfLayout::V5,
        ..Options::default()
    };
    let input = fixture(name).join("checkpoint");
    let summary = convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &hf,
            to: Side::Hf(format),
        },
        &options,
    )
    .unwrap();
    assert_eq!(summary.skipped_shards, ["exp_avgs", "exp_avgs_sq"], "{name}");
    let ours = open_hf(&hf).unwrap();
    assert_same_tensors(name, &ours.files, &reference.files);
    let mut expected = reference.config.clone();
    expected.remove("transformers_version");
    assert_eq!(ours.config, expected, "{name}: config.json");
}

fn the_fast_llm_export_is_the_reference_s(name: &str) {
    // Distributed → Fast-LLM's state-dict format equals Fast-LLM's own conversion: the same
    // tensors bit for bit and the same metadata.yaml, but the `use_cuda` flag of the run that
    // converted it.
    let output = scratch(&format!("{name}-fast_llm")).join("fast_llm");
    let input = fixture(name).join("checkpoint");
    convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &output,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let (ours, reference) = (
        open_fast_llm(&output).unwrap(),
        open_fast_llm(&fixture(name).join("fast_llm")).unwrap(),
    );
    assert_same_tensors(name, &ours.files, &reference.files);
    let mut expected = reference.config.clone();
    let Some(Value::Map(config)) = expected.get_mut("config") else {
        panic!("{name}: no config")
    };
    let Some(Value::Map(distributed)) = config.get_mut("distributed") else {
        panic!("{name}: no config.distributed")
    };
    assert_eq!(distributed.remove("use_cuda"), Some(Value::Bool(false)));
    assert_eq!(ours.config, expected, "{name}: metadata.yaml");
}

fn an_optimizer_shard_exports_in_place_of_the_weights(name: &str) {
    // `--shard exp_avgs_sq`: each trained parameter's state, as Fast-LLM's FSDPs export it; a
    // frozen parameter has none, and is named.
    let checkpoint = open(name);
    let output = scratch(&format!("{name}-exp_avgs_sq")).join("exp_avgs_sq");
    let options = Options {
        shard: Some("exp_avgs_sq".into()),
        ..Options::default()
    };
    let input = fixture(name).join("checkpoint");
    let result = convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &output,
            to: Side::FastLlm,
        },
        &options,
    );
    let frozen: Vec<&str> = checkpoint
        .parameters()
        .filter(|p| p.parameter.frozen)
        .map(|p| p.parameter.name.as_str())
        .collect();
    if !frozen.is_empty() {
        let message = result.unwrap_err().to_string();
        for parameter in frozen {
            assert_names(
                &message,
                &[&format!("`{parameter}` is frozen"), "no `exp_avgs_sq` state"],
            );
        }
        assert!(!output.exists(), "{name}: nothing is written");
        return;
    }
    let summary = result.unwrap();
    assert_eq!(summary.skipped_shards, ["weights", "exp_avgs"], "{name}");
    let bytes = std::fs::read(fixture(name).join("optimizer_state.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let ours = open_fast_llm(&output).unwrap();
    assert_eq!(ours.files.len(), checkpoint.parameters().count(), "{name}");
    for tensor in ours.files.names() {
        let parameter = tensor.strip_suffix("/weights").unwrap();
        let want = reference.tensor(&format!("{parameter}/exp_avgs_sq")).unwrap();
        assert!(
            ours.files.get(tensor).unwrap().data == want.data(),
            "{name}: {parameter}: bytes differ"
        );
    }
}

fn auto_detects_the_distributed_format(name: &str) {
    let detected = |part: &str| detect(&fixture(name).join(part)).unwrap().name();
    assert_eq!(detected("checkpoint"), "fast_llm_distributed");
    assert_eq!(detected("fast_llm"), "fast_llm");
}

/// Same tensor names, dtypes, shapes and bytes.
fn assert_same_tensors(name: &str, ours: &FileSet, reference: &FileSet) {
    assert_eq!(ours.difference(reference), None, "{name}");
}

/// Fast-LLM's own placement, recorded by the fixture script from its model instantiated per rank.
fn the_layout_is_fast_llm_s(name: &str) {
    let checkpoint = open(name);
    let layout = checkpoint.layout();
    let text = std::fs::read_to_string(fixture(name).join("layout.json")).unwrap();
    let Value::Map(recorded) = Value::from_json_str(&text).unwrap() else {
        panic!()
    };
    let Some(Value::List(ranks)) = recorded.get("ranks") else {
        panic!()
    };
    assert_eq!(ranks.len(), layout.parallelism.world_size);
    let int = |v: &Value| match v {
        Value::Int(i) => *i as usize,
        other => panic!("{other:?}"),
    };
    for (rank, record) in ranks.iter().enumerate() {
        let record = record.as_map().unwrap();
        let sizes = record["sizes"].as_map().unwrap();
        for (shard, size) in sizes {
            assert_eq!(
                layout.shard_len(rank, ShardKind::of(shard)),
                int(size),
                "{name}: rank {rank}: {shard}"
            );
        }
        let Value::List(stages) = &record["stages"] else {
            panic!()
        };
        let ours = layout.rank_groups(rank, ShardKind::Weights);
        let recorded_groups: Vec<(usize, bool, &Value)> = stages
            .iter()
            .flat_map(|stage| {
                let stage = stage.as_map().unwrap();
                let index = int(&stage["index"]);
                let owned = stage["owned"] == Value::Bool(true);
                let Value::List(groups) = &stage["fsdps"] else { panic!() };
                groups.iter().map(move |g| (index, owned, g))
            })
            .collect();
        assert_eq!(ours.len(), recorded_groups.len(), "{name}: rank {rank}: groups");
        let pipeline = layout.parallelism.coordinates(rank).pipeline;
        let data = layout.parallelism.coordinates(rank).data;
        for ((stage, group, _), (index, owned, record)) in ours.iter().zip(recorded_groups) {
            let record = record.as_map().unwrap();
            let at = format!("{name}: rank {rank}: {}", group.name);
            assert_eq!(stage.index, index, "{at}");
            assert_eq!(stage.pipeline_rank == pipeline, owned, "{at}: owned");
            assert_eq!(Value::Str(group.name.clone()), record["name"], "{at}");
            assert_eq!(Value::Bool(!group.frozen), record["requires_grad"], "{at}");
            assert_eq!(group.shard_size, int(&record["shard_size"]), "{at}: shard size");
            assert_eq!(
                group.shard_pad(data, layout.parallelism.data_parallel),
                int(&record["shard_pad"]),
                "{at}: shard pad"
            );
            let Value::List(parameters) = &record["parameters"] else {
                panic!()
            };
            let recorded: Vec<(String, usize, usize, Vec<usize>)> = parameters
                .iter()
                .map(|p| {
                    let p = p.as_map().unwrap();
                    let Value::List(shape) = &p["local_shape"] else {
                        panic!()
                    };
                    let Value::Str(name) = &p["name"] else { panic!() };
                    (
                        name.clone(),
                        int(&p["begin"]),
                        int(&p["end"]),
                        shape.iter().map(int).collect(),
                    )
                })
                .collect();
            let placed: Vec<(String, usize, usize, Vec<usize>)> = group
                .parameters
                .iter()
                .map(|p| (p.parameter.name.clone(), p.begin, p.end, p.local_shape.clone()))
                .collect();
            assert_eq!(placed, recorded, "{at}");
        }
    }
}

/// A copy of fixture `name`'s checkpoint to corrupt.
fn corruptible(name: &str, label: &str) -> PathBuf {
    let dir = scratch(&format!("{name}-{label}"));
    for entry in std::fs::read_dir(fixture(name).join("checkpoint")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// Rewrites a rank file, letting `change` edit its tensors (name, dtype, shape, bytes).
fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<(String, String, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype().to_string(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    tensors.sort();
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
    write_safetensors(path, &BTreeMap::new(), &specs, |i, out| out.write_all(&tensors[i].3)).unwrap();
}

fn refusal(dir: &Path) -> String {
    match DistributedCheckpoint::open(dir) {
        Ok(_) => panic!("{}: opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
}

/// Rewrites a rank file's header metadata (`__metadata__`), its tensors as they are.
fn rewrite_header_metadata(path: &Path, change: impl FnOnce(&mut BTreeMap<String, String>)) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    change(&mut metadata);
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let specs: Vec<TensorSpec> = (tensors.iter())
        .map(|(name, view)| TensorSpec {
            name: name.clone(),
            dtype: view.dtype().to_string(),
            shape: view.shape().to_vec(),
        })
        .collect();
    let data: Vec<Vec<u8>> = tensors.iter().map(|(_, view)| view.data().to_vec()).collect();
    std::fs::remove_file(path).unwrap();
    write_safetensors(path, &metadata, &specs, |i, out| out.write_all(&data[i])).unwrap();
}

#[test]
fn a_rank_file_is_the_rank_its_header_says() {
    // Tensor-parallel halves have the same sizes: swapped, only their headers tell them apart.
    let dir = corruptible("llama_tp2", "swapped");
    let (zero, one, swap) = (
        dir.join("rank_0.safetensors"),
        dir.join("rank_1.safetensors"),
        dir.join("swap"),
    );
    std::fs::rename(&zero, &swap).unwrap();
    std::fs::rename(&one, &zero).unwrap();
    std::fs::rename(&swap, &one).unwrap();
    assert_names(
        &refusal(&dir),
        &["rank_0.safetensors", "says it is rank 1", "its name says rank 0"],
    );

    let dir = corruptible("llama_tp2", "other-world");
    rewrite_header_metadata(&dir.join("rank_1.safetensors"), |metadata| {
        let config = metadata.get_mut("config").unwrap();
        *config = config.replace("\n  world_size: 2\n", "\n  world_size: 4\n");
    });
    assert_names(
        &refusal(&dir),
        &["rank_1.safetensors", "a world of 4 ranks", "metadata.yaml's is 2"],
    );

    let dir = corruptible("llama_tp2", "unreadable-rank");
    rewrite_header_metadata(&dir.join("rank_1.safetensors"), |metadata| {
        metadata.insert("config".into(), "distributed: [1, 2]".into());
    });
    assert_names(
        &refusal(&dir),
        &[
            "rank_1.safetensors",
            "`config.distributed`: expected a mapping, found list",
        ],
    );
}

#[test]
fn a_rank_file_without_an_identity_is_its_name_s_as_in_fast_llm() {
    // Fast-LLM opens `rank_<r>.safetensors` for rank r and never reads the header metadata.
    let dir = corruptible("llama_tp2", "anonymous");
    for rank in 0..2 {
        rewrite_header_metadata(
            &dir.join(fastllm_checkpoint::distributed::rank_file(rank)),
            |metadata| metadata.clear(),
        );
    }
    let anonymous = DistributedCheckpoint::open(&dir).unwrap();
    let reference = open("llama_tp2");
    for placed in reference.parameters() {
        let name = &placed.parameter.name;
        assert_eq!(
            anonymous.read(name, "weights").unwrap(),
            reference.read(name, "weights").unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_missing_rank_file_is_named() {
    let dir = corruptible("llama_tp2_pp2_dp2", "missing");
    std::fs::remove_file(dir.join("rank_5.safetensors")).unwrap();
    assert_names(&refusal(&dir), &["`rank_5.safetensors` is missing", "world size is 8"]);
}

#[test]
fn a_rank_file_beyond_the_world_is_named() {
    // A stale file from a larger run: the layout of metadata.yaml has no place for its values, and
    // converting without it would silently drop whatever the user meant it to hold.
    let dir = corruptible("llama_tp2_pp2_dp2", "beyond");
    std::fs::copy(dir.join("rank_0.safetensors"), dir.join("rank_8.safetensors")).unwrap();
    assert_names(
        &refusal(&dir),
        &["`rank_8.safetensors`", "world size is 8", "rank_0..rank_7"],
    );
}

#[cfg(unix)]
#[test]
fn a_rank_path_that_is_not_a_file_is_named_as_such() {
    let dir = corruptible("llama_tp2_pp2_dp2", "not-a-file");
    std::fs::remove_file(dir.join("rank_3.safetensors")).unwrap();
    std::fs::create_dir(dir.join("rank_3.safetensors")).unwrap();
    assert_names(&refusal(&dir), &["`rank_3.safetensors` is not a regular file"]);
}

#[rstest]
#[case("weights", 1)]
#[case("exp_avgs_sq", -1)]
fn a_wrong_shard_size_is_named(#[case] shard: &str, #[case] change: isize) {
    let dir = corruptible("llama_dp2_zero3", &format!("size-{shard}"));
    rewrite(&dir.join("rank_1.safetensors"), |tensors| {
        let tensor = tensors.iter_mut().find(|t| t.0 == format!("{shard}_shard")).unwrap();
        let len = (tensor.2[0] as isize + change) as usize;
        tensor.2 = vec![len];
        tensor.3.resize(len * 4, 0);
    });
    assert_names(
        &refusal(&dir),
        &[
            "rank_1.safetensors",
            &format!("`{shard}_shard`"),
            "the layout implies",
            "stage_0",
        ],
    );
}

#[test]
fn nonzero_padding_is_named_with_its_parameter() {
    // Data rank 1 of a 2-way ZeRO layout holds the end of each group, padding included.
    let name = "llama_dp2_zero3";
    let checkpoint = open(name);
    let layout = checkpoint.layout();
    let (stage, group, offset) = layout
        .rank_groups(1, ShardKind::Weights)
        .into_iter()
        .find(|(_, g, _)| g.shard_pad(1, 2) > 0)
        .expect("a padded group");
    let last = group.parameters.last().unwrap().parameter.name.clone();
    let position = offset + group.shard_size - 1;
    let (stage, group) = (stage.index, group.name.clone());
    let dir = corruptible(name, "padding");
    rewrite(&dir.join("rank_1.safetensors"), |tensors| {
        let weights = tensors.iter_mut().find(|t| t.0 == "weights_shard").unwrap();
        weights.3[position * 4..position * 4 + 4].copy_from_slice(&1.0f32.to_le_bytes());
    });
    let message = refusal(&dir);
    assert_names(
        &message,
        &[
            "rank_1.safetensors",
            "`weights_shard`",
            &group,
            &format!("after `{last}`"),
            &format!("at element {position}"),
        ],
    );
    assert_eq!(group, format!("stage_{stage}"));
}

#[test]
fn missing_extra_and_mistyped_shard_tensors_are_named() {
    let name = "llama_world1";
    let dir = corruptible(name, "missing-shard");
    rewrite(&dir.join("rank_0.safetensors"), |tensors| {
        tensors.retain(|t| t.0 != "exp_avgs_shard")
    });
    assert_names(&refusal(&dir), &["rank_0.safetensors", "no tensor `exp_avgs_shard`"]);

    let dir = corruptible(name, "extra");
    rewrite(&dir.join("rank_0.safetensors"), |tensors| {
        tensors.push(("grads_shard".into(), "F32".into(), vec![1], vec![0; 4]))
    });
    assert_names(
        &refusal(&dir),
        &["rank_0.safetensors", "unexpected tensor `grads_shard`"],
    );

    let dir = corruptible(name, "dtype");
    rewrite(&dir.join("rank_0.safetensors"), |tensors| {
        let weights = tensors.iter_mut().find(|t| t.0 == "weights_shard").unwrap();
        weights.1 = "I32".into();
    });
    assert_names(
        &refusal(&dir),
        &["rank_0.safetensors", "`weights_shard` is I32", "is F32"],
    );
}

#[rstest]
#[case(
    "llama_dp2_zero2",
    "format: distributed",
    "format: fast_llm",
    "`format` is `fast_llm`"
)]
#[case(
    "llama_dp2_zero2",
    "fast_llm_version: 0.4.0",
    "fast_llm_version: 0.9.0",
    "only checkpoints of Fast-LLM 0.3.0 to 0.4.0"
)]
#[case(
    "llama_tp2",
    "tensor_parallel: 2",
    "tensor_parallel: 4",
    "not a multiple of tensor_parallel"
)]
#[case("llama_dp2_zero2", "num_blocks: 2", "num_blocks: 3", "`weights_shard` has shape")]
#[case(
    "llama_tp2",
    "vocab_size: 32",
    "vocab_size: 4611686018427387904",
    "size does not fit in memory addresses"
)]
#[case(
    "llama_tp2",
    "vocab_size: 32",
    "vocab_size: 33",
    "an axis of 33 does not split over 2 tensor ranks"
)]
#[case(
    "llama_pp2",
    "  distributed:",
    "  multi_stage:\n    layers_per_stage: 5000\n  distributed:",
    "1 stages for 2 pipeline ranks"
)]
fn metadata_that_does_not_match_is_refused(
    #[case] name: &str,
    #[case] from: &str,
    #[case] to: &str,
    #[case] message: &str,
) {
    let dir = corruptible(name, &to.replace([':', ' ', '\n'], "_"));
    let text = std::fs::read_to_string(dir.join("metadata.yaml")).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(dir.join("metadata.yaml"), text.replacen(from, to, 1)).unwrap();
    assert_names(&refusal(&dir), &[message]);
}

#[test]
fn reads_name_unknown_parameters_shards_and_frozen_states() {
    let checkpoint = open("llama_tp2_pp2_dp2");
    let error = checkpoint.read("decoder.9.mlp.layer_1.weight", "weights").unwrap_err();
    assert_names(&error.to_string(), &["no parameter `decoder.9.mlp.layer_1.weight`"]);
    let error = checkpoint.read("head.output_weights", "grads").unwrap_err();
    assert_names(
        &error.to_string(),
        &["no shard `grads`", "weights, exp_avgs, exp_avgs_sq"],
    );
    // The fixture freezes layer_2 (lr_scale 0): it has weights only.
    let error = checkpoint.read("decoder.0.mlp.layer_2.weight", "exp_avgs").unwrap_err();
    assert_names(
        &error.to_string(),
        &["`decoder.0.mlp.layer_2.weight` is frozen", "no `exp_avgs` state"],
    );
    assert!(checkpoint.read("decoder.0.mlp.layer_2.weight", "weights").is_ok());
    let mut short = vec![0; 3];
    let error = checkpoint
        .read_into("head.output_weights", "weights", &mut short)
        .unwrap_err();
    assert_names(&error.to_string(), &["output buffer of 3 bytes"]);
}

#[test]
fn tied_weights_are_stored_once_and_copied_to_the_head_s_pipeline_rank() {
    let checkpoint = open("llama_tied_pp2");
    let layout = checkpoint.layout();
    assert!(layout.find("head.output_weights").is_none());
    // The embeddings' stage (0, pipeline rank 0) is also on pipeline rank 1, which has the head.
    assert_eq!(layout.stages_on_device(0), [0, 2]);
    assert_eq!(layout.stages_on_device(1), [0, 1, 3]);
    let pieces = layout
        .pieces("embeddings.word_embeddings_weight", ShardKind::Weights)
        .unwrap();
    assert!(pieces.iter().all(|p| p.rank == 0), "read from the owner: {pieces:?}");
}

#[test]
fn mtp_llama_without_a_reference_hf_export_reads_back_as_the_reference_s_state_dict() {
    // The reference cannot export mtp_llama to HF (see the fixtures' README): our HF export, read
    // back, holds exactly the parameters of the reference's Fast-LLM conversion.
    let name = "mtp_llama_tp2_pp2";
    let dir = scratch(&format!("{name}-through-hf"));
    let (hf, back) = (dir.join("hf"), dir.join("back"));
    let mtp_llama = Side::Hf(fastllm_core::find("mtp_llama").unwrap());
    let input = fixture(name).join("checkpoint");
    convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &hf,
            to: mtp_llama,
        },
        &Options::default(),
    )
    .unwrap();
    convert(
        &Conversion {
            input: &hf,
            from: mtp_llama,
            output: &back,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let reference = open_fast_llm(&fixture(name).join("fast_llm")).unwrap();
    assert_same_tensors(name, &open_fast_llm(&back).unwrap().files, &reference.files);
}
