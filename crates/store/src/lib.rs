//! Checkpoints in object storage (S3 and S3-compatible servers, GCS, Azure; HTTP read-only)
//! through the `object_store` crate.
//!
//! Three operations, each bounded in concurrency and memory by [`IoLimits`] (at most
//! `concurrency` requests in flight, each holding at most `part_bytes`):
//!
//! * [`Remote::list`] — the checkpoint's files (the objects directly under its prefix).
//! * [`Remote::read_header`] — a safetensors header by one ranged GET (two when it is larger
//!   than the first guess).
//! * [`Remote::read_parts`] — a byte range by concurrent ranged GETs handed on in order (what a
//!   conversion reads tensors with); [`Remote::fetch`] — small files downloaded whole.
//! * [`Remote::publish`] — a local checkpoint directory uploaded (multipart for large files),
//!   its documents last; see [`publish`] for what a reader can observe at each moment.
//! * [`Remote::start_publication`] — the same, its data files uploaded while a conversion
//!   writes them ([`stream`]), never staged on local disk.
//! * [`Remote::beside`], [`Remote::names_beside`], [`Remote::start_replacement`],
//!   [`Publication::copy_in`] — prefixes beside a checkpoint's, where the parts of a conversion
//!   split across machines are written, then copied server-side into the checkpoint.
//!
//! Requests are retried with exponential backoff on 5xx, throttling and dropped connections
//! ([`Retries`]); a refusal of the credentials names the bucket and the variables that hold them.

//!
//! Without its default `client` feature the crate holds only [`Scheme`] and [`is_remote`]: what
//! a build without object-store support needs to tell a URL from a local path and refuse it.

#[cfg(feature = "client")]
mod beside;
#[cfg(feature = "client")]
mod location;
#[cfg(feature = "client")]
pub mod publish;
#[cfg(feature = "client")]
mod read;
mod scheme;
#[cfg(feature = "client")]
pub mod stream;
#[cfg(all(test, feature = "client"))]
mod testing;

#[cfg(feature = "client")]
use std::future::Future;
#[cfg(feature = "client")]
use std::path::PathBuf;

#[cfg(feature = "client")]
pub use self::location::{Location, Retries};
#[cfg(feature = "client")]
pub use self::publish::{BUCKET_ROOT, PublishOptions};
#[cfg(feature = "client")]
pub use self::read::{Fetched, PartsError, RemoteFile};
pub use self::scheme::{Scheme, is_remote};
#[cfg(feature = "client")]
pub use self::stream::{Publication, Upload};

/// How much IO a transfer may have in flight: `concurrency` requests, each of at most
/// `part_bytes` (the ranged-GET size and the multipart part size), so at most
/// `concurrency × part_bytes` of buffers.
#[cfg(feature = "client")]
#[derive(Debug, Clone, Copy)]
pub struct IoLimits {
    pub concurrency: usize,
    pub part_bytes: usize,
}

/// The smallest multipart part S3 accepts (but the last).
#[cfg(feature = "client")]
pub const MIN_PART_BYTES: usize = 5 << 20;

#[cfg(feature = "client")]
impl Default for IoLimits {
    fn default() -> Self {
        IoLimits {
            concurrency: 8,
            part_bytes: 16 << 20,
        }
    }
}

/// Why an object-store operation failed.
#[cfg(feature = "client")]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{url}: not an object-store location: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: cannot configure the store from the environment ({variables}): {source}")]
    Builder {
        url: String,
        variables: &'static str,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The server refused the credentials (401 / 403).
    #[error("{url}: {action}: the server refused the credentials for bucket `{bucket}`; check {variables}: {source}")]
    Denied {
        url: String,
        action: &'static str,
        bucket: String,
        variables: &'static str,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{url}: {action}: {source}")]
    Request {
        url: String,
        action: &'static str,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{}: {action}: {source}", .path.display())]
    Local {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A ranged GET answered with another number of bytes than asked for.
    #[error("{url}: a ranged read of bytes {start}..{end} returned {found} bytes, not {}", .end - .start)]
    Short {
        url: String,
        start: u64,
        end: u64,
        found: u64,
    },
    /// What the store holds breaks a rule (a limit, a name, an existing output).
    #[error("{url}: {reason}")]
    Refused { url: String, reason: String },
}

#[cfg(feature = "client")]
impl StoreError {
    /// A failed request on `url` of `location`, told apart: refused credentials name the bucket
    /// and the variables.
    pub(crate) fn request(location: &Location, url: String, action: &'static str, source: object_store::Error) -> Self {
        match source {
            source if refused_credentials(&source) => StoreError::Denied {
                url,
                action,
                bucket: location.bucket.clone(),
                variables: location.scheme.credential_variables(),
                source: Box::new(source),
            },
            source => StoreError::Request {
                url,
                action,
                source: Box::new(source),
            },
        }
    }
}

/// Whether the server refused the request's credentials. The cloud clients of `object_store`
/// report most refusals as generic errors whose source is a private retry error, so past the
/// two typed variants the status and the error codes of the clouds are read from the chain.
#[cfg(feature = "client")]
fn refused_credentials(error: &object_store::Error) -> bool {
    if matches!(
        error,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) {
        return true;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    [
        "403 Forbidden",
        "401 Unauthorized",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthenticationFailed",
        "AuthorizationFailure",
    ]
    .iter()
    .any(|code| text.contains(code))
}

/// A remote checkpoint location with the runtime its requests run on and the IO limits of its
/// transfers. Every method blocks until its requests are done.
#[cfg(feature = "client")]
pub struct Remote {
    pub location: Location,
    pub limits: IoLimits,
    runtime: tokio::runtime::Runtime,
    /// One permit a request in flight, shared by reads and reads ahead: at most `concurrency`.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// How many [`Remote::read_ahead`] calls there were, and what they started fetching that
    /// no read took over yet.
    ahead: std::sync::Mutex<(u64, Vec<read::Ahead>)>,
}

#[cfg(feature = "client")]
impl Remote {
    /// Opens `url` (parsing it and building its store from the environment; no request yet).
    pub fn open(url: &str, limits: IoLimits, retries: Retries) -> Result<Remote, StoreError> {
        let location = Location::parse(url, retries)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| StoreError::Local {
                path: PathBuf::from(url),
                action: "starting the IO runtime",
                source,
            })?;
        let limits = IoLimits {
            concurrency: limits.concurrency.max(1),
            part_bytes: limits.part_bytes.max(MIN_PART_BYTES),
        };
        Ok(Remote {
            location,
            limits,
            runtime,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.concurrency)),
            ahead: Default::default(),
        })
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Runs `future` on the IO runtime in the background.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(future)
    }

    /// Runs `future` on the IO runtime and waits for it without entering the runtime, so that
    /// a caller already inside another runtime's `block_on` (a conversion writing what a remote
    /// input's read hands it) may wait too. `None` if the runtime dropped the task.
    pub(crate) fn wait<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = done.send(future.await);
        });
        result.recv().ok()
    }
}
