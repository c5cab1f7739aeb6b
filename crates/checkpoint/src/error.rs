//! Checkpoint IO errors: each names the file and, where there is one, the tensor.

use std::path::PathBuf;

use fastllm_config::printable;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}{}", io_hint(.source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A ranged read of a remote input file that failed or came back short.
    #[error("{url}: tensor `{}`: reading bytes {start}..{end}: {source}", printable(.tensor))]
    RangeRead {
        url: String,
        tensor: String,
        start: u64,
        end: u64,
        #[source]
        source: crate::source::RangeError,
    },
    /// An input file cut, grown or rewritten after it was opened: what was read of it cannot be
    /// trusted, so nothing read from it is written.
    #[error("{path}: the file changed while it was being read ({detail}); not converted")]
    InputChanged { path: PathBuf, detail: String },
    #[error("{path}: invalid safetensors file: {}", printable(.message))]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: a pickle checkpoint is never unpickled: it can run arbitrary code. Convert it to safetensors first \
         (e.g. `model.save_pretrained(dir, safe_serialization=True)` in transformers)"
    )]
    Pickle { path: PathBuf },
    #[error("{path}: no weights found (expected model.safetensors or model.safetensors.index.json)")]
    NoWeights { path: PathBuf },
    #[error("{path}: shard `{}` listed in the index (for tensor `{}`) is missing", printable(.shard), printable(.tensor))]
    MissingShard {
        path: PathBuf,
        tensor: String,
        shard: String,
    },
    #[error(
        "{path}: shard name `{}` (for tensor `{}`) must be a file name in the checkpoint directory",
        printable(.shard), printable(.tensor)
    )]
    UnsafeShardName {
        path: PathBuf,
        tensor: String,
        shard: String,
    },
    #[error(
        "{path}: tensor `{}` is listed in the index for `{}` but is not in that file",
        printable(.tensor), printable(.shard)
    )]
    TensorNotInShard {
        path: PathBuf,
        tensor: String,
        shard: String,
    },
    #[error("{path}: tensor `{}` is in `{}` and `{}`", printable(.tensor), printable(.first), printable(.second))]
    DuplicateTensor {
        path: PathBuf,
        tensor: String,
        first: String,
        second: String,
    },
    #[error("{path}: tensor `{}` is in `{}` but not in the index", printable(.tensor), printable(.shard))]
    UnindexedTensor {
        path: PathBuf,
        tensor: String,
        shard: String,
    },
    /// An output document this tool could not read back, refused before anything is written.
    #[error("{path}: refusing to write it, it would not read back: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: output exists; pass --force to replace it")]
    OutputExists { path: PathBuf },
    /// `--force` (or a sweep) would remove part of the input, or cross a mount point.
    #[error("refusing to replace `{path}` (--force): {reason}; nothing was touched")]
    RemovalRefused { path: PathBuf, reason: String },
    /// The new output is in place, but the old one could not be removed entirely.
    #[error(
        "{output}: the new output is complete and in place, but the old output could not be removed entirely; what is \
         left of it is at `{left}` ({reason})"
    )]
    OldOutputLeft {
        output: PathBuf,
        left: PathBuf,
        reason: String,
    },
    /// The process is being interrupted (SIGINT / SIGTERM): nothing more is committed.
    #[error("interrupted: the output was not written")]
    Interrupted,
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistributedError),
    #[error(
        "refusing to write {}: the output {} {}; nothing was touched, whatever --force says",
        shown(.output, .resolved_output), .relation.describe(), shown(.input, .resolved_input)
    )]
    OutputOverlapsInput {
        input: PathBuf,
        output: PathBuf,
        resolved_input: PathBuf,
        resolved_output: PathBuf,
        relation: crate::policy::Overlap,
    },
}

/// `path`, and what it resolves to when that reads differently.
fn shown(path: &std::path::Path, resolved: &std::path::Path) -> String {
    if path == resolved {
        format!("`{}`", path.display())
    } else {
        format!("`{}` (`{}`)", path.display(), resolved.display())
    }
}

/// What a full disk or a file-size limit means for the user: the conversion stopped cleanly.
fn io_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::FileTooLarge => {
            " (the file size limit, `ulimit -f`, is smaller than the output needs; the partial output was removed)"
        }
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            " (no space left for the output; the partial output was removed)"
        }
        _ => "",
    }
}

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CheckpointError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CheckpointError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
