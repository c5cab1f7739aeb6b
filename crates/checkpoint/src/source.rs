//! Where an input's safetensors files are read from: mapped from its directory (the default),
//! or read by byte range from elsewhere (an object store) through [`RemoteFiles`].
//!
//! A remote input's directory holds its documents only (config.json, metadata.yaml, the index,
//! companions); its safetensors files stay where they are. Their headers are validated as local
//! ones are (charged to the same budget, every tensor's extent inside the file's size), and
//! their tensor bytes are read when a conversion writes them: a streamed tensor in parts of
//! bounded size, a transformed one whole, never the file.
//!
//! This crate does not know object stores: the umbrella's `remote` module implements
//! [`RemoteFiles`] over `fastllm_store`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// What a remote file is: its URL (for messages), its size (from the listing) and its
/// safetensors header (its 8-byte length and JSON, already read within the policy's limits).
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile<'a> {
    pub url: &'a str,
    pub size: u64,
    pub header: &'a [u8],
}

/// Safetensors files of an input that are not in its directory, read by byte range.
pub trait RemoteFiles: Send + Sync {
    /// File `name`, `None` when it is not one of the remote files.
    fn file(&self, name: &str) -> Option<RemoteFile<'_>>;

    /// The names of every remote file, sorted.
    fn names(&self) -> Vec<String>;

    /// Calls `sink` with bytes `range` of file `name`, in order, in pieces; how many pieces are
    /// fetched ahead of `sink` (and so how much memory a read holds) is the implementation's
    /// bound, never the range's size.
    fn read(
        &self,
        name: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), RangeError>;
}

/// Why a ranged read failed.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The store answered with fewer (or more) bytes than asked for.
    #[error("the store returned {found} bytes where {expected} were expected")]
    Short { expected: u64, found: u64 },
    /// The request failed (after the store's retries).
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// The sink refused the bytes (the output's own write error, passed through).
    #[error(transparent)]
    Sink(std::io::Error),
}

/// An input's remote safetensors files, as [`crate::convert::Options::remote_input`] holds
/// them.
#[derive(Clone)]
pub struct RemoteInput(pub Arc<dyn RemoteFiles>);

impl fmt::Debug for RemoteInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RemoteInput").field(&self.0.names()).finish()
    }
}
