//! Writing checkpoints: safetensors files in the caller's tensor order, and an output directory
//! that appears at its final path only once complete.
//!
//! HF's `safetensors` writer is not used: it reorders tensors (by dtype alignment, then name),
//! is single-threaded, and creates its file through a temporary file with mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use crate::policy::OutputDir;

use crate::destination::RemoteUpload;
use crate::direct::{SequentialFile, Writing};
use crate::{CheckpointError, dtype_size};

/// A tensor to write: name, dtype (safetensors name) and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// The byte size of the tensor, or `None` for an unknown dtype or an overflowing shape.
    pub fn byte_len(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(dtype_size(&self.dtype)?, |acc, &d| acc.checked_mul(d))
    }
}

/// Counts bytes so a fill callback writing the wrong amount is caught.
struct Counting<W> {
    inner: W,
    written: usize,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The JSON header of a safetensors file holding `tensors` in this order (padded with spaces to
/// 8 bytes, as the format recommends), and each tensor's byte length. `path` names the file in
/// errors.
pub fn safetensors_header(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[TensorSpec],
) -> Result<(Vec<u8>, Vec<usize>), CheckpointError> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    }
    let mut offset = 0usize;
    let mut lengths = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let len = tensor.byte_len().ok_or_else(|| {
            CheckpointError::invalid(
                path,
                format!(
                    "tensor `{}`: dtype {} or shape {:?} unusable",
                    tensor.name, tensor.dtype, tensor.shape
                ),
            )
        })?;
        let entry =
            serde_json::json!({"dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + len]});
        if header.insert(tensor.name.clone(), entry).is_some() {
            return Err(CheckpointError::invalid(
                path,
                format!("tensor `{}` written twice", tensor.name),
            ));
        }
        lengths.push(len);
        offset += len;
    }
    let mut header_bytes = serde_json::to_vec(&header).expect("a JSON map serializes");
    while !header_bytes.len().is_multiple_of(8) {
        header_bytes.push(b' ');
    }
    Ok((header_bytes, lengths))
}

/// Writes a safetensors file with `tensors` in this order; `fill(i, out)` writes tensor `i`'s
/// bytes. The header is padded to 8 bytes, as the format recommends.
pub fn write_safetensors(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[TensorSpec],
    fill: impl FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let file = SafetensorsFile {
        path,
        metadata,
        tensors,
    };
    write_safetensors_to(&file, Destination::Local, fill)
}

/// A safetensors file to write: its path (where it is written locally, and what errors name),
/// its header metadata and its tensors in order.
pub(crate) struct SafetensorsFile<'a> {
    pub path: &'a Path,
    pub metadata: &'a BTreeMap<String, String>,
    pub tensors: &'a [TensorSpec],
}

/// Where [`write_safetensors_to`] puts a file's bytes.
pub(crate) enum Destination {
    /// At its path, synced and readable by all before it counts as written.
    Local,
    /// Uploaded as they are written (an object-store output), completed at the end.
    Remote(Box<dyn RemoteUpload>),
}

/// The bytes of a file on their way to its destination, written from its start in order.
pub(crate) enum Sink {
    Local(SequentialFile),
    Remote(Box<dyn RemoteUpload>),
}

impl Sink {
    /// Starts the file at `path` (for a remote destination, `path` only names it in errors).
    pub(crate) fn open(path: &Path, destination: Destination) -> Result<Sink, CheckpointError> {
        Sink::open_as(path, destination, Writing::Direct)
    }

    /// Like [`Sink::open`], a local file written as `writing` says.
    pub(crate) fn open_as(path: &Path, destination: Destination, writing: Writing) -> Result<Sink, CheckpointError> {
        Ok(match destination {
            Destination::Local => {
                Sink::Local(SequentialFile::create(path, writing).map_err(|e| CheckpointError::io(path, e))?)
            }
            Destination::Remote(upload) => Sink::Remote(upload),
        })
    }

    /// Completes the file: locally every byte on disk (synced) and mode 0644; remotely the
    /// upload completed, from then on listed.
    pub(crate) fn finish(self, path: &Path) -> Result<(), CheckpointError> {
        let io = |e| CheckpointError::io(path, e);
        match self {
            Sink::Local(file) => {
                let file = file.finish().map_err(io)?;
                file.sync_all().map_err(io)?;
                readable_by_all(path)
            }
            Sink::Remote(upload) => upload.finish().map_err(io),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Local(file) => file.write(buf),
            Sink::Remote(upload) => upload.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Local(file) => file.flush(),
            Sink::Remote(upload) => upload.flush(),
        }
    }
}

/// [`write_safetensors`] to `destination`.
pub(crate) fn write_safetensors_to(
    file: &SafetensorsFile,
    destination: Destination,
    mut fill: impl FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let &SafetensorsFile {
        path,
        metadata,
        tensors,
    } = file;
    let (header_bytes, lengths) = safetensors_header(path, metadata, tensors)?;
    let sink = Sink::open(path, destination)?;
    let mut out = Counting {
        inner: sink,
        written: 0,
    };
    let io = |e| CheckpointError::io(path, e);
    out.write_all(&(header_bytes.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(&header_bytes).map_err(io)?;
    for (i, (tensor, len)) in tensors.iter().zip(&lengths).enumerate() {
        let before = out.written;
        fill(i, &mut out).map_err(io)?;
        let written = out.written - before;
        if written != *len {
            return Err(CheckpointError::invalid(
                path,
                format!(
                    "tensor `{}`: wrote {written} bytes, its shape and dtype need {len}",
                    tensor.name
                ),
            ));
        }
    }
    out.inner.finish(path)
}

/// Mode 0644: a checkpoint is read by other users and services.
pub fn readable_by_all(path: &Path) -> Result<(), CheckpointError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| CheckpointError::io(path, e))?;
    }
    Ok(())
}
