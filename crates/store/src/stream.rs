//! Publishing while the conversion writes: large files uploaded as their bytes are produced,
//! never staged on local disk.
//!
//! A [`Publication`] decides where the new checkpoint goes before its first byte (the location
//! itself when it holds nothing, else the hidden sibling of [`Remote::publish`]'s `force`), hands
//! out one [`Upload`] a file, then uploads the documents of a local directory (the index, the
//! markers last) and swaps an old checkpoint out, exactly as [`Remote::publish`] does: a reader
//! sees what `publish`'s module doc says, the streamed files being its data files.
//!
//! An [`Upload`] gathers `part_bytes` and hands each part to the IO runtime at once (a multipart
//! upload, started with the first full part), at most `concurrency` parts in flight for the
//! whole publication, however many of its files are being written at once (a distributed
//! checkpoint's rank files grow together): the conversion goes on while they upload, and waits
//! only when all are busy. A file no larger than one part is a single PUT at its end. Memory:
//! per file being written, the part being filled; and `concurrency` parts in flight. An upload
//! dropped unfinished is aborted (its parts freed); a publication dropped unfinished deletes
//! every file it completed.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use object_store::{MultipartUpload, PutPayload};
use tokio::sync::Semaphore;

use crate::publish::{PublishOptions, Published};
use crate::{Location, Remote, StoreError};

/// A checkpoint being published file by file (see the module doc).
pub struct Publication {
    remote: Arc<Remote>,
    /// Where the files go: the location, or the sibling an old checkpoint is replaced from.
    target: Location,
    /// The old checkpoint's keys, replaced at the end (`force`); empty for a new location.
    existing: Vec<object_store::path::Path>,
    /// Files completed so far, in order, with their sizes.
    uploaded: Arc<Mutex<Vec<(String, u64)>>>,
    /// One permit a part in flight, shared by every upload: at most `concurrency`.
    parts: Arc<Semaphore>,
    finished: bool,
}

impl Remote {
    /// Starts publishing to this location; refused, before any upload, for a bucket root or an
    /// existing checkpoint without `force`.
    pub fn start_publication(self: &Arc<Self>, options: PublishOptions) -> Result<Publication, StoreError> {
        let (target, existing) = self.publication_target(options)?;
        Ok(Publication::new(Arc::clone(self), target, existing))
    }
}

impl Publication {
    pub(crate) fn new(remote: Arc<Remote>, target: Location, existing: Vec<object_store::path::Path>) -> Publication {
        let parts = Arc::new(Semaphore::new(remote.limits.concurrency));
        Publication {
            remote,
            target,
            existing,
            uploaded: Default::default(),
            parts,
            finished: false,
        }
    }

    pub(crate) fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Where the files go.
    pub(crate) fn target(&self) -> &Location {
        &self.target
    }

    /// Counts file `name` (of `size` bytes) as uploaded.
    pub(crate) fn record(&self, name: &str, size: u64) {
        lock(&self.uploaded).push((name.to_string(), size));
    }

    /// Starts the upload of file `name`: its bytes written in order, then [`Upload::finish`].
    pub fn upload(&self, name: &str) -> Upload {
        Upload {
            remote: Arc::clone(&self.remote),
            target: self.target.clone(),
            name: name.to_string(),
            part: Vec::new(),
            bytes: 0,
            multipart: None,
            in_flight: VecDeque::new(),
            uploaded: Arc::clone(&self.uploaded),
            parts: Arc::clone(&self.parts),
        }
    }

    /// Uploads the files of local directory `dir` (documents last), then puts the new
    /// checkpoint in place of an old one; on failure, deletes what was uploaded.
    pub fn finish(mut self, dir: &Path) -> Result<Published, StoreError> {
        self.finished = true;
        let streamed = lock(&self.uploaded).clone();
        let result = self.remote.publish_rest(&self.target, dir, &streamed, &self.existing);
        if result.is_err() {
            self.delete_streamed();
        }
        result
    }

    fn delete_streamed(&self) {
        for (name, _) in lock(&self.uploaded).iter() {
            // Best effort: the error that stopped the publication is the one to report.
            let _ = self.remote.block_on(self.target.store.delete(&self.target.key(name)));
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if !self.finished {
            self.delete_streamed();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One file being uploaded (see the module doc).
pub struct Upload {
    remote: Arc<Remote>,
    target: Location,
    name: String,
    /// The part being filled.
    part: Vec<u8>,
    /// Bytes written so far.
    bytes: u64,
    multipart: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<tokio::task::JoinHandle<object_store::Result<()>>>,
    uploaded: Arc<Mutex<Vec<(String, u64)>>>,
    /// The publication's part permits.
    parts: Arc<Semaphore>,
}

impl Upload {
    fn failed(&self, action: &'static str, error: object_store::Error) -> std::io::Error {
        std::io::Error::other(StoreError::request(
            &self.target,
            self.target.url_of(&self.name),
            action,
            error,
        ))
    }

    fn stopped(&self) -> std::io::Error {
        std::io::Error::other(format!("{}: the IO runtime stopped", self.target.url_of(&self.name)))
    }

    /// Waits for the oldest part in flight.
    fn wait_one(&mut self) -> std::io::Result<()> {
        let Some(part) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match self.remote.wait(part) {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(self.failed("uploading a part", e)),
            _ => Err(self.stopped()),
        }
    }

    /// Hands the filled part to the runtime, starting the multipart upload with the first.
    fn send_part(&mut self) -> std::io::Result<()> {
        if self.multipart.is_none() {
            let (store, key) = (Arc::clone(&self.target.store), self.target.key(&self.name));
            let started = self.remote.wait(async move { store.put_multipart(&key).await });
            match started {
                Some(Ok(multipart)) => self.multipart = Some(multipart),
                Some(Err(e)) => return Err(self.failed("starting a multipart upload", e)),
                None => return Err(self.stopped()),
            }
        }
        // Parts already done: a failure among them is the answer.
        while self.in_flight.front().is_some_and(|part| part.is_finished()) {
            self.wait_one()?;
        }
        // Waits while `concurrency` parts of the publication's files are in flight.
        let parts = Arc::clone(&self.parts);
        let Some(Ok(permit)) = self.remote.wait(async move { parts.acquire_owned().await }) else {
            return Err(self.stopped());
        };
        let bytes = std::mem::take(&mut self.part);
        let multipart = self.multipart.as_mut().expect("started above");
        let upload = multipart.put_part(PutPayload::from(bytes));
        self.in_flight.push_back(self.remote.spawn(async move {
            let uploaded = upload.await;
            drop(permit);
            uploaded
        }));
        Ok(())
    }

    /// Completes the file (a single PUT when it fits in one part): from then on it is listed.
    pub fn finish(mut self) -> std::io::Result<()> {
        match self.multipart.take() {
            None => {
                let (store, key) = (Arc::clone(&self.target.store), self.target.key(&self.name));
                let payload = PutPayload::from(std::mem::take(&mut self.part));
                match self.remote.wait(async move { store.put(&key, payload).await }) {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(self.failed("uploading", e)),
                    None => return Err(self.stopped()),
                }
            }
            Some(multipart) => {
                self.multipart = Some(multipart);
                if !self.part.is_empty() {
                    self.send_part()?;
                }
                while !self.in_flight.is_empty() {
                    self.wait_one()?;
                }
                let mut multipart = self.multipart.take().expect("started");
                let completed = self.remote.wait(async move {
                    let completed = multipart.complete().await;
                    (multipart, completed)
                });
                match completed {
                    Some((_, Ok(_))) => {}
                    Some((multipart, Err(e))) => {
                        // Kept for the drop's abort, which frees the parts stored.
                        self.multipart = Some(multipart);
                        return Err(self.failed("completing a multipart upload", e));
                    }
                    None => return Err(self.stopped()),
                }
            }
        }
        lock(&self.uploaded).push((self.name.clone(), self.bytes));
        Ok(())
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let part_bytes = self.remote.limits.part_bytes;
        if self.part.capacity() == 0 {
            self.part.reserve_exact(part_bytes);
        }
        let n = buf.len().min(part_bytes - self.part.len());
        self.part.extend_from_slice(&buf[..n]);
        self.bytes += n as u64;
        if self.part.len() == part_bytes {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Unfinished (the conversion failed): stop the parts, free what the store holds.
        if let Some(mut multipart) = self.multipart.take() {
            for part in self.in_flight.drain(..) {
                part.abort();
            }
            let _ = self.remote.wait(async move { multipart.abort().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path as KeyPath;
    use object_store::{
        GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutResult,
        UploadPart,
    };

    use super::*;
    use crate::{IoLimits, MIN_PART_BYTES, Retries};

    /// Part uploads in flight now, and the most at once.
    #[derive(Debug, Default)]
    struct InFlight {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// An in-memory store whose part uploads take a while, counted in [`InFlight`].
    #[derive(Debug)]
    struct SlowParts {
        inner: InMemory,
        in_flight: Arc<InFlight>,
    }

    impl fmt::Display for SlowParts {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SlowParts")
        }
    }

    #[async_trait]
    impl ObjectStore for SlowParts {
        async fn put_opts(
            &self,
            location: &KeyPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &KeyPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            Ok(Box::new(SlowUpload {
                inner,
                in_flight: Arc::clone(&self.in_flight),
            }))
        }

        async fn get_opts(&self, location: &KeyPath, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        async fn delete(&self, location: &KeyPath) -> object_store::Result<()> {
            self.inner.delete(location).await
        }

        fn list(&self, prefix: Option<&KeyPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&KeyPath>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy(&self, from: &KeyPath, to: &KeyPath) -> object_store::Result<()> {
            self.inner.copy(from, to).await
        }

        async fn copy_if_not_exists(&self, from: &KeyPath, to: &KeyPath) -> object_store::Result<()> {
            self.inner.copy_if_not_exists(from, to).await
        }
    }

    #[derive(Debug)]
    struct SlowUpload {
        inner: Box<dyn MultipartUpload>,
        in_flight: Arc<InFlight>,
    }

    #[async_trait]
    impl MultipartUpload for SlowUpload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            let part = self.inner.put_part(data);
            let in_flight = Arc::clone(&self.in_flight);
            Box::pin(async move {
                let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
                in_flight.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                let uploaded = part.await;
                in_flight.now.fetch_sub(1, Ordering::SeqCst);
                uploaded
            })
        }

        async fn complete(&mut self) -> object_store::Result<PutResult> {
            self.inner.complete().await
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            self.inner.abort().await
        }
    }

    /// Four files written together, a part to each in turn (as a distributed checkpoint's rank
    /// files grow): never more than `concurrency` parts in flight for the publication, and
    /// every file whole.
    #[test]
    fn the_parts_in_flight_are_bounded_across_the_files_written_together() {
        let concurrency = 2;
        let limits = IoLimits {
            concurrency,
            part_bytes: MIN_PART_BYTES,
        };
        let remote = Remote::open("s3://bucket/out", limits, Retries::default()).unwrap();
        let in_flight = Arc::new(InFlight::default());
        let store = Arc::new(SlowParts {
            inner: InMemory::new(),
            in_flight: Arc::clone(&in_flight),
        });
        let mut location = remote.location.clone();
        location.store = store.clone();
        let remote = Arc::new(Remote { location, ..remote });
        let publication = remote.start_publication(PublishOptions { force: false }).unwrap();
        let contents: Vec<Vec<u8>> = (0..4u8)
            .map(|file| (0..3 * MIN_PART_BYTES + 100).map(|i| file ^ (i % 251) as u8).collect())
            .collect();
        let mut uploads: Vec<Upload> = (0..4)
            .map(|file| publication.upload(&format!("rank_{file}.safetensors")))
            .collect();
        for piece in 0..4 {
            for (upload, bytes) in uploads.iter_mut().zip(&contents) {
                let start = piece * MIN_PART_BYTES;
                upload
                    .write_all(&bytes[start..(start + MIN_PART_BYTES).min(bytes.len())])
                    .unwrap();
            }
        }
        for upload in uploads {
            upload.finish().unwrap();
        }
        assert_eq!(in_flight.most.load(Ordering::SeqCst), concurrency);
        for (file, bytes) in contents.iter().enumerate() {
            let key = KeyPath::from(format!("out/rank_{file}.safetensors"));
            let stored = remote
                .block_on(async { store.inner.get(&key).await?.bytes().await })
                .unwrap();
            assert!(stored == bytes[..], "rank_{file}");
        }
    }
}
