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

    /// A hint: `ranges` (file and bytes, in order) are read next, after the read in progress.
    /// An implementation may start fetching them now, within its bounds; a later [`Self::read`]
    /// of the same file and range takes over what was fetched.
    fn read_ahead(&self, ranges: &[(&str, Range<u64>)]) {
        let _ = ranges;
    }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::policy::{HeaderBudget, InputDir};
    use crate::read::Shards;
    use crate::{CheckpointError, FileSet};

    /// One remote safetensors file, handed out in parts of 3 bytes; `short` answers a read with
    /// half of what it asked for.
    struct Fake {
        bytes: Vec<u8>,
        header: Vec<u8>,
        short: bool,
    }

    impl RemoteFiles for Fake {
        fn file(&self, name: &str) -> Option<RemoteFile<'_>> {
            (name == "model.safetensors").then_some(RemoteFile {
                url: "s3://b/m/model.safetensors",
                size: self.bytes.len() as u64,
                header: &self.header,
            })
        }

        fn names(&self) -> Vec<String> {
            vec!["model.safetensors".to_string()]
        }

        fn read(
            &self,
            _: &str,
            range: Range<u64>,
            sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        ) -> Result<(), RangeError> {
            let (start, end) = (range.start as usize, range.end as usize);
            if self.short {
                let found = (end - start) / 2;
                return Err(RangeError::Short {
                    expected: (end - start) as u64,
                    found: found as u64,
                });
            }
            self.bytes[start..end]
                .chunks(3)
                .try_for_each(sink)
                .map_err(RangeError::Sink)
        }
    }

    /// A remote safetensors file of one F32 tensor `w` of 4 elements, whose header says its
    /// data ends at `end`, served without short reads.
    fn remote_file(end: usize) -> Fake {
        let json = format!(
            r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{end}]}}}}"#,
            end / 4
        );
        let mut header = (json.len() as u64).to_le_bytes().to_vec();
        header.extend_from_slice(json.as_bytes());
        let mut bytes = header.clone();
        bytes.extend((0..16u8).map(|b| b * 3));
        Fake {
            bytes,
            header,
            short: false,
        }
    }

    fn open(fake: Fake) -> Result<FileSet, CheckpointError> {
        // One directory a call: the tests run at once.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = crate::scratch::scratch("source", &call.to_string());
        let input = InputDir::new(&dir)?;
        let remote = RemoteInput(Arc::new(fake));
        let shards = Shards {
            input: &input,
            remote: Some(&remote),
        };
        let file = shards.open("model.safetensors", &mut HeaderBudget::new())?;
        Ok(FileSet::of(PathBuf::from("s3://b/m"), vec![file]))
    }

    #[test]
    fn a_remote_tensor_is_read_whole_or_streamed_in_parts() {
        let remote = remote_file(16);
        let data = remote.bytes[remote.bytes.len() - 16..].to_vec();
        let files = open(remote).unwrap();
        assert_eq!(files.tensor("w").unwrap().shape, [4]);
        assert_eq!(files.get("w").unwrap().data, data);
        assert_eq!(files.read("w", vec![7; 3]).unwrap(), data);
        let mut streamed = Vec::new();
        files.write_to("w", &mut streamed).unwrap();
        assert_eq!(streamed, data);
    }

    #[test]
    fn a_remote_header_past_its_object_is_refused_before_any_read() {
        let error = open(remote_file(20)).err().unwrap().to_string();
        assert!(error.contains("model.safetensors: invalid safetensors file"), "{error}");
        assert!(error.contains("end at byte 20"), "{error}");
    }

    #[test]
    fn a_short_read_names_the_url_the_tensor_and_the_bytes() {
        let files = open(Fake {
            short: true,
            ..remote_file(16)
        })
        .unwrap();
        let error = files.read("w", Vec::new()).unwrap_err().to_string();
        assert!(
            error.starts_with("s3://b/m/model.safetensors: tensor `w`: reading bytes "),
            "{error}"
        );
        assert!(error.contains("returned 8 bytes where 16 were expected"), "{error}");
    }
}
