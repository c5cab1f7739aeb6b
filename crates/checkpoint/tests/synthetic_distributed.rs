//! Parallel layouts no fixture has, on synthetic training checkpoints
//! ([`write_synthetic_distributed`]): each converts to the Fast-LLM state dict holding exactly the
//! values written, and to HF exactly as the single-rank checkpoint of the same values does.
//!
//! The writer places values with the same pieces the reader reads, so this checks the streaming
//! conversion and that the pieces of every layout cover each tensor once; that the pieces are
//! Fast-LLM's is checked against the reference's fixtures (`distributed.rs`).

use std::path::{Path, PathBuf};

use fastllm_checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_checkpoint::synthetic::{synthetic_tensor, write_synthetic_distributed};
use fastllm_checkpoint::{open_fast_llm, open_hf};
use fastllm_config::{BaseModelConfig, Map, ModelKind, Value, load_base_model};
use rstest::rstest;

use fastllm_llama as _;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("synthetic_distributed")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A llama with 3 blocks, every size divisible by 4 tensor ranks.
fn llama() -> BaseModelConfig {
    let config = r#"{"hidden_size": 32, "embeddings": {"vocab_size": 64},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 3, "block": {
            "mixer": {"heads": 8, "head_groups": 4, "head_size": 4, "add_linear_biases": false,
                      "rotary": {"type": "default"}},
            "mlp": {"intermediate_size": 64, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm"}}}}"#;
    load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap()
}

fn parallel(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

#[rstest]
#[case::tensor_4("tp4", r#"{"distributed": {"world_size": 4, "tensor_parallel": 4}}"#)]
#[case::data_3_zero_3("dp3", r#"{"distributed": {"world_size": 3}, "multi_stage": {"zero_stage": 3}}"#)]
#[case::pipeline_3("pp3", r#"{"distributed": {"world_size": 3, "pipeline_parallel": 3}}"#)]
#[case::tensor_pipeline_data(
    "tp2_pp2_dp2",
    r#"{"distributed": {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2}}"#
)]
#[case::sequence_data_parallel(
    "tp2_dp4_sdp2",
    r#"{"distributed": {"world_size": 8, "tensor_parallel": 2, "sequence_data_parallel": 2},
        "multi_stage": {"layers_per_stage": 2}}"#
)]
#[case::bfloat16_shards(
    "dp2_bf16",
    r#"{"distributed": {"world_size": 2, "optimization_dtype": "bfloat16"}}"#
)]
fn a_layout_converts_to_the_values_written(#[case] label: &str, #[case] layout: &str) {
    let config = llama();
    let dir = scratch(label);
    let checkpoint = dir.join("checkpoint");
    let written =
        write_synthetic_distributed(&config, &parallel(layout), &checkpoint, &["weights", "exp_avgs"]).unwrap();
    let element = fastllm_checkpoint::dtype_size(written.parallelism.shard_dtype).unwrap();
    let fast_llm = dir.join("fast_llm");
    convert(
        &Conversion {
            input: &checkpoint,
            from: Side::FastLlmDistributed,
            output: &fast_llm,
            to: Side::FastLlm,
        },
        &Options::default(),
    )
    .unwrap();
    let ours = open_fast_llm(&fast_llm).unwrap();
    assert_eq!(ours.files.len(), written.parameters().count());
    for placed in written.parameters() {
        let name = &placed.parameter.name;
        let numel = placed.parameter.shape().iter().product();
        let tensor = ours.files.get(&format!("{name}/weights")).unwrap();
        assert!(
            tensor.data == synthetic_tensor(name, "weights", numel, element),
            "{label}: {name}: bytes differ"
        );
    }

    // The same values on one rank convert to the same HF checkpoint.
    let single = dir.join("single");
    let mut one = parallel(layout);
    let Some(Value::Map(distributed)) = one.get_mut("distributed") else {
        panic!()
    };
    for key in ["tensor_parallel", "pipeline_parallel", "sequence_data_parallel"] {
        distributed.remove(key);
    }
    distributed.insert("world_size".into(), Value::Int(1));
    write_synthetic_distributed(&config, &one, &single, &["weights"]).unwrap();
    let llama = Side::Hf(fastllm_core::find("llama").unwrap());
    let (hf, hf_single) = (dir.join("hf"), dir.join("hf_single"));
    convert(
        &Conversion {
            input: &checkpoint,
            from: Side::FastLlmDistributed,
            output: &hf,
            to: llama,
        },
        &Options::default(),
    )
    .unwrap();
    convert(
        &Conversion {
            input: &single,
            from: Side::FastLlmDistributed,
            output: &hf_single,
            to: llama,
        },
        &Options::default(),
    )
    .unwrap();
    let (a, b) = (open_hf(&hf).unwrap(), open_hf(&hf_single).unwrap());
    assert_eq!(a.files.names().collect::<Vec<_>>(), b.files.names().collect::<Vec<_>>());
    for tensor in b.files.names() {
        assert!(
            a.files.get(tensor).unwrap().data == b.files.get(tensor).unwrap().data,
            "{label}: {tensor}: bytes differ"
        );
    }
}

/// Large enough that slices reach the writer's 4 MiB chunk: with 2 tensor ranks, each rank's part
/// of `layer_1`'s gate and of its up projection is 4 MiB, written straight from the tensor; with 4,
/// the two 2 MiB parts are gathered into one write.
fn wide_llama() -> BaseModelConfig {
    let config = r#"{"hidden_size": 256, "embeddings": {"vocab_size": 2048},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 1, "block": {
            "mixer": {"heads": 8, "head_groups": 4, "head_size": 32, "add_linear_biases": false,
                      "rotary": {"type": "default"}},
            "mlp": {"intermediate_size": 8192, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm"}}}}"#;
    load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap()
}

/// A checkpoint re-sharded by the converter reads back (every rank file checked: sizes, zero
/// padding) to the values written, weights and optimizer state, in another layout.
#[rstest]
#[case::from_one_rank("tp2_dp2", r#"{"distributed": {"world_size": 1}}"#, "tp=2,dp=2,zero=3")]
#[case::between_layouts(
    "tp2_to_tp4",
    r#"{"distributed": {"world_size": 4, "tensor_parallel": 2}}"#,
    "tp=4,pp=2"
)]
fn resharding_keeps_every_value(#[case] label: &str, #[case] from: &str, #[case] to: &str) {
    let config = wide_llama();
    let dir = scratch(&format!("reshard-{label}"));
    let (source, resharded) = (dir.join("source"), dir.join("resharded"));
    write_synthetic_distributed(&config, &parallel(from), &source, &["weights", "exp_avgs"]).unwrap();
    let options = Options {
        parallel: Some(to.parse().unwrap()),
        optimizer_state: true,
        ..Options::default()
    };
    convert(
        &Conversion {
            input: &source,
            from: Side::FastLlmDistributed,
            output: &resharded,
            to: Side::FastLlmDistributed,
        },
        &options,
    )
    .unwrap();
    let checkpoint = fastllm_checkpoint::distributed::DistributedCheckpoint::open(&resharded).unwrap();
    assert_eq!(
        checkpoint.layout().parallelism.world_size,
        options.parallel.unwrap().world_size()
    );
    for placed in checkpoint.parameters() {
        let name = &placed.parameter.name;
        let numel = placed.parameter.shape().iter().product();
        for shard in ["weights", "exp_avgs"] {
            assert!(
                checkpoint.read(name, shard).unwrap() == synthetic_tensor(name, shard, numel, 4),
                "{label}: {name}/{shard}: bytes differ"
            );
        }
    }
    // Hundreds of megabytes: not kept for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Any slice of a parameter streamed from the rank files (read ahead with `pread`, in blocks, the
/// pieces clipped to it) is the same slice of its reassembly: whole parameters, the halves an HF
/// export writes of a fused `key_value` or `layer_1`, thirds, and ranges cut anywhere — across
/// tensor-parallel pieces (rows split by columns), ZeRO shard boundaries and read blocks; and cast
/// to BF16 on its way, the bytes and overflow of one cast of that slice.
#[rstest]
#[case::tensor_2_data_2_zero_3(
    r#"{"distributed": {"world_size": 4, "tensor_parallel": 2}, "multi_stage": {"zero_stage": 3}}"#
)]
#[case::tensor_2_pipeline_2_data_2(
    r#"{"distributed": {"world_size": 8, "tensor_parallel": 2, "pipeline_parallel": 2}, "multi_stage": {"zero_stage": 3}}"#
)]
fn a_slice_streamed_from_the_rank_files_is_the_slice_of_the_reassembly(#[case] layout: &str) {
    use fastllm_checkpoint::cast::{CastWriter, Dtype, Source, cast};
    use fastllm_checkpoint::distributed::DistributedCheckpoint;
    use std::io::Write;

    let dir = scratch(&format!("slices-{}", layout.len()));
    write_synthetic_distributed(&wide_llama(), &parallel(layout), &dir, &["weights"]).unwrap();
    let checkpoint = DistributedCheckpoint::open(&dir).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below.max(1) as u64) as usize
    };
    let (mut slices, mut overflowing) = (0, 0);
    for placed in checkpoint.parameters() {
        let name = &placed.parameter.name;
        let whole = checkpoint.read(name, "weights").unwrap();
        let n = whole.len() / 4;
        let mut ranges = vec![0..n, 0..n / 2, n / 2..n, n / 3..2 * n / 3];
        ranges.extend((0..4).map(|_| {
            let (a, b) = (next(n + 1), next(n + 1));
            a.min(b)..a.max(b)
        }));
        for range in ranges {
            let expected = &whole[range.start * 4..range.end * 4];
            let mut streamed = Vec::new();
            checkpoint
                .write_range_to(name, "weights", range.clone(), &mut streamed)
                .unwrap();
            assert!(streamed == expected, "{name} {range:?}: bytes differ");

            let (from, to) = (Source::Float(Dtype::F32), Dtype::BF16);
            let mut cast_once = Vec::new();
            let expected_overflow = cast(expected, from, to, &mut cast_once);
            let mut cast_streamed = Vec::new();
            let mut writer = CastWriter::new(&mut cast_streamed, from, to);
            checkpoint
                .write_range_to(name, "weights", range.clone(), &mut writer)
                .unwrap();
            writer.flush().unwrap();
            let (overflow, whole_elements) = writer.finish();
            assert!(whole_elements);
            assert_eq!(overflow, expected_overflow, "{name} {range:?}");
            assert!(cast_streamed == cast_once, "{name} {range:?}: cast bytes differ");
            slices += 1;
            overflowing += (overflow.count > 0) as usize;
        }
    }
    // The synthetic values are random bits: many slices hold values past BF16's range.
    assert!(
        slices > 50 && overflowing > slices / 4,
        "{slices} slices, {overflowing} overflowing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exported to HF in BF16 from a tensor 2 × data 2 (ZeRO 3) training checkpoint (slices and
/// whole tensors cast by the threads reading the rank files, the transposed down-projection
/// through the writer's cast), every tensor is the BF16 cast of the float32 export of the same
/// values from one rank, and the overflows listed are those of that cast, tensor by tensor.
#[test]
fn a_bf16_export_is_the_cast_of_the_float32_export() {
    use fastllm_checkpoint::cast::{Dtype, Source, cast};

    let config = wide_llama();
    let dir = scratch("bf16-export");
    let (sharded, single) = (dir.join("sharded"), dir.join("single"));
    let layout = r#"{"distributed": {"world_size": 4, "tensor_parallel": 2}, "multi_stage": {"zero_stage": 3}}"#;
    write_synthetic_distributed(&config, &parallel(layout), &sharded, &["weights"]).unwrap();
    write_synthetic_distributed(
        &config,
        &parallel(r#"{"distributed": {"world_size": 1}}"#),
        &single,
        &["weights"],
    )
    .unwrap();
    let llama = Side::Hf(fastllm_core::find("llama").unwrap());
    let (bf16, f32) = (dir.join("bf16"), dir.join("f32"));
    let options = Options {
        dtype: Some(Dtype::BF16),
        allow_overflow: true,
        ..Options::default()
    };
    let export = |input: &Path, output: &Path, options: &Options| {
        let conversion = Conversion {
            input,
            from: Side::FastLlmDistributed,
            output,
            to: llama,
        };
        convert(&conversion, options).unwrap()
    };
    let summary = export(&sharded, &bf16, &options);
    export(&single, &f32, &Options::default());
    let (ours, reference) = (open_hf(&bf16).unwrap(), open_hf(&f32).unwrap());
    let mut overflowing = Vec::new();
    for name in reference.files.names() {
        let wide = reference.files.get(name).unwrap();
        let mut expected = Vec::new();
        let overflow = cast(&wide.data, Source::Float(Dtype::F32), Dtype::BF16, &mut expected);
        let narrow = ours.files.get(name).unwrap();
        assert_eq!((narrow.dtype, narrow.shape), ("BF16", wide.shape), "{name}");
        assert!(narrow.data == expected.as_slice(), "{name}: bytes differ");
        if overflow.count > 0 {
            overflowing.push((name.to_string(), overflow.count, overflow.largest));
        }
    }
    let mut listed: Vec<_> = (summary.overflows.iter())
        .map(|o| (o.tensor.clone(), o.count, o.largest))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(overflowing.len() >= 3, "{overflowing:?}");
    assert_eq!(listed, overflowing);
    let _ = std::fs::remove_dir_all(&dir);
}
