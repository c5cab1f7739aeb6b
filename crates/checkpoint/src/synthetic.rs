//! Synthetic checkpoints for tests and benchmarks: every tensor a config implies, filled with
//! deterministic pseudo-random bytes, for formats without reference fixtures and for sizes and
//! parallel layouts no fixture has. HF checkpoints ([`write_synthetic_hf`]) and Fast-LLM
//! distributed training checkpoints ([`write_synthetic_distributed`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use fastllm_config::{BaseModelConfig, Form, Map, Value};
use fastllm_core::weights::{PlanLimits, Transform, elements};
use fastllm_core::{Handler, HfLayout};
use fastllm_layout::engine_layers;

use crate::convert::FAST_LLM_VERSION;
use crate::distributed::{DistributedLayout, Parallelism, ShardKind};
use crate::writer::TensorSpec;

use crate::companions::Companions;
use crate::convert::metadata::{config_json_document, hf_file_metadata, hf_index_document};
use crate::convert::plan::{OutputTensor, whole_weight_plan};
use crate::convert::write::{shard, specs};
use crate::convert::{ConversionError, Options, Output, PlannedTensor, Summary};
use crate::policy::{Existing, Protected};
use crate::writer::{OutputDir, write_safetensors};
use crate::{CheckpointError, dtype_size};

/// How a synthetic HF checkpoint stores its tensors.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticStorage<'a> {
    /// The safetensors dtype of every tensor (`BF16`, `F32`, ...).
    pub dtype: &'a str,
    /// The shard size, as `--max-shard-size` gives it.
    pub max_shard_bytes: u64,
}

/// Writes a synthetic BF16 checkpoint of `handler`'s format for `config` into `hf` (one shard)
/// and converts it to Fast-LLM into `fast_llm` with default options: the first half of every
/// family's synthetic round-trip test.
pub fn synthetic_to_fast_llm(
    handler: &'static Handler,
    config: &BaseModelConfig,
    hf: &Path,
    fast_llm: &Path,
) -> Result<Summary, ConversionError> {
    let storage = SyntheticStorage {
        dtype: "BF16",
        max_shard_bytes: 1 << 30,
    };
    write_synthetic_hf(handler, config, hf, &storage)?;
    let conversion = crate::convert::Conversion {
        input: hf,
        from: crate::convert::Side::Hf(handler),
        output: fast_llm,
        to: crate::convert::Side::FastLlm,
    };
    crate::convert::convert(&conversion, &Options::default())
}

/// Exports the Fast-LLM checkpoint `fast_llm` to `handler`'s format into `hf` with `options`:
/// the second half of every family's synthetic round-trip test.
pub fn fast_llm_to_hf(
    handler: &'static Handler,
    fast_llm: &Path,
    hf: &Path,
    options: &Options,
) -> Result<Summary, ConversionError> {
    let conversion = crate::convert::Conversion {
        input: fast_llm,
        from: crate::convert::Side::FastLlm,
        output: hf,
        to: crate::convert::Side::Hf(handler),
    };
    crate::convert::convert(&conversion, options)
}

/// Writes a synthetic HF checkpoint of `handler`'s format for `config`: its config.json and
/// every tensor of the weight plan, filled with deterministic pseudo-random bytes.
pub fn write_synthetic_hf(
    handler: &'static Handler,
    config: &BaseModelConfig,
    dir: &Path,
    storage: &SyntheticStorage,
) -> Result<Summary, ConversionError> {
    let &SyntheticStorage { dtype, max_shard_bytes } = storage;
    let hf = handler.export(config, HfLayout::V4)?;
    let element = dtype_size(dtype).ok_or_else(|| CheckpointError::Invalid {
        path: dir.to_path_buf(),
        message: format!("unknown dtype {dtype}"),
    })?;
    let mut outputs = Vec::new();
    for entry in whole_weight_plan(handler, config, &PlanLimits::DEFAULT, dir)? {
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
                cast_from: None,
            };
            outputs.push(OutputTensor {
                tensor,
                parameter: entry.fast_llm.clone(),
                part: 0,
                parts: 1,
                fast_llm_shape: shape.clone(),
                cast: None,
                shard: None,
            });
        }
    }
    let to = Output::Hf(handler);
    let options = Options {
        max_shard_bytes,
        ..Options::default()
    };
    let files = shard(&outputs, to, &options);
    let config_json = config_json_document(dir, hf)?;
    let index = (files.len() > 1)
        .then(|| hf_index_document(dir, &outputs, &files))
        .transpose()?;
    let out = OutputDir::create(dir, Existing::Replace, &Protected::nothing())?;
    config_json.write(&out)?;
    index.iter().try_for_each(|index| index.write(&out))?;
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
        overflows: Vec::new(),
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

/// The `__metadata__` Fast-LLM writes into rank `rank`'s file: its whole metadata, with the
/// saving rank at `config.distributed.rank` (what identifies the file), each value a string,
/// YAML for structured ones.
fn rank_header(metadata: &Map, rank: usize) -> BTreeMap<String, String> {
    let mut metadata = metadata.clone();
    if let Some(Value::Map(config)) = metadata.get_mut("config")
        && let Value::Map(distributed) = config.entry("distributed".into()).or_insert(Value::Map(Map::new()))
    {
        distributed.insert("rank".into(), Value::Int(rank as i128));
    }
    (metadata.into_iter())
        .map(|(key, value)| match value {
            Value::Str(text) => (key, text),
            other => (key, other.to_yaml()),
        })
        .collect()
}

/// Writes a synthetic Fast-LLM distributed checkpoint of `config`: `metadata.yaml` with the
/// parallel layout `parallel` (the `distributed` and `multi_stage` sections of its `config`) and
/// `shards`, and one `rank_<r>.safetensors` per rank. Every parameter of every shard holds its
/// [`synthetic_tensor`] values, placed by running the reader's [`Piece`]s in reverse; padding and
/// the copies the reader never reads (tensor-parallel duplicates, tied copies) are zero. Each rank
/// file is streamed: memory stays at one 64 KiB buffer. Returns the layout written.
///
/// [`Piece`]: crate::distributed::Piece
pub fn write_synthetic_distributed(
    config: &BaseModelConfig,
    parallel: &Map,
    dir: &Path,
    shards: &[&str],
) -> Result<DistributedLayout, ConversionError> {
    let invalid = |message: String| CheckpointError::invalid(dir, message);
    let parallelism = Parallelism::from_config(parallel).map_err(invalid)?;
    let layers = engine_layers(config, parallelism.tensor_parallel).map_err(|problems| invalid(problems.join("; ")))?;
    let layout = DistributedLayout::new(&layers, parallelism).map_err(|e| invalid(e.to_string()))?;
    let element = dtype_size(layout.parallelism.shard_dtype).unwrap_or(1);
    let out = OutputDir::create(dir, Existing::Replace, &Protected::nothing())?;
    let mut model_config = parallel.clone();
    model_config.insert("type".into(), Value::Str(config.kind().name().into()));
    model_config.insert("base_model".into(), Value::Map(config.to_form(Form::Explicit)));
    let metadata = Map::from([
        ("config".to_string(), Value::Map(model_config)),
        ("fast_llm_version".to_string(), Value::Str(FAST_LLM_VERSION.into())),
        ("format".to_string(), Value::Str("distributed".into())),
        ("model".to_string(), Value::Str(config.kind().name().into())),
        (
            "shards".to_string(),
            Value::List(shards.iter().map(|s| Value::Str(s.to_string())).collect()),
        ),
        ("metadata".to_string(), Value::Map(Map::new())),
    ]);
    out.write_text("metadata.yaml", &Value::Map(metadata.clone()).to_yaml())?;
    for rank in 0..layout.parallelism.world_size {
        // (offset in the rank's shard, parameter, global element, elements), by offset.
        let mut placements: Vec<Vec<(usize, &str, usize, usize)>> = Vec::new();
        let mut specs = Vec::new();
        for shard in shards {
            let kind = ShardKind::of(shard);
            let mut runs = Vec::new();
            for placed in layout.parameters() {
                let name = placed.parameter.name.as_str();
                for piece in layout.pieces(name, kind).unwrap_or_default() {
                    if piece.rank == rank {
                        runs.push((piece.offset, name, piece.target, piece.len));
                    }
                }
            }
            runs.sort_unstable();
            placements.push(runs);
            specs.push(TensorSpec {
                name: format!("{shard}_shard"),
                dtype: layout.parallelism.shard_dtype.to_string(),
                shape: vec![layout.shard_len(rank, kind)],
            });
        }
        let file = out.path(&crate::distributed::rank_file(rank));
        let header = rank_header(&metadata, rank);
        write_safetensors(&file, &header, &specs, |i, sink: &mut dyn Write| {
            let mut position = 0;
            let zeros = vec![0u8; 1 << 16];
            let pad = |sink: &mut dyn Write, elements: usize| -> std::io::Result<()> {
                let mut left = elements * element;
                while left > 0 {
                    let n = left.min(zeros.len());
                    sink.write_all(&zeros[..n])?;
                    left -= n;
                }
                Ok(())
            };
            for &(offset, parameter, target, len) in &placements[i] {
                pad(sink, offset - position)?;
                let values = Values {
                    parameter,
                    shard: shards[i],
                    element,
                };
                write_values(&values, target..target + len, sink)?;
                position = offset + len;
            }
            pad(sink, specs[i].shape[0] - position)
        })?;
    }
    out.commit()?;
    Ok(layout)
}

/// The synthetic global tensor of `parameter` in shard `shard` (`elements` elements of
/// `element` bytes): what [`write_synthetic_distributed`] stores, for comparing what is read.
pub fn synthetic_tensor(parameter: &str, shard: &str, elements: usize, element: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(elements * element);
    let values = Values {
        parameter,
        shard,
        element,
    };
    write_values(&values, 0..elements, &mut out).expect("a Vec grows");
    out
}

/// Which synthetic tensor: `parameter` in shard `shard`, of `element`-byte values.
struct Values<'a> {
    parameter: &'a str,
    shard: &'a str,
    element: usize,
}

/// Writes the synthetic values of global elements `range` of `values`: each element's bytes are
/// a hash of (parameter, shard, index), so any range is made alone.
fn write_values(values: &Values, range: Range<usize>, sink: &mut dyn Write) -> std::io::Result<()> {
    let &Values {
        parameter,
        shard,
        element,
    } = values;
    let seed = parameter
        .bytes()
        .chain([b'/'])
        .chain(shard.bytes())
        .fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        });
    let mut buffer = Vec::with_capacity(1 << 16);
    for index in range {
        // splitmix64 of (seed, index): independent of how the tensor is cut.
        let mut z = seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        buffer.extend_from_slice(&z.to_le_bytes()[..element.min(8)]);
        if buffer.len() >= 1 << 16 {
            sink.write_all(&buffer)?;
            buffer.clear();
        }
    }
    sink.write_all(&buffer)
}
