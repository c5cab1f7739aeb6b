//! Where an output's safetensors files go: into its directory (the default), or uploaded as they
//! are written through [`RemoteSink`] (an object store), never staged on local disk.
//!
//! An output with a remote sink still has a local directory: its documents (config.json,
//! metadata.yaml, the index) are written there, for the caller to publish after the tensors.
//! This crate does not know object stores: the umbrella's `remote` module implements
//! [`RemoteSink`] (and [`RemoteParts`], the parts `--finalize` gathers beside such an output)
//! over `fastllm_store`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::Arc;

/// Uploads an output's safetensors files.
pub trait RemoteSink: Send + Sync {
    /// Starts file `name`, whose bytes are then written in order.
    fn create(&self, name: &str) -> std::io::Result<Box<dyn RemoteUpload>>;
}

/// One file being uploaded: dropped before [`RemoteUpload::finish`], it is abandoned and never
/// becomes visible.
pub trait RemoteUpload: Write + Send {
    /// Completes the file.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// An output's remote sink, as [`crate::convert::Options::remote_output`] holds it.
#[derive(Clone)]
pub struct RemoteOutput(pub Arc<dyn RemoteSink>);

impl fmt::Debug for RemoteOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteOutput")
    }
}

/// The parts of an object-store output (`--part K/N` wrote them beside it), as `--finalize`
/// finds, checks and gathers them. Names are relative to the output's parent prefix
/// (`NAME.part-K-of-N`); the conversion decides them, the implementation moves the bytes.
pub trait RemoteParts: Send + Sync {
    /// The names beside the output that start with `start`.
    fn names_beside(&self, start: &str) -> std::io::Result<Vec<String>>;
    /// The files directly under `dir` (a name beside the output), with their sizes.
    fn files(&self, dir: &str) -> std::io::Result<BTreeMap<String, u64>>;
    /// The text of file `name` under `dir`; `None` when there is none. Refused past `limit`
    /// bytes.
    fn read(&self, dir: &str, name: &str, limit: u64) -> std::io::Result<Option<String>>;
    /// Puts `files` (name, size) of `dir` into the output being published, without passing
    /// their bytes through this process.
    fn adopt(&self, dir: &str, files: &[(String, u64)]) -> std::io::Result<()>;
}

/// An output's remote parts, as [`crate::convert::Options::remote_parts`] holds them.
#[derive(Clone)]
pub struct RemotePartSet(pub Arc<dyn RemoteParts>);

impl fmt::Debug for RemotePartSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemotePartSet")
    }
}
