//! Reading a remote checkpoint: listing its files, a safetensors header by ranged GETs, files by
//! concurrent ranged GETs.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::{Remote, StoreError};

/// The first guess of a safetensors header's size: real headers hold about 150 bytes a tensor,
/// so this reads the whole header of a shard of up to ~1,700 tensors in one request.
const HEADER_GUESS: u64 = 256 << 10;

/// One file of a remote checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name relative to the checkpoint's prefix (no `/`).
    pub name: String,
    pub size: u64,
}

/// A part's request, spawned.
type PartRequest = tokio::task::JoinHandle<Result<Bytes, RangeFailure>>;

/// A range [`Remote::read_ahead`] started fetching: the requests of its first parts, in order.
pub(crate) struct Ahead {
    /// Which [`Remote::read_ahead`] call started it.
    call: u64,
    name: String,
    range: Range<u64>,
    parts: Vec<(Range<u64>, PartRequest)>,
}

/// `range` cut into parts of at most `part` bytes.
fn parts_of(range: Range<u64>, part: usize) -> impl Iterator<Item = Range<u64>> {
    let end = range.end;
    (range.start..end)
        .step_by(part)
        .map(move |start| start..(start + part as u64).min(end))
}

/// Why [`Remote::read_parts`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    /// A request failed or came back short.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink refused a part.
    #[error(transparent)]
    Sink(std::io::Error),
}

/// What [`Remote::fetch`] transferred.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetched {
    pub bytes: u64,
    pub requests: u64,
}

impl Remote {
    /// The checkpoint's files: the objects directly under its prefix, by name. Deeper keys are
    /// not part of a checkpoint's flat layout and are left out.
    pub fn list(&self) -> Result<Vec<RemoteFile>, StoreError> {
        self.list_at(&self.location)
    }

    /// The size of file `name`, `None` when there is none (how an HTTP location, which cannot
    /// be listed, is probed).
    pub fn size_of(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let location = &self.location;
        match self.block_on(location.store.head(&location.key(name))) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::request(location, location.url_of(name), "looking up", e)),
        }
    }

    /// Bytes `range` of `file`, checked to be all there.
    pub fn get_range(&self, file: &RemoteFile, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.block_on(get_range(self, file, range))
    }

    /// The header of safetensors file `file` (its 8-byte length and the JSON after it) by one
    /// ranged GET, or two when it is longer than the first guess; a header longer than
    /// `max_header_bytes` is refused before its second request.
    pub fn read_header(&self, file: &RemoteFile, max_header_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let url = self.location.url_of(&file.name);
        let first = self.get_range(file, 0..file.size.min(HEADER_GUESS))?;
        let Some(length) = first
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        else {
            return Err(StoreError::Refused {
                url,
                reason: format!("a safetensors file of {} bytes, too short for a header", file.size),
            });
        };
        if length > max_header_bytes {
            return Err(StoreError::Refused {
                url,
                reason: format!(
                    "safetensors header too large: {length} bytes, more than the {max_header_bytes} a header may have"
                ),
            });
        }
        let end = 8 + length;
        if end > file.size {
            return Err(StoreError::Refused {
                url,
                reason: format!("the header says {length} bytes but the file has {} bytes", file.size),
            });
        }
        let mut header = first.to_vec();
        if end > first.len() as u64 {
            header.extend_from_slice(&self.get_range(file, first.len() as u64..end)?);
        }
        header.truncate(end as usize);
        Ok(header)
    }

    /// Hands bytes `range` of `file` to `sink` in order, in parts of at most `part_bytes`, each
    /// fetched by its own ranged GET: at most `concurrency` requests in flight (they go on while
    /// `sink` writes), so at most `concurrency × part_bytes` bytes held, whatever the range.
    pub fn read_parts(
        &self,
        file: &RemoteFile,
        range: Range<u64>,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), PartsError> {
        let started = self.take_ahead(file, &range);
        let rest = started.last().map_or(range.start, |(part, _)| part.end)..range.end;
        let started = started.into_iter().map(|(_, request)| request);
        // Each spawned when `buffered` takes it: at most `concurrency` ahead of the sink.
        let rest = parts_of(rest, self.limits.part_bytes).map(|part| self.spawn_part(file, part));
        let location = &self.location;
        self.block_on(async {
            let mut parts = futures::stream::iter(started.chain(rest))
                .map(|request| {
                    let url = location.url_of(&file.name);
                    async move {
                        match request.await {
                            Ok(result) => result.map_err(|e| e.at(location, url)),
                            Err(joined) => Err(StoreError::Request {
                                url,
                                action: "reading",
                                source: Box::new(object_store::Error::JoinError { source: joined }),
                            }),
                        }
                    }
                })
                .buffered(self.limits.concurrency);
            while let Some(bytes) = parts.next().await {
                sink(&bytes?).map_err(PartsError::Sink)?;
            }
            Ok(())
        })
    }

    /// Starts fetching the first parts of `ranges` (files and bytes, in the order they will be
    /// read), at most `concurrency × part_bytes` bytes ahead in all (counting what earlier calls
    /// started and no read took over yet); a later [`Remote::read_parts`] of the same file and
    /// range takes the requests over. Each waits for a request slot like a read's, so at most
    /// `concurrency` requests are in flight. What the call before the previous one started and
    /// no read took over is dropped (its requests cancelled): those ranges were not read as
    /// announced.
    pub fn read_ahead(&self, ranges: &[(&RemoteFile, Range<u64>)]) {
        let mut guard = self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (calls, ahead) = &mut *guard;
        *calls += 1;
        let call = *calls;
        ahead.retain(|a| {
            let current = a.call + 1 >= call;
            if !current {
                a.parts.iter().for_each(|(_, request)| request.abort());
            }
            current
        });
        let held: u64 = (ahead.iter().flat_map(|a| &a.parts))
            .map(|(part, _)| part.end - part.start)
            .sum();
        let mut budget = (self.limits.concurrency as u64 * self.limits.part_bytes as u64).saturating_sub(held);
        for (file, range) in ranges {
            if ahead.iter().any(|a| a.name == file.name && a.range == *range) {
                continue;
            }
            let mut parts = Vec::new();
            for part in parts_of(range.clone(), self.limits.part_bytes) {
                let bytes = part.end - part.start;
                if bytes > budget {
                    break;
                }
                budget -= bytes;
                parts.push((part.clone(), self.spawn_part(file, part)));
            }
            if parts.is_empty() {
                break;
            }
            ahead.push(Ahead {
                call,
                name: file.name.clone(),
                range: range.clone(),
                parts,
            });
        }
    }

    /// The requests [`Remote::read_ahead`] started for `range` of `file`, taken over.
    fn take_ahead(&self, file: &RemoteFile, range: &Range<u64>) -> Vec<(Range<u64>, PartRequest)> {
        let mut guard = self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ahead = &mut guard.1;
        match ahead.iter().position(|a| a.name == file.name && a.range == *range) {
            Some(found) => ahead.remove(found).parts,
            None => Vec::new(),
        }
    }

    /// Requests bytes `part` of `file` on the runtime, so that it goes on while the caller's
    /// sink runs, once a request slot is free.
    fn spawn_part(&self, file: &RemoteFile, part: Range<u64>) -> PartRequest {
        let (store, key) = (self.location.store.clone(), self.location.key(&file.name));
        let permits = self.permits.clone();
        self.runtime.spawn(async move {
            // The semaphore is never closed; without a permit the request would still be right.
            let _slot = permits.acquire_owned().await.ok();
            checked_range(store, &key, part).await
        })
    }

    /// Downloads `files` into directory `dir` (which must not hold them yet) by concurrent
    /// ranged GETs of at most `part_bytes`, at most `concurrency` at once, each written in
    /// place as it arrives.
    pub fn fetch(&self, files: &[RemoteFile], dir: &Path) -> Result<Fetched, StoreError> {
        let opened = files
            .iter()
            .map(|file| {
                let path = dir.join(&file.name);
                let local = |action, source| StoreError::Local {
                    path: path.clone(),
                    action,
                    source,
                };
                let handle = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| local("creating", e))?;
                handle.set_len(file.size).map_err(|e| local("sizing", e))?;
                Ok(handle)
            })
            .collect::<Result<Vec<File>, StoreError>>()?;
        let part = self.limits.part_bytes as u64;
        let pieces = files.iter().enumerate().flat_map(|(index, file)| {
            (0..file.size.div_ceil(part)).map(move |k| (index, k * part..((k + 1) * part).min(file.size)))
        });
        let mut fetched = Fetched::default();
        self.block_on(
            futures::stream::iter(pieces)
                .map(|(index, range)| async move {
                    let bytes = get_range(self, &files[index], range.clone()).await?;
                    Ok::<_, StoreError>((index, range.start, bytes))
                })
                .buffer_unordered(self.limits.concurrency)
                .try_for_each(|(index, offset, bytes)| {
                    let written = opened[index]
                        .write_all_at(&bytes, offset)
                        .map_err(|source| StoreError::Local {
                            path: dir.join(&files[index].name),
                            action: "writing",
                            source,
                        });
                    fetched.bytes += bytes.len() as u64;
                    fetched.requests += 1;
                    futures::future::ready(written)
                }),
        )?;
        Ok(fetched)
    }
}

async fn get_range(remote: &Remote, file: &RemoteFile, range: Range<u64>) -> Result<Bytes, StoreError> {
    let location = &remote.location;
    checked_range(location.store.clone(), &location.key(&file.name), range)
        .await
        .map_err(|e| e.at(location, location.url_of(&file.name)))
}

/// A failed ranged GET, before it is told which URL it was.
enum RangeFailure {
    Request(object_store::Error),
    Short { range: Range<u64>, found: u64 },
}

impl RangeFailure {
    fn at(self, location: &crate::Location, url: String) -> StoreError {
        match self {
            RangeFailure::Request(e) => StoreError::request(location, url, "reading", e),
            RangeFailure::Short { range, found } => StoreError::Short {
                url,
                start: range.start,
                end: range.end,
                found,
            },
        }
    }
}

/// Bytes `range` of object `key`, checked to be all there.
async fn checked_range(
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    key: &object_store::path::Path,
    range: Range<u64>,
) -> Result<Bytes, RangeFailure> {
    let expected = range.end - range.start;
    let bytes = store
        .get_range(key, range.clone())
        .await
        .map_err(RangeFailure::Request)?;
    if bytes.len() as u64 != expected {
        return Err(RangeFailure::Short {
            range,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// A remote at `s3://bucket/ckpt` over an in-memory store holding `objects`.
    fn remote(objects: &[(&str, Vec<u8>)]) -> Remote {
        crate::testing::in_memory_remote("s3://bucket/ckpt", objects)
    }

    fn safetensors(header_bytes: usize, data: usize) -> Vec<u8> {
        let mut file = (header_bytes as u64).to_le_bytes().to_vec();
        file.extend(std::iter::repeat_n(b' ', header_bytes));
        file.extend(std::iter::repeat_n(7, data));
        file
    }

    #[rstest]
    #[case::one_get(1000)]
    #[case::two_gets(300_000)]
    fn a_header_is_read_whole_whatever_its_length(#[case] header: usize) {
        let remote = remote(&[("ckpt/model.safetensors", safetensors(header, 64))]);
        let file = remote.list().unwrap().remove(0);
        assert_eq!(remote.read_header(&file, 16 << 20).unwrap(), safetensors(header, 0));
    }

    #[test]
    fn a_header_past_the_limit_or_the_file_is_refused() {
        let remote = remote(&[
            ("ckpt/a.safetensors", safetensors(1000, 0)),
            ("ckpt/b.safetensors", {
                let mut lying = safetensors(10, 0);
                lying[..8].copy_from_slice(&1_000_000u64.to_le_bytes());
                lying
            }),
        ]);
        let files = remote.list().unwrap();
        let error = remote.read_header(&files[0], 999).unwrap_err().to_string();
        assert!(error.contains("header too large: 1000 bytes"), "{error}");
        let error = remote.read_header(&files[1], 16 << 20).unwrap_err().to_string();
        assert!(error.contains("the header says 1000000 bytes"), "{error}");
    }

    #[test]
    fn a_read_takes_over_what_was_read_ahead_within_the_window() {
        let big: Vec<u8> = (0..(30 << 20)).map(|i: u32| i.to_le_bytes()[1]).collect();
        let remote = remote(&[("ckpt/a.safetensors", big.clone()), ("ckpt/b.safetensors", big.clone())]);
        let files = remote.list().unwrap();
        let (a, b) = (&files[0], &files[1]);
        // Within the window (8 parts of 16 MiB): both ranges, two parts each.
        remote.read_ahead(&[(a, 0..30 << 20), (b, 1..(30 << 20) - 1)]);
        let ahead = |remote: &Remote| -> Vec<(String, usize)> {
            let ahead = remote.ahead.lock().unwrap();
            ahead.1.iter().map(|a| (a.name.clone(), a.parts.len())).collect()
        };
        assert_eq!(
            ahead(&remote),
            [("a.safetensors".to_string(), 2), ("b.safetensors".to_string(), 2)]
        );
        let mut read = Vec::new();
        remote
            .read_parts(b, 1..(30 << 20) - 1, &mut |part| {
                read.extend_from_slice(part);
                Ok(())
            })
            .unwrap();
        assert!(read == big[1..(30 << 20) - 1]);
        assert_eq!(ahead(&remote), [("a.safetensors".to_string(), 2)]);
        // Another range of `a` is not what was read ahead: read on its own.
        let mut read = Vec::new();
        remote
            .read_parts(a, 5..10, &mut |part| {
                read.extend_from_slice(part);
                Ok(())
            })
            .unwrap();
        assert_eq!(read, big[5..10]);
        assert_eq!(ahead(&remote).len(), 1);
    }

    #[test]
    fn listing_keeps_the_files_directly_under_the_prefix_and_fetch_writes_them() {
        let big: Vec<u8> = (0..(12 << 20)).map(|i: u32| i.to_le_bytes()[1]).collect();
        let remote = remote(&[
            ("ckpt/config.json", b"{}".to_vec()),
            ("ckpt/model.safetensors", big.clone()),
            ("ckpt/deeper/other.json", b"{}".to_vec()),
            ("ckpt2/config.json", b"{}".to_vec()),
        ]);
        let files = remote.list().unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["config.json", "model.safetensors"]);
        let dir = std::env::temp_dir().join(format!("fastllm-store-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fetched = remote.fetch(&files, &dir);
        let (config, model) = (
            std::fs::read(dir.join("config.json")),
            std::fs::read(dir.join("model.safetensors")),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let fetched = fetched.unwrap();
        // 16 MiB parts (at least 5 MiB): one request each.
        assert_eq!((fetched.bytes, fetched.requests), (2 + (12 << 20), 2));
        assert_eq!(config.unwrap(), b"{}");
        assert!(model.unwrap() == big);
    }
}
