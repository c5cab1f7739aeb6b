//! Conversion speed as ratios to copying the same bytes, measured in the same run:
//! `cargo bench` (or `cargo xtask bench` for the 2 GB end-to-end run with peak RSS).

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastllm_convert::checkpoint::bytes::{Matrix, transpose};
use fastllm_convert::checkpoint::cast::{Dtype, Source, cast};
use fastllm_convert::checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_convert::checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_convert::config::{ModelKind, Value, load_base_model};

/// A Llama MLP down-projection in BF16 (4096 × 11008): the tensor Fast-LLM stores transposed.
fn transposes(c: &mut Criterion) {
    let (rows, cols) = (4096, 11008);
    let input: Vec<u8> = (0..rows * cols * 2).map(|i| (i % 251) as u8).collect();
    let mut out = vec![0u8; input.len()];
    let mut group = c.benchmark_group("down_proj_bf16");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    group.bench_function("copy (baseline)", |b| b.iter(|| out.copy_from_slice(&input)));
    let matrix = Matrix { rows, cols, element: 2 };
    group.bench_function("transpose", |b| b.iter(|| transpose(&input, matrix, &mut out)));
    group.finish();
}

/// `--dtype`'s casts of 64 MiB of float32 weights (values of a trained model's scale), against
/// copying the same bytes in memory; and of 64 MiB of random bits (what `cargo xtask bench`'s
/// synthetic checkpoints hold), where about one value in 65,536 overflows to an infinity.
fn casts(c: &mut Criterion) {
    let n = 16 << 20;
    let input: Vec<u8> = (0..n as u32)
        .flat_map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 * 1e-9 - 0.008).to_le_bytes())
        .collect();
    let random: Vec<u8> = (0..n as u64)
        .flat_map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32).to_le_bytes())
        .collect();
    let mut copy = vec![0u8; input.len()];
    let mut out = Vec::with_capacity(input.len());
    let mut group = c.benchmark_group("cast_f32");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    group.bench_function("copy (baseline)", |b| b.iter(|| copy.copy_from_slice(&input)));
    for dtype in [Dtype::BF16, Dtype::F16] {
        group.bench_function(format!("to {}", dtype.safetensors()), |b| {
            b.iter(|| {
                out.clear();
                cast(&input, Source::Float(Dtype::F32), dtype, &mut out)
            })
        });
        group.bench_function(format!("random bits to {}", dtype.safetensors()), |b| {
            b.iter(|| {
                out.clear();
                cast(&random, Source::Float(Dtype::F32), dtype, &mut out)
            })
        });
    }
    group.finish();
}

/// A small synthetic Llama checkpoint (~100 MB) converted HF → Fast-LLM, against copying its files.
fn conversions(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-convert");
    let _ = std::fs::remove_dir_all(&root);
    let config = r#"{"hidden_size": 1024, "embeddings": {"vocab_size": 8192},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 4, "block": {
            "mixer": {"heads": 8, "head_groups": 4, "head_size": 128, "add_linear_biases": false,
                      "rotary": {"type": "default"}},
            "mlp": {"intermediate_size": 4096, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm"}}}}"#;
    let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap();
    let llama = fastllm_convert::core::find("llama").unwrap();
    let input = root.join("hf");
    let summary = write_synthetic_hf(
        llama,
        &config,
        &input,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: u64::MAX,
        },
    )
    .unwrap();
    let mut group = c.benchmark_group("llama_hf_to_fast_llm");
    group.throughput(Throughput::Bytes(summary.bytes()));
    group.sample_size(10);
    group.bench_function("copy files (baseline)", |b| {
        b.iter(|| {
            let out = root.join("copy");
            std::fs::create_dir_all(&out).unwrap();
            // Synced like the conversion's files, so the ratio compares like with like.
            for file in ["config.json", "model.safetensors"] {
                std::fs::copy(input.join(file), out.join(file)).unwrap();
                std::fs::File::open(out.join(file)).unwrap().sync_all().unwrap();
            }
            std::fs::remove_dir_all(&out).unwrap();
        })
    });
    group.bench_function("convert", |b| {
        b.iter(|| {
            let out = root.join("fast_llm");
            let options = Options {
                force: true,
                ..Options::default()
            };
            convert(
                &Conversion {
                    input: &input,
                    from: Side::Hf(llama),
                    output: &out,
                    to: Side::FastLlm,
                },
                &options,
            )
            .unwrap();
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, transposes, casts, conversions);
criterion_main!(benches);
