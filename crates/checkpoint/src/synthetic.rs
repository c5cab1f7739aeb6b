//! Synthetic checkpoints for tests and benchmarks: every tensor a config implies, filled with
//! deterministic pseudo-random bytes, for formats without reference fixtures and for sizes no
//! fixture has.

use std::io::Write;
use std::path::Path;

use fastllm_config::BaseModelConfig;
use fastllm_core::weights::{PlanLimits, Transform, elements};
use fastllm_core::{Handler, HfLayout};

use crate::companions::Companions;
use crate::convert::metadata::{hf_file_metadata, write_config_json, write_hf_index};
use crate::convert::plan::{OutputTensor, weight_plan};
use crate::convert::write::{shard, specs};
use crate::convert::{ConversionError, Options, Output, PlannedTensor, Summary};
use crate::writer::{OutputDir, write_safetensors};
use crate::{CheckpointError, dtype_size};

/// Writes a synthetic HF checkpoint of `handler`'s format for `config`: its config.json and
/// every tensor of the weight plan, filled with deterministic pseudo-random bytes.
pub fn write_synthetic_hf(
    handler: &'static Handler,
    config: &BaseModelConfig,
    dir: &Path,
    dtype: &str,
    max_shard_bytes: u64,
) -> Result<Summary, ConversionError> {
    let hf = handler.export(config, HfLayout::V4)?;
    let element = dtype_size(dtype).ok_or_else(|| CheckpointError::Invalid {
        path: dir.to_path_buf(),
        message: format!("unknown dtype {dtype}"),
    })?;
    let mut outputs = Vec::new();
    for entry in weight_plan(handler, config, &PlanLimits::DEFAULT, dir, false)? {
        for (name, shape) in entry.hf.iter().zip(&entry.hf_shapes) {
            let bytes = elements(shape)
                .and_then(|n| n.checked_mul(element as u64))
                .ok_or_else(|| CheckpointError::invalid(dir, format!("tensor `{name}`: shape {shape:?} overflows")))?;
            let tensor = PlannedTensor {
                name: name.clone(),
                dtype: dtype.to_string(),
                shape: shape.clone(),
                from: Vec::new(),
                transform: Transform::Copy,
                bytes,
            };
            outputs.push(OutputTensor {
                tensor,
                parameter: entry.fast_llm.clone(),
                part: 0,
                parts: 1,
                fast_llm_shape: shape.clone(),
            });
        }
    }
    let to = Output::Hf(handler);
    let options = Options {
        max_shard_bytes,
        ..Options::default()
    };
    let files = shard(&outputs, to, &options);
    let out = OutputDir::create(dir, true)?;
    write_config_json(&out, hf)?;
    if files.len() > 1 {
        write_hf_index(&out, &outputs, &files)?;
    }
    let metadata = hf_file_metadata();
    for (file, range) in &files {
        write_safetensors(
            &out.path(file),
            &metadata,
            &specs(&outputs[range.clone()]),
            |i, sink: &mut dyn Write| fill(&outputs[range.start + i].tensor, sink),
        )?;
    }
    let tensors = outputs.into_iter().map(|o| o.tensor).collect();
    let files = files.into_iter().map(|(f, _)| f).collect();
    out.commit()?;
    Ok(Summary {
        from: "synthetic",
        to: handler.name,
        output: dir.to_path_buf(),
        tensors,
        files,
        missing_extra_files: Vec::new(),
        carried_keys: Vec::new(),
        not_carried_keys: Vec::new(),
        dropped_keys: Vec::new(),
        dropped_tensors: Vec::new(),
        skipped_shards: Vec::new(),
        training_state: Vec::new(),
        companions: Companions::default(),
    })
}

/// Writes `tensor.bytes` pseudo-random bytes seeded by the tensor's name.
fn fill(tensor: &PlannedTensor, sink: &mut dyn Write) -> std::io::Result<()> {
    let mut state = tensor.name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let mut buffer = vec![0u8; 1 << 16];
    let mut left = tensor.bytes as usize;
    while left > 0 {
        let n = left.min(buffer.len());
        for chunk in buffer[..n].chunks_mut(8) {
            // xorshift64*: fast, deterministic, never all zeros.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
        sink.write_all(&buffer[..n])?;
        left -= n;
    }
    Ok(())
}
