//! Checkpoint IO for HF and Fast-LLM checkpoints.
//!
//! Reading maps every safetensors file and validates its header with HF's `safetensors` crate
//! (zero-copy: tensor bytes are borrowed from the map); a remote input's files are validated from
//! their headers and read by range instead ([`source`]). A checkpoint directory is checked as a
//! whole before anything is converted: an index that names a missing shard, a tensor found in no
//! shard or in two, a shard name escaping the directory, or a pickle checkpoint is an error
//! naming the file and tensor.
//!
//! Fast-LLM's distributed training checkpoints (`metadata.yaml` + `rank_<r>.safetensors`) are
//! read by [`distributed`]: their layout as data, validation, and one parameter at a time.
//!
//! Writing ([`writer`]) keeps the caller's tensor order, writes files readable by everyone
//! (0644), and builds the whole output beside its final path before renaming it into place.

pub mod bytes;
mod carry;
pub mod cast;
pub mod companions;
pub mod convert;
pub mod destination;
mod direct;
pub mod distributed;
mod error;
mod extents;
mod header;
mod metadata_yaml;
mod naming;
pub mod policy;
pub use policy::{MAX_CONFIG_BYTES, MAX_INDEX_BYTES};
mod read;
#[cfg(test)]
mod scratch;
pub mod source;
pub mod synthetic;
mod writeback;
pub mod writer;

pub use error::CheckpointError;
pub use read::{
    Checkpoint, FileSet, Tensor, TensorInfo, TensorRef, open_fast_llm, open_fast_llm_with, open_hf, open_hf_with,
    parse_named_document, read_document, read_named_document,
};

/// Element type of a tensor, by its safetensors name (`F32`, `BF16`, ...), with its byte size.
/// Sub-byte types (`F4`, `F6_*`) have none: their elements cannot be moved one by one, and the
/// reader rejects them by tensor name.
pub fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}
