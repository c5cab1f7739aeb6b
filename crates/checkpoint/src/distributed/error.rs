//! Why a distributed checkpoint is refused: each error names the file, and where there is one the
//! shard and the parameter.

use std::path::PathBuf;

use fastllm_config::printable;

/// A distributed checkpoint that does not match the layout its `metadata.yaml` implies, or that
/// this reader cannot place.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error("{path}: {message}")]
    Metadata { path: PathBuf, message: String },
    #[error("{path}: Fast-LLM could not build this model's parameters: {}", problems.join("; "))]
    Model { path: PathBuf, problems: Vec<String> },
    #[error("{dir}: `{file}` is missing (metadata.yaml: the world size is {world_size}, and every rank writes one)")]
    MissingRankFile {
        dir: PathBuf,
        file: String,
        world_size: usize,
    },
    #[error("{dir}: `{file}` is not a regular file but {what} (every rank writes one safetensors file)")]
    RankNotAFile { dir: PathBuf, file: String, what: String },
    #[error(
        "{dir}: `{file}` is beyond the world size: metadata.yaml's world size is {world_size}, so the ranks are \
         rank_0..rank_{last} (is it left over from a larger run?)"
    )]
    RankBeyondWorld {
        dir: PathBuf,
        file: String,
        world_size: usize,
        last: usize,
    },
    #[error(
        "{path}: its header says it is rank {found} (`config.distributed.rank` of its `__metadata__`), but its name says \
         rank {named}: rank files renamed or mixed up would convert to the wrong weights"
    )]
    RankIdentity { path: PathBuf, named: usize, found: usize },
    #[error(
        "{path}: its header says it was saved by a world of {found} ranks (`config.distributed.world_size` of its \
         `__metadata__`), metadata.yaml's is {expected}: is it left over from another run?"
    )]
    RankWorld {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{path}: the rank identity in its header (`__metadata__`) does not read: {message}")]
    RankHeader { path: PathBuf, message: String },
    #[error("{path}: no tensor `{tensor}` (the checkpoint's shards are {shards})")]
    MissingShard {
        path: PathBuf,
        tensor: String,
        shards: String,
    },
    #[error(
        "{path}: unexpected tensor `{}` (a rank file holds one `<shard>_shard` per shard of metadata.yaml: {shards})",
        printable(.tensor)
    )]
    UnexpectedTensor {
        path: PathBuf,
        tensor: String,
        shards: String,
    },
    #[error("{path}: `{tensor}` has shape {found:?}, the layout implies [{expected}] ({breakdown})")]
    ShardSize {
        path: PathBuf,
        tensor: String,
        expected: usize,
        found: Vec<usize>,
        breakdown: String,
    },
    #[error("{path}: `{tensor}` is {found}, the shard dtype (`distributed.{field}`) is {expected}")]
    ShardDtype {
        path: PathBuf,
        tensor: String,
        expected: String,
        found: String,
        field: &'static str,
    },
    #[error(
        "{path}: `{tensor}`: the padding of {group} (after `{parameter}`, elements {start}..{end} of the shard) is not zero \
         at element {at}: the file does not hold the layout metadata.yaml describes"
    )]
    NonzeroPadding {
        path: PathBuf,
        tensor: String,
        group: String,
        parameter: String,
        start: usize,
        end: usize,
        at: usize,
    },
    #[error("{path}: no parameter `{parameter}` in this model")]
    UnknownParameter { path: PathBuf, parameter: String },
    #[error("{path}: no shard `{shard}` in this checkpoint (it has {shards})")]
    UnknownShard {
        path: PathBuf,
        shard: String,
        shards: String,
    },
    #[error("{path}: `{parameter}` is frozen (lr_scale 0): it has no `{shard}` state, only `weights`")]
    FrozenParameter {
        path: PathBuf,
        parameter: String,
        shard: String,
    },
    #[error("{path}: `{parameter}`: {message}")]
    Placement {
        path: PathBuf,
        parameter: String,
        message: String,
    },
    #[error("`{parameter}`/{shard}: output buffer of {found} bytes, the tensor has {expected}")]
    OutputSize {
        parameter: String,
        shard: String,
        expected: usize,
        found: usize,
    },
}
