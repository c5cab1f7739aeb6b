//! Where an output's safetensors files go: into its directory (the default), or uploaded as they
//! are written through [`RemoteSink`] (an object store), never staged on local disk.
//!
//! An output with a remote sink still has a local directory: its documents (config.json,
//! metadata.yaml, the index) are written there, for the caller to publish after the tensors.
//! This crate does not know object stores: the umbrella's `remote` module implements
//! [`RemoteSink`] over `fastllm_store`.

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
