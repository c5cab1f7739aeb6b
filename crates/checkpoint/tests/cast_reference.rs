//! `--dtype`'s casts against numpy (f32 → f16) and ml_dtypes (f32 → bf16) on all 2^32 f32 bit
//! patterns (or a sample of every low-20-bit pattern under each top byte), through the digests `scripts/cast_reference.py` wrote into
//! `scripts/cast_reference.json`. Ignored (a minute in release, far longer in debug):
//! `cargo test --release -p fastllm-checkpoint --test cast_reference -- --ignored`.

use fastllm_checkpoint::cast::{Dtype, Source, cast};

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

fn digest(output: &[u8], first: u32) -> u64 {
    output.chunks_exact(2).enumerate().fold(0u64, |sum, (i, h)| {
        let bits = first as u64 + i as u64;
        let weight = bits.wrapping_mul(MULTIPLIER).wrapping_add(1);
        sum.wrapping_add((u16::from_le_bytes([h[0], h[1]]) as u64).wrapping_mul(weight))
    })
}

#[test]
#[ignore]
fn every_f32_casts_like_numpy_and_ml_dtypes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cast_reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let length = reference["length"].as_u64().unwrap() as u32;
    let expected = |dtype: &str, i: usize| reference[dtype][i].as_str().unwrap().to_string();
    let mut input = Vec::with_capacity(length as usize * 4);
    let mut output = Vec::with_capacity(length as usize * 2);
    let mut mismatches = Vec::new();
    let starts = reference["starts"].as_array().unwrap();
    assert_eq!(starts.len(), 256);
    for (i, start) in starts.iter().enumerate() {
        let first = start.as_u64().unwrap() as u32;
        input.clear();
        input.extend((0..length).flat_map(|j| (first + j).to_le_bytes()));
        for (name, dtype) in [("f16", Dtype::F16), ("bf16", Dtype::BF16)] {
            output.clear();
            cast(&input, Source::Float(Dtype::F32), dtype, &mut output);
            let ours = format!("{:016x}", digest(&output, first));
            if ours != expected(name, i) {
                mismatches.push(format!("{name} chunk {i} (bits {first:#010x}..)"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:?}");
}
