//! Publishing a complete local checkpoint directory to an object-store prefix.
//!
//! An object store has no rename and no multi-object transaction, so completeness is told by
//! the checkpoint's *markers*: `config.json` (HF) and `metadata.yaml` (Fast-LLM), the files a
//! loader opens first. They are uploaded last, each by one single-request PUT (atomic: absent or
//! whole), after every other file is complete; the other documents (`*.index.json`, `ok`) just
//! before them.
//!
//! What a reader of the prefix observes, moment by moment:
//!
//! 1. **New prefix** (nothing under it before):
//!    - while the shards upload: shard objects appear one by one, each whole (a multipart
//!      upload is invisible until completed); no marker, so the prefix does not look complete;
//!    - then the index, then the marker: from the marker's PUT on, the checkpoint is complete;
//!    - on a failure: the multipart upload in progress is aborted (its parts freed) and every
//!      object this run created is deleted; no marker was ever written. A process killed
//!      outright (SIGKILL, power loss) cannot abort: its pending multipart upload stays until a
//!      bucket lifecycle rule (`AbortIncompleteMultipartUpload`) reaps it, and no marker exists.
//! 2. **Existing prefix, `force`**: the new checkpoint is first published whole, as in 1, under
//!    a hidden sibling prefix `.NAME.partial-PID-NANOS`; the old one stays untouched and
//!    complete meanwhile (a failure there leaves it so and deletes the sibling). Then the swap:
//!    the old markers are deleted (the prefix stops looking complete), every new file is
//!    copied server-side into place (markers last: from then on the new checkpoint is
//!    complete), old files the new one does not have are deleted, and so is the sibling. A run
//!    killed during the swap leaves a prefix without marker and the complete new checkpoint
//!    in the sibling.
//! 3. **Existing prefix, no `force`**: refused before any upload.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::PutPayload;
use object_store::path::Path as KeyPath;

use crate::{Location, Remote, StoreError};

/// The files a reader opens first to load a checkpoint: written last.
const MARKERS: [&str; 2] = ["config.json", "metadata.yaml"];

/// Why a bucket (or container) itself is refused as an output.
pub const BUCKET_ROOT: &str = "an output is a prefix inside a bucket (s3://bucket/models/name), not the bucket itself: \
                               --force would replace every object the bucket holds";

/// How [`Remote::publish`] treats an existing checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    /// Replace a prefix that already holds objects (else it is refused).
    pub force: bool,
}

/// What [`Remote::publish`] did.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Files uploaded, in upload order.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Whether an existing checkpoint was replaced.
    pub replaced: bool,
}

/// Upload order: data first, then the other documents, then the markers.
fn rank(name: &str) -> u8 {
    if MARKERS.contains(&name) {
        2
    } else if name.ends_with(".index.json") || name == "ok" {
        1
    } else {
        0
    }
}

impl Remote {
    /// Uploads the files of local directory `dir` (flat: subdirectories are refused) to this
    /// location, documents last (see the module doc for what a reader sees meanwhile).
    pub fn publish(&self, dir: &Path, options: PublishOptions) -> Result<Published, StoreError> {
        let (target, existing) = self.publication_target(options)?;
        self.publish_rest(&target, dir, &[], &existing)
    }

    /// Where a publication goes: this location when it holds nothing, else (with `force`) a
    /// hidden sibling, with the old checkpoint's keys to replace. Refused for a bucket root, and
    /// for an existing checkpoint without `force`.
    pub(crate) fn publication_target(&self, options: PublishOptions) -> Result<(Location, Vec<KeyPath>), StoreError> {
        let location = &self.location;
        if location.is_bucket_root() {
            return Err(StoreError::Refused {
                url: location.url.clone(),
                reason: BUCKET_ROOT.to_string(),
            });
        }
        let existing = self.list_all(location)?;
        if existing.is_empty() {
            return Ok((location.clone(), existing));
        }
        if !options.force {
            return Err(StoreError::Refused {
                url: location.url.clone(),
                reason: format!(
                    "the output already exists ({} object(s) under the prefix); --force replaces it once the new one \
                     is complete",
                    existing.len()
                ),
            });
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let sibling = location.sibling(&format!(".{}.partial-{}-{nanos}", location.name(), std::process::id()));
        Ok((sibling, existing))
    }

    /// Uploads the files of `dir` to `target` after the ones already `streamed` there (documents
    /// last), then, when `target` is a sibling, swaps the new checkpoint in for the `existing`
    /// one.
    pub(crate) fn publish_rest(
        &self,
        target: &Location,
        dir: &Path,
        streamed: &[(String, u64)],
        existing: &[KeyPath],
    ) -> Result<Published, StoreError> {
        let names = local_files(dir)?;
        let mut published = self.upload_all(target, dir, &names)?;
        published.bytes += streamed.iter().map(|(_, bytes)| bytes).sum::<u64>();
        let mut all: Vec<String> = streamed.iter().map(|(name, _)| name.clone()).collect();
        all.append(&mut published.files);
        published.files = all;
        if !existing.is_empty() {
            self.swap(target, &published.files, existing)?;
            published.replaced = true;
        }
        Ok(published)
    }

    /// Whether any object is under this location's prefix (an output that exists).
    pub fn has_objects(&self) -> Result<bool, StoreError> {
        Ok(!self.list_all(&self.location)?.is_empty())
    }

    /// Every key under `location`'s prefix (deep), for an emptiness check and the swap.
    fn list_all(&self, location: &Location) -> Result<Vec<KeyPath>, StoreError> {
        use futures::TryStreamExt;
        self.block_on(
            location
                .store
                .list(Some(&location.prefix))
                .map_ok(|m| m.location)
                .try_collect(),
        )
        .map_err(|e| StoreError::request(location, location.url.clone(), "listing", e))
    }

    /// Uploads `names` from `dir` to `location` in order; on failure, aborts the upload in
    /// progress and deletes what it created.
    fn upload_all(&self, location: &Location, dir: &Path, names: &[String]) -> Result<Published, StoreError> {
        let mut published = Published::default();
        for name in names {
            match self.upload(location, &dir.join(name), name) {
                Ok(bytes) => {
                    published.bytes += bytes;
                    published.files.push(name.clone());
                }
                Err(error) => {
                    for done in &published.files {
                        // Best effort: the error that stopped the upload is the one to report.
                        let _ = self.block_on(location.store.delete(&location.key(done)));
                    }
                    return Err(error);
                }
            }
        }
        Ok(published)
    }

    /// One file: a single PUT up to `part_bytes` (always for a marker), else a multipart upload
    /// of `part_bytes` parts with at most `concurrency` in flight, aborted on failure.
    fn upload(&self, location: &Location, path: &Path, name: &str) -> Result<u64, StoreError> {
        let local = |action, source| StoreError::Local {
            path: path.to_path_buf(),
            action,
            source,
        };
        let mut file = File::open(path).map_err(|e| local("opening", e))?;
        let size = file.metadata().map_err(|e| local("reading", e))?.len();
        let key = location.key(name);
        let url = location.url_of(name);
        let part = self.limits.part_bytes;
        if size <= part as u64 || rank(name) == 2 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).map_err(|e| local("reading", e))?;
            self.block_on(location.store.put(&key, PutPayload::from(bytes)))
                .map_err(|e| StoreError::request(location, url, "uploading", e))?;
            return Ok(size);
        }
        let concurrency = self.limits.concurrency;
        self.block_on(async {
            let mut upload = location
                .store
                .put_multipart(&key)
                .await
                .map_err(|e| StoreError::request(location, url.clone(), "starting a multipart upload", e))?;
            let mut in_flight: FuturesUnordered<object_store::UploadPart> = FuturesUnordered::new();
            let parts: Result<(), StoreError> = async {
                loop {
                    let mut buffer = vec![0; part];
                    let read = read_full(&mut file, &mut buffer).map_err(|e| local("reading", e))?;
                    if read == 0 {
                        break;
                    }
                    buffer.truncate(read);
                    while in_flight.len() >= concurrency {
                        if let Some(done) = in_flight.next().await {
                            done.map_err(|e| StoreError::request(location, url.clone(), "uploading a part", e))?;
                        }
                    }
                    in_flight.push(upload.put_part(PutPayload::from(buffer)));
                }
                while let Some(done) = in_flight.next().await {
                    done.map_err(|e| StoreError::request(location, url.clone(), "uploading a part", e))?;
                }
                Ok(())
            }
            .await;
            // Parts still in flight after a failure are cancelled before the abort frees the rest.
            drop(in_flight);
            let completed = match parts {
                Ok(()) => upload
                    .complete()
                    .await
                    .map_err(|e| StoreError::request(location, url.clone(), "completing a multipart upload", e)),
                Err(error) => Err(error),
            };
            if completed.is_err() {
                // The failure itself is what is reported; the abort frees the parts stored.
                let _ = upload.abort().await;
            }
            completed.map(|_| size)
        })
    }

    /// Replaces the checkpoint at this location with the one complete at `staging`.
    fn swap(&self, staging: &Location, names: &[String], old: &[KeyPath]) -> Result<(), StoreError> {
        let location = &self.location;
        let store = &location.store;
        let fail = |url: String, action| move |e| StoreError::request(location, url, action, e);
        for marker in MARKERS {
            let key = location.key(marker);
            if old.contains(&key) {
                self.block_on(store.delete(&key))
                    .map_err(fail(location.url_of(marker), "deleting the old marker"))?;
            }
        }
        for name in names {
            self.block_on(store.copy(&staging.key(name), &location.key(name)))
                .map_err(fail(location.url_of(name), "copying into place"))?;
        }
        let new: Vec<KeyPath> = names.iter().map(|name| location.key(name)).collect();
        for key in old.iter().filter(|key| !new.contains(key)) {
            self.block_on(store.delete(key))
                .map_err(fail(format!("{}/{key}", location.bucket), "deleting an old file"))?;
        }
        for name in names {
            self.block_on(store.delete(&staging.key(name)))
                .map_err(fail(staging.url_of(name), "deleting the staged copy"))?;
        }
        Ok(())
    }
}

/// The files of `dir` in upload order; a subdirectory or other non-file is refused.
fn local_files(dir: &Path) -> Result<Vec<String>, StoreError> {
    let local = |source| StoreError::Local {
        path: dir.to_path_buf(),
        action: "listing",
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(local)? {
        let entry = entry.map_err(local)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().map_err(local)?.is_file() {
            return Err(StoreError::Refused {
                url: dir.display().to_string(),
                reason: format!("`{name}` is not a regular file; a checkpoint to publish is flat"),
            });
        }
        names.push(name);
    }
    names.sort_by(|a, b| (rank(a), a).cmp(&(rank(b), b)));
    Ok(names)
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_upload_after_data_and_markers_last() {
        let dir = std::env::temp_dir().join(format!("fastllm-store-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "metadata.yaml",
            "ok",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let names = local_files(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            names,
            [
                "model-00001-of-00002.safetensors",
                "tokenizer.json",
                "model.safetensors.index.json",
                "ok",
                "config.json",
                "metadata.yaml"
            ]
        );
    }
}
