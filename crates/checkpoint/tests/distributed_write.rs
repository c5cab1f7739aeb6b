//! Writing Fast-LLM distributed checkpoints, against the rank files Fast-LLM itself wrote
//! (`tests/data/distributed/`): from each fixture's world-size-1 state dict (Fast-LLM's own
//! `fast_llm/` conversion plus its exported optimizer state), the checkpoint written in that
//! fixture's layout has Fast-LLM's rank files, bit for bit, and its metadata; re-sharding through
//! another layout changes nothing; and `--optimizer-state` exports what Fast-LLM's FSDPs export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, ConversionError, Options, Side, convert};
use fastllm_checkpoint::distributed::LayoutSpec;
use fastllm_checkpoint::{open_fast_llm, open_hf};
use fastllm_config::{Map, Value};
use fastllm_core::HfLayout;
use rstest::rstest;
use safetensors::SafeTensors;

use fastllm_apriel as _;
use fastllm_llama as _;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/distributed")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("distributed_write")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn yaml_map(text: &str) -> Map {
    match Value::from_yaml_str(text).unwrap() {
        Value::Map(map) => map,
        other => panic!("not a mapping: {other:?}"),
    }
}

fn metadata_yaml(dir: &Path) -> Map {
    yaml_map(&std::fs::read_to_string(dir.join("metadata.yaml")).unwrap())
}

fn get<'a>(map: &'a Map, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = map.get(parts.next()?)?;
    for part in parts {
        let Value::Map(inner) = value else { return None };
        value = inner.get(part)?;
    }
    Some(value)
}

/// The layout of a fixture's checkpoint, read from its metadata.yaml as `--layout` would say it.
fn layout_of(name: &str) -> LayoutSpec {
    let metadata = metadata_yaml(&fixture(name).join("checkpoint"));
    let int = |path: &str| match get(&metadata, path) {
        Some(Value::Int(i)) => *i as usize,
        None => 1,
        other => panic!("{name}: {path}: {other:?}"),
    };
    let (world, tp, pp) = (
        int("config.distributed.world_size"),
        int("config.distributed.tensor_parallel"),
        int("config.distributed.pipeline_parallel"),
    );
    LayoutSpec {
        tensor_parallel: tp,
        pipeline_parallel: pp,
        data_parallel: world / (tp * pp),
        sequence_data_parallel: int("config.distributed.sequence_data_parallel"),
        pipeline_first: get(&metadata, "config.distributed.pipeline_first") == Some(&Value::Bool(true)),
        zero_stage: match get(&metadata, "config.multi_stage.zero_stage") {
            Some(Value::Int(i)) => Some(*i as u8),
            _ => None,
        },
        layers_per_stage: match get(&metadata, "config.multi_stage.layers_per_stage") {
            Some(Value::Float(f)) => Some(*f),
            _ => None,
        },
    }
}

/// A Fast-LLM state-dict checkpoint holding a fixture's weights and optimizer state, from the
/// reference's files alone: its `fast_llm/` conversion and its exported optimizer state, listed
/// in one metadata.yaml.
fn state_dict_with_optimizer(name: &str) -> PathBuf {
    let dir = scratch(&format!("{name}-state-dict")).join("input");
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixture(name);
    std::fs::copy(
        source.join("fast_llm/model_0.safetensors"),
        dir.join("model_0.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        source.join("optimizer_state.safetensors"),
        dir.join("model_1.safetensors"),
    )
    .unwrap();
    let mut metadata = metadata_yaml(&source.join("fast_llm"));
    let bytes = std::fs::read(source.join("optimizer_state.safetensors")).unwrap();
    let optimizer = SafeTensors::deserialize(&bytes).unwrap();
    let Some(Value::Map(free_form)) = metadata.get_mut("metadata") else {
        panic!("{name}")
    };
    let Some(Value::Map(index)) = free_form.get_mut("state_index") else {
        panic!("{name}")
    };
    for tensor in optimizer.names() {
        index.insert(tensor.to_string(), Value::Str("model_1.safetensors".into()));
    }
    metadata.insert(
        "shards".into(),
        Value::List(
            ["weights", "exp_avgs", "exp_avgs_sq"]
                .map(|s| Value::Str(s.into()))
                .to_vec(),
        ),
    );
    std::fs::write(dir.join("metadata.yaml"), Value::Map(metadata).to_yaml()).unwrap();
    std::fs::write(dir.join("ok"), "").unwrap();
    dir
}

/// The conversion of `input` (in format `from`) into a distributed checkpoint at `output`.
fn into_distributed<'a>(input: &'a Path, from: Side, output: &'a Path) -> Conversion<'a> {
    Conversion {
        input,
        from,
        output,
        to: Side::FastLlmDistributed,
    }
}

fn to_distributed(input: &Path, from: Side, output: &Path, layout: LayoutSpec) -> Result<(), ConversionError> {
    let options = Options {
        parallel: Some(layout),
        optimizer_state: true,
        ..Options::default()
    };
    convert(&into_distributed(input, from, output), &options).map(|_| ())
}

/// A rank file's tensors (name → dtype, shape, bytes) and its header metadata, each value parsed
/// as the YAML Fast-LLM wrote it in (key order and YAML style aside).
type RankFile = (BTreeMap<String, (String, Vec<usize>, Vec<u8>)>, BTreeMap<String, Value>);

fn rank_file(path: &Path) -> RankFile {
    let bytes = std::fs::read(path).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let contents = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (
                    format!("{:?}", view.dtype()),
                    view.shape().to_vec(),
                    view.data().to_vec(),
                ),
            )
        })
        .collect();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(key, text)| (key, Value::from_yaml_str(&text).unwrap()))
        .collect();
    (contents, metadata)
}

/// Every rank file of `ours` has the reference's tensors bit for bit and its header metadata;
/// `metadata.yaml` too. Without `trainer_state`, the trainer's `metadata` is not compared (a state
/// dict does not hold it).
fn assert_same_checkpoint(name: &str, ours: &Path, reference: &Path, trainer_state: bool) {
    let world = match get(&metadata_yaml(reference), "config.distributed.world_size") {
        Some(Value::Int(i)) => *i as usize,
        other => panic!("{other:?}"),
    };
    let mut files: Vec<String> = std::fs::read_dir(ours)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = (0..world).map(|r| format!("rank_{r}.safetensors")).collect();
    expected.push("metadata.yaml".into());
    expected.sort();
    assert_eq!(files, expected, "{name}: files");
    let strip = |mut map: BTreeMap<String, Value>| {
        if !trainer_state {
            map.remove("metadata");
        }
        map
    };
    for rank in 0..world {
        let file = format!("rank_{rank}.safetensors");
        let (our_tensors, our_header) = rank_file(&ours.join(&file));
        let (their_tensors, their_header) = rank_file(&reference.join(&file));
        assert_eq!(
            our_tensors.keys().collect::<Vec<_>>(),
            their_tensors.keys().collect::<Vec<_>>(),
            "{name}: {file}"
        );
        for (tensor, ours) in &our_tensors {
            assert!(ours == &their_tensors[tensor], "{name}: {file}: `{tensor}` differs");
        }
        assert_eq!(
            strip(our_header),
            strip(their_header),
            "{name}: {file}: header metadata"
        );
    }
    let as_tree = |map: Map| map.into_iter().collect::<BTreeMap<_, _>>();
    assert_eq!(
        strip(as_tree(metadata_yaml(ours))),
        strip(as_tree(metadata_yaml(reference))),
        "{name}: metadata.yaml"
    );
}

#[rstest]
fn written_as_fast_llm_writes_it(
    #[values(
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
        "apriel2_hybrid_tp2_pp2_dp2"
    )]
    name: &str,
) {
    let input = state_dict_with_optimizer(name);
    let output = scratch(&format!("{name}-written")).join("checkpoint");
    to_distributed(&input, Side::FastLlm, &output, layout_of(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_same_checkpoint(name, &output, &fixture(name).join("checkpoint"), false);
}

#[rstest]
fn resharding_through_one_rank_gives_fast_llm_s_files_back(
    #[values(
        "llama_tp2",
        "llama_pp2",
        "llama_dp2_zero3",
        "llama_tied_pp2",
        "llama_tp2_pp2_dp2",
        "mixtral_tp2_dp2",
        "mtp_llama_tp2_pp2",
        "apriel2_hybrid_tp2",
        "apriel2_hybrid_tp2_pp2_dp2"
    )]
    name: &str,
) {
    let dir = scratch(&format!("{name}-reshard"));
    let (single, back) = (dir.join("world1"), dir.join("back"));
    let input = fixture(name).join("checkpoint");
    to_distributed(&input, Side::FastLlmDistributed, &single, LayoutSpec::default()).unwrap();
    to_distributed(&single, Side::FastLlmDistributed, &back, layout_of(name)).unwrap();
    assert_same_checkpoint(name, &back, &input, true);
}

#[rstest]
fn the_optimizer_state_exports_as_fast_llm_s_fsdps_export_it(
    #[values("llama_world1", "llama_tp2_pp2_dp2", "mixtral_tp2_dp2", "apriel2_hybrid_tp2_pp2_dp2")] name: &str,
) {
    let output = scratch(&format!("{name}-optimizer")).join("fast_llm");
    let options = Options {
        optimizer_state: true,
        ..Options::default()
    };
    let input = fixture(name).join("checkpoint");
    let summary = convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &output,
            to: Side::FastLlm,
        },
        &options,
    )
    .unwrap();
    assert!(
        summary.skipped_shards.is_empty(),
        "{name}: {:?}",
        summary.skipped_shards
    );
    let ours = open_fast_llm(&output).unwrap();
    let weights = open_fast_llm(&fixture(name).join("fast_llm")).unwrap();
    let bytes = std::fs::read(fixture(name).join("optimizer_state.safetensors")).unwrap();
    let states = SafeTensors::deserialize(&bytes).unwrap();
    let mut expected: Vec<String> = weights.files.names().map(String::from).collect();
    expected.extend(states.names().into_iter().map(String::from));
    expected.sort();
    let mut found: Vec<String> = ours.files.names().map(String::from).collect();
    found.sort();
    // A frozen parameter has weights and no state, as in Fast-LLM's FSDPs.
    assert_eq!(found, expected, "{name}");
    for tensor in &found {
        let want = match weights.files.get(tensor) {
            Ok(t) => t.data,
            Err(_) => states.tensor(tensor).unwrap().data().to_vec(),
        };
        assert!(
            ours.files.get(tensor).unwrap().data == want,
            "{name}: `{tensor}` differs"
        );
    }
    assert_eq!(
        get(&ours.config, "shards"),
        Some(&Value::List(
            ["weights", "exp_avgs", "exp_avgs_sq"]
                .map(|s| Value::Str(s.into()))
                .to_vec()
        )),
        "{name}"
    );
    // And it reads back, state included, into Fast-LLM's layout.
    let again = scratch(&format!("{name}-optimizer-back")).join("checkpoint");
    to_distributed(&output, Side::FastLlm, &again, layout_of(name)).unwrap();
    assert_same_checkpoint(name, &again, &input, false);
}

/// `(A, B)`: fixture A re-sharded to layout B, then to HF, equals A converted to HF.
#[rstest]
#[case("llama_tp2", "tp=1,pp=2,dp=2,zero=3")]
#[case("llama_tp2_pp2_dp2", "tp=2,dp=2,zero=2")]
#[case("mixtral_tp2_dp2", "pp=2,dp=2,pipeline_first")]
#[case("apriel2_hybrid_tp2_pp2_dp2", "tp=2,pp=3,zero=1")]
#[case("apriel2_hybrid_world1", "tp=2,pp=2,dp=2,zero=3,sdp=2,layers_per_stage=2")]
// More rank files than the writer gives direct writers to: the rest are written buffered.
#[case("llama_tp2_pp2_dp2", "tp=2,pp=2,dp=3,zero=3")]
fn resharded_then_exported_equals_exported(#[case] name: &str, #[case] layout: &str) {
    let dir = scratch(&format!("{name}-{layout}"));
    let reference = open_hf(&fixture(name).join("hf")).unwrap();
    let format = fastllm_core::detect(&reference.config).unwrap();
    let options = Options {
        layout: HfLayout::V5,
        ..Options::default()
    };
    let input = fixture(name).join("checkpoint");
    let resharded = dir.join("resharded");
    to_distributed(&input, Side::FastLlmDistributed, &resharded, layout.parse().unwrap()).unwrap();
    let (direct, through) = (dir.join("direct"), dir.join("through"));
    convert(
        &Conversion {
            input: &input,
            from: Side::FastLlmDistributed,
            output: &direct,
            to: Side::Hf(format),
        },
        &options,
    )
    .unwrap();
    convert(
        &Conversion {
            input: &resharded,
            from: Side::FastLlmDistributed,
            output: &through,
            to: Side::Hf(format),
        },
        &options,
    )
    .unwrap();
    let (direct, through) = (open_hf(&direct).unwrap(), open_hf(&through).unwrap());
    assert_eq!(through.files.difference(&direct.files), None, "{name} via {layout}");
    assert_eq!(through.config, direct.config, "{name} via {layout}");
}

#[rstest]
#[case("llama_tp2_pp2_dp2", "tp=2,pp=2,dp=2,zero=3")]
#[case("mixtral_tp2_dp2", "tp=2,dp=2")]
#[case("apriel2_hybrid_tp2_pp2_dp2", "tp=2,pp=2,dp=2,zero=3,pipeline_first")]
#[case("mixtral_tp2_dp2", "tp=2,dp=8,zero=2")]
fn hf_to_distributed_to_hf_is_bit_identical(#[case] name: &str, #[case] layout: &str) {
    let dir = scratch(&format!("{name}-hf-{layout}"));
    let hf = fixture(name).join("hf");
    let reference = open_hf(&hf).unwrap();
    let format = fastllm_core::detect(&reference.config).unwrap();
    let distributed = dir.join("distributed");
    let options = Options {
        parallel: Some(layout.parse().unwrap()),
        ..Options::default()
    };
    let summary = convert(&into_distributed(&hf, Side::Hf(format), &distributed), &options).unwrap();
    assert_eq!(summary.files.len(), 1 + options.parallel.as_ref().unwrap().world_size());
    let back = dir.join("back");
    let options = Options {
        layout: HfLayout::V5,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &distributed,
            from: Side::FastLlmDistributed,
            output: &back,
            to: Side::Hf(format),
        },
        &options,
    )
    .unwrap();
    let back = open_hf(&back).unwrap();
    assert_eq!(back.files.difference(&reference.files), None, "{name}");
    let mut expected = reference.config.clone();
    expected.remove("transformers_version");
    assert_eq!(back.config, expected, "{name}: config.json");
}

/// From Fast-LLM's own HF export of a fixture, the weights shards of every rank are Fast-LLM's
/// (the HF import path into the layout: fused and transposed weights, tied copies).
#[rstest]
fn from_the_hf_export_the_weight_shards_are_fast_llm_s(
    #[values(
        "llama_tp2",
        "llama_pp2",
        "llama_dp2_zero3",
        "llama_tied_pp2",
        "mixtral_tp2_dp2",
        "apriel2_hybrid_tp2",
        "apriel2_hybrid_pp2",
        "apriel2_hybrid_tp2_pp2_dp2"
    )]
    name: &str,
) {
    let hf = fixture(name).join("hf");
    let format = fastllm_core::detect(&open_hf(&hf).unwrap().config).unwrap();
    let output = scratch(&format!("{name}-from-hf")).join("checkpoint");
    let options = Options {
        parallel: Some(layout_of(name)),
        ..Options::default()
    };
    let summary = convert(&into_distributed(&hf, Side::Hf(format), &output), &options).unwrap();
    assert!(summary.skipped_shards.is_empty(), "{name}");
    let reference = fixture(name).join("checkpoint");
    for rank in 0..layout_of(name).world_size() {
        let file = format!("rank_{rank}.safetensors");
        let (ours, _) = rank_file(&output.join(&file));
        let (theirs, _) = rank_file(&reference.join(&file));
        assert_eq!(ours.keys().collect::<Vec<_>>(), ["weights_shard"], "{name}: {file}");
        assert!(
            ours["weights_shard"] == theirs["weights_shard"],
            "{name}: {file}: weights differ"
        );
    }
}

#[test]
fn a_dry_run_plans_the_rank_files_and_writes_nothing() {
    let output = scratch("dry-run").join("checkpoint");
    let options = Options {
        parallel: Some("tp=2,pp=2,dp=2".parse().unwrap()),
        optimizer_state: true,
        dry_run: true,
        ..Options::default()
    };
    let input = fixture("llama_world1").join("checkpoint");
    let summary = convert(&into_distributed(&input, Side::FastLlmDistributed, &output), &options).unwrap();
    assert!(!output.exists());
    assert_eq!(summary.tensors.len(), 8 * 3);
    assert_eq!(summary.tensors[0].name, "rank_0.safetensors:weights_shard");
    // Every rank's shards: the same sizes the written files have.
    let written = scratch("dry-run-written").join("checkpoint");
    let options = Options {
        dry_run: false,
        ..options
    };
    convert(&into_distributed(&input, Side::FastLlmDistributed, &written), &options).unwrap();
    for tensor in &summary.tensors {
        let (file, shard) = tensor.name.split_once(':').unwrap();
        let (contents, _) = rank_file(&written.join(file));
        assert_eq!(contents[shard].1, tensor.shape, "{}", tensor.name);
        assert_eq!(contents[shard].2.len() as u64, tensor.bytes, "{}", tensor.name);
    }
}

/// A bfloat16 HF model becomes float32 shards holding exactly its values: Fast-LLM's rank files
/// with every weight rounded to bfloat16.
#[rstest]
fn a_bfloat16_model_is_widened_exactly(#[values("mixtral_tp2_dp2", "apriel2_hybrid_tp2_pp2_dp2")] name: &str) {
    use fastllm_checkpoint::cast::{Dtype, bf16_to_f32, f32_to_bf16};
    let dir = scratch(&format!("{name}-bf16"));
    let hf = fixture(name).join("hf");
    let format = fastllm_core::detect(&open_hf(&hf).unwrap().config).unwrap();
    let bf16 = dir.join("bf16");
    let options = Options {
        dtype: Some(Dtype::BF16),
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &hf,
            from: Side::Hf(format),
            output: &bf16,
            to: Side::Hf(format),
        },
        &options,
    )
    .unwrap();
    let output = dir.join("checkpoint");
    let options = Options {
        parallel: Some(layout_of(name)),
        ..Options::default()
    };
    convert(&into_distributed(&bf16, Side::Hf(format), &output), &options).unwrap();
    let reference = fixture(name).join("checkpoint");
    for rank in 0..layout_of(name).world_size() {
        let file = format!("rank_{rank}.safetensors");
        let (ours, _) = rank_file(&output.join(&file));
        let (theirs, _) = rank_file(&reference.join(&file));
        let (dtype, shape, bytes) = &ours["weights_shard"];
        assert_eq!(
            (dtype.as_str(), shape),
            ("F32", &theirs["weights_shard"].1),
            "{name}: {file}"
        );
        let rounded: Vec<u8> = theirs["weights_shard"]
            .2
            .chunks_exact(4)
            .flat_map(|b| bf16_to_f32(f32_to_bf16(u32::from_le_bytes(b.try_into().unwrap()))).to_le_bytes())
            .collect();
        assert!(*bytes == rounded, "{name}: {file}: weights differ");
    }
}

/// A conversion stopped by its progress callback, at any point, leaves nothing; the callback is
/// called as the rank files are written.
#[rstest]
#[case::before_the_first_write(0)]
#[case::midway(1)]
fn a_stopped_write_leaves_nothing(#[case] stop_after: usize) {
    use std::ops::ControlFlow;
    let dir = scratch(&format!("stopped-{stop_after}"));
    let output = dir.join("checkpoint");
    let options = Options {
        parallel: Some("tp=2,pp=2,dp=2,zero=3".parse().unwrap()),
        optimizer_state: true,
        ..Options::default()
    };
    let input = fixture("llama_world1").join("checkpoint");
    let mut calls = Vec::new();
    let result = fastllm_checkpoint::convert::convert_cancellable(
        &into_distributed(&input, Side::FastLlmDistributed, &output),
        &options,
        &mut |done, total| {
            calls.push((done, total));
            if calls.len() > stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(
        matches!(
            result,
            Err(ConversionError::Checkpoint(
                fastllm_checkpoint::CheckpointError::Interrupted
            ))
        ),
        "{:?}",
        result.err()
    );
    assert_eq!(calls.len(), stop_after + 1);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "left behind");
    // Unstopped, it is called for every write, up to the total.
    let mut last = (0, 0);
    fastllm_checkpoint::convert::convert_cancellable(
        &into_distributed(&input, Side::FastLlmDistributed, &output),
        &options,
        &mut |done, total| {
            assert!(done >= last.0);
            last = (done, total);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(last.1 > 0 && last.0 == last.1, "{last:?}");
}

/// An HF input cut after the conversion opened it, while its rank slices are streamed from it:
/// an error naming the file, and nothing at the output (each slice is read through the checked
/// `pread` place, never through a map).
#[rstest]
fn an_hf_input_cut_while_streamed_is_an_error_naming_it(#[values("llama_tp2", "llama_dp2_zero3")] name: &str) {
    let hf = scratch(&format!("{name}-cut-input"));
    for entry in std::fs::read_dir(fixture(name).join("hf")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), hf.join(entry.file_name())).unwrap();
    }
    let format = fastllm_core::detect(&open_hf(&hf).unwrap().config).unwrap();
    let output = scratch(&format!("{name}-cut-output")).join("checkpoint");
    let weights = hf.join("model_0.safetensors");
    let size = std::fs::metadata(&weights).unwrap().len();
    let options = Options {
        parallel: Some(layout_of(name)),
        ..Options::default()
    };
    let mut cut = false;
    let result = fastllm_checkpoint::convert::convert_cancellable(
        &into_distributed(&hf, Side::Hf(format), &output),
        &options,
        // Before the first write, every header read: the tensors are read after the cut.
        &mut |_, _| {
            if !std::mem::replace(&mut cut, true) {
                let file = std::fs::OpenOptions::new().write(true).open(&weights).unwrap();
                file.set_len(size / 2).unwrap();
            }
            std::ops::ControlFlow::Continue(())
        },
    );
    let message = result.expect_err("the input was cut").to_string();
    assert!(message.contains(&weights.display().to_string()), "{message}");
    assert!(!output.exists(), "{message}");
}
