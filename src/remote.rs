//! Conversions whose input or output is in object storage (`s3://`, `gs://`, `az://`; an
//! `http(s)://` input), through `fastllm_store` (the `object-store` cargo feature).
//!
//! A remote input is read where it is. Its files are the objects directly under the prefix (no
//! key outside it is read), each with its size from the listing (or a HEAD for HTTP). Its
//! documents and companion files (config.json, metadata.yaml, the index, the tokenizer, ...:
//! every file but the weights, each within its kind's byte limit and none larger than a
//! companion may be) are fetched into a private local staging directory, where the conversion
//! reads them as it reads a local checkpoint's. Its safetensors files are never fetched: each
//! header is read by one ranged GET (two when larger than the first guess), charged to the
//! checkpoint's header budget, and handed with the file's size to the conversion
//! ([`RemoteTensors`], the checkpoint crate's `source::RemoteFiles`), which validates it as a
//! local header (every tensor's extent inside the object) and then reads each tensor's bytes by
//! concurrent ranged GETs of at most `--io-part-size`, at most `--io-concurrency` in flight, as
//! it writes them: a tensor written as it is streams part by part, a transformed one (a
//! transpose) is held whole, one at a time. Once a tensor's first part has arrived, the next
//! parameter's first parts are requested too (within the same window and request slots), so
//! the store is not idle while a tensor is written. Other weights (pickles, GGUF, ...) and
//! larger files are never fetched either; the listing names them. A failed or short ranged read
//! stops the conversion with an error naming the URL, the tensor and the byte range, and
//! nothing is committed.
//!
//! A remote output's safetensors files are uploaded as the conversion writes them
//! (`fastllm_store::Publication`, through the checkpoint crate's `destination::RemoteSink`):
//! each file's parts of `--io-part-size` go up by a multipart upload, at most
//! `--io-concurrency` in flight, while the conversion goes on. Its documents are written into
//! the local staging directory and published after every tensor file, markers last (see
//! `fastllm_store::publish` for what a reader observes meanwhile). A failed conversion aborts
//! the uploads in progress and deletes the files it completed. A distributed output's rank
//! files are uploaded the same way, all of them growing together (the parts in flight bounded
//! for the whole output). So a remote input or output needs local disk for its documents only.
//!
//! `--part K/N` to an object store writes its files the same way under the prefix
//! `NAME.part-K-of-N` beside the output, replaced whole (`Remote::start_replacement`: the previous
//! attempt's `part.json` deleted first, then the rest), its `part.json` last. `--finalize` finds
//! and reads the parts through `Parts` (the checkpoint crate's `destination::RemoteParts`),
//! copies their files server-side into the output's publication, publishes the documents last,
//! then deletes the parts. `inspect` of a URL stages the checkpoint as a conversion's input
//! ([`with_checkpoint`]). The staging directory is an uncommitted
//! `OutputDir` under `$TMPDIR`: removed when the conversion ends, whatever the outcome (a signal
//! included), and swept by the next run after a SIGKILL.

use std::path::Path;

use fastllm_checkpoint::convert::{self, Summary};
use fastllm_checkpoint::source::RemoteInput;

use crate::api::{ConvertRequest, Failure};

/// Whether `path` names an object-store location (`s3://`, `gs://`, `az://`, `http(s)://`); a
/// build without the `object-store` feature still tells one, to refuse it.
pub use fastllm_store::is_remote;

/// How a remote conversion does its IO.
#[derive(Debug, Clone, Copy)]
pub struct IoOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The size of one ranged GET and one multipart part (at least 5 MiB).
    pub part_bytes: usize,
    /// How often a failed request is retried (with exponential backoff).
    pub retries: usize,
}

impl Default for IoOptions {
    fn default() -> Self {
        IoOptions {
            concurrency: 8,
            part_bytes: 16 << 20,
            retries: 10,
        }
    }
}

/// Converts `input` (format `from`, or `auto`) to `output` (format `to`) where either may be an
/// object-store URL; local paths convert as [`convert::convert_cancellable`] does.
pub fn convert(
    request: &ConvertRequest,
    options: &convert::Options,
    io: &IoOptions,
    progress: &mut dyn FnMut(u64, u64) -> std::ops::ControlFlow<()>,
) -> Result<Summary, String> {
    imp::convert(request, options, io, progress)
}

/// Runs `describe` on the checkpoint at `path` with the remote files it reads from: a local
/// directory as it is (`None`); an object-store (or HTTP) one staged as a conversion's input is
/// (its documents fetched into a private staging directory, each safetensors file's header read
/// by ranged GETs, no tensor byte), the staging directory and the remote files handed to
/// `describe`, and its failure's messages naming the URL rather than the staging directory.
pub fn with_checkpoint<T>(
    path: &Path,
    io: &IoOptions,
    describe: impl FnOnce(&Path, Option<&RemoteInput>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    if !is_remote(path) {
        return describe(path, None);
    }
    imp::with_checkpoint(path, io, describe)
}

/// The config document at the URL `path` (a `config` command's file argument naming an object
/// or an HTTP file), fetched whole by one request after its size is checked, then checked and
/// parsed as a local file is (at most `MAX_CONFIG_BYTES`, UTF-8, JSON or YAML by extension).
pub fn read_document(path: &Path) -> Result<fastllm_config::Map, Failure> {
    imp::read_document(path, &IoOptions::default())
}

/// A conversion between local paths.
fn local(
    request: &ConvertRequest,
    options: &convert::Options,
    progress: &mut dyn FnMut(u64, u64) -> std::ops::ControlFlow<()>,
) -> Result<Summary, String> {
    convert::convert_cancellable(&request.resolve()?, options, progress).map_err(|e| e.to_string())
}

#[cfg(feature = "object-store")]
mod imp {
    use std::ops::ControlFlow;

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use fastllm_checkpoint::companions::{MAX_COMPANION_BYTES, is_foreign_weights};
    use fastllm_checkpoint::convert::PART_MANIFEST;
    use fastllm_checkpoint::destination::{RemoteOutput, RemotePartSet, RemoteParts, RemoteSink, RemoteUpload};
    use fastllm_checkpoint::policy::{
        Existing, MAX_CONFIG_BYTES, MAX_HEADER_BYTES, MAX_HEADERS_TOTAL, MAX_INDEX_BYTES, OutputDir, Protected,
    };
    use fastllm_checkpoint::source::{self, RangeError, RemoteFiles};
    use fastllm_store::{
        IoLimits, PartsError, Publication, PublishOptions, Remote, RemoteFile, Retries, Scheme, StoreError, Upload,
    };

    use super::*;

    /// What an HTTP checkpoint may hold besides its shards, probed by name.
    const HTTP_PROBED: [&str; 9] = [
        "config.json",
        "metadata.yaml",
        "model.safetensors",
        "model.safetensors.index.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "ok",
    ];

    pub(super) fn convert(
        request: &ConvertRequest,
        options: &convert::Options,
        io: &IoOptions,
        progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<Summary, String> {
        let &ConvertRequest { input, output, .. } = request;
        let (limits, retries) = io_settings(io);
        let open = |path: &Path| -> Result<Option<Remote>, String> {
            if !is_remote(path) {
                return Ok(None);
            }
            let url = path.to_str().expect("a remote path is UTF-8");
            Remote::open(url, limits, retries).map(Some).map_err(|e| e.to_string())
        };
        let (remote_input, remote_output) = (open(input)?.map(Arc::new), open(output)?.map(Arc::new));
        if remote_input.is_none() && remote_output.is_none() {
            return local(request, options, progress);
        }
        if let (Some(i), Some(o)) = (&remote_input, &remote_output) {
            let i: &Remote = i;
            check_disjoint(i, o)?;
        }
        if let Some(remote) = &remote_output
            && remote.location.scheme == Scheme::Http
        {
            return Err(format!("{}: an HTTP location is read-only", remote.location.url));
        }
        if let Some(remote) = &remote_output
            && remote.location.is_bucket_root()
        {
            return Err(format!("{}: {}", remote.location.url, fastllm_store::BUCKET_ROOT));
        }
        // Refused before any byte is fetched or converted.
        // A part writes beside the output, never to it: only --finalize (or a whole conversion)
        // needs the output free.
        if let Some(remote) = &remote_output
            && !options.force
            && !options.dry_run
            && options.part.is_none()
            && remote.has_objects().map_err(|e| e.to_string())?
        {
            return Err(format!(
                "{}: the output already exists; --force replaces it once the new one is complete",
                remote.location.url
            ));
        }
        let staging = staging()?;
        let mut local_options = convert::Options {
            force: options.force && remote_output.is_none(),
            ..options.clone()
        };
        let local_input = match remote_input {
            Some(remote) => {
                let dir = staging.path("input");
                std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let tensors = stage_input(remote, &dir).map_err(|e| e.to_string())?;
                local_options.remote_input = Some(RemoteInput(Arc::new(tensors)));
                dir
            }
            None => input.to_path_buf(),
        };
        let local_output = match &remote_output {
            // Named as the output: the parts beside it are named after it.
            Some(remote) => staging.path("output").join(remote.location.name()),
            None => output.to_path_buf(),
        };
        // The output's safetensors files are uploaded as they are written; the staging
        // directory gets the documents, published after them.
        let mut finalized_parts = None;
        let publication = match &remote_output {
            Some(remote) if !options.dry_run => {
                let publication = match options.part {
                    // A part's prefix, replaced whole: its manifest deleted before anything else.
                    Some(part) => {
                        remote.start_replacement(remote.beside(&part_name(part, &local_output)), PART_MANIFEST)
                    }
                    None => remote.start_publication(PublishOptions { force: options.force }),
                }
                .map_err(|e| e.to_string())?;
                let publication = Arc::new(publication);
                local_options.remote_output = Some(RemoteOutput(Arc::new(Uploads(Arc::clone(&publication)))));
                if options.finalize {
                    let parts = Arc::new(Parts {
                        remote: Arc::clone(remote),
                        publication: Arc::clone(&publication),
                        adopted: Default::default(),
                    });
                    local_options.remote_parts = Some(RemotePartSet(Arc::clone(&parts) as Arc<dyn RemoteParts>));
                    finalized_parts = Some(parts);
                }
                Some(publication)
            }
            _ => None,
        };
        let rename = |message: String| {
            let mut message = message;
            if local_options.remote_input.is_some() {
                message = message.replace(&local_input.display().to_string(), &input.display().to_string());
            }
            if remote_output.is_some() {
                message = name_by_url(&message, &local_output, &output.display().to_string());
            }
            message
        };
        let staged = ConvertRequest {
            input: &local_input,
            output: &local_output,
            ..*request
        };
        let conversion = staged.resolve().map_err(rename)?;
        let converted =
            convert::convert_cancellable(&conversion, &local_options, progress).map_err(|e| rename(e.to_string()));
        // The parts adopted into the output, removed once it is published.
        let adopted = finalized_parts.map_or_else(Vec::new, |parts| lock(&parts.adopted).clone());
        // The publication's only other holders: dropped, so that it can finish (or, on an
        // error, delete what it uploaded).
        drop(local_options);
        let mut summary = converted?;
        if let Some(publication) = publication {
            let publication = Arc::into_inner(publication)
                .ok_or_else(|| format!("{}: the conversion still holds the upload", output.display()))?;
            // A part's directory holds its manifest only: uploaded after every file of the part.
            let published = if options.part.is_some() {
                &summary.output
            } else {
                &local_output
            };
            publication.finish(published).map_err(|e| e.to_string())?;
        }
        if let Some(remote) = &remote_output {
            summary.output = match options.part {
                Some(part) => remote.beside(&part_name(part, &local_output)).url.into(),
                None => output.to_path_buf(),
            };
            // The output is complete and published: the parts are only storage now (a failure
            // to delete one is not the conversion's; the next --finalize refuses the existing
            // output, not the parts).
            for dir in adopted {
                let _ = remote.delete_all(&remote.beside(&dir), &[PART_MANIFEST]);
            }
        }
        Ok(summary)
    }

    /// The name of the prefix of `part` beside the output (named locally by `local_output`).
    fn part_name(part: convert::Part, local_output: &Path) -> String {
        part.dir(local_output)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The parts beside an object-store output, gathered by `--finalize`: checked by listing and
    /// reading their manifests, then copied server-side into the output's publication.
    struct Parts {
        remote: Arc<Remote>,
        publication: Arc<Publication>,
        /// The parts whose files were copied into the output, by name.
        adopted: Mutex<Vec<String>>,
    }

    impl RemoteParts for Parts {
        fn names_beside(&self, start: &str) -> std::io::Result<Vec<String>> {
            self.remote.names_beside(start).map_err(std::io::Error::other)
        }

        fn files(&self, dir: &str) -> std::io::Result<BTreeMap<String, u64>> {
            let files = self
                .remote
                .list_at(&self.remote.beside(dir))
                .map_err(std::io::Error::other)?;
            Ok(files.into_iter().map(|f| (f.name, f.size)).collect())
        }

        fn read(&self, dir: &str, name: &str, limit: u64) -> std::io::Result<Option<String>> {
            let bytes = (self.remote)
                .read_small(&self.remote.beside(dir), name, limit)
                .map_err(std::io::Error::other)?;
            bytes
                .map(|b| String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
                .transpose()
        }

        fn adopt(&self, dir: &str, files: &[(String, u64)]) -> std::io::Result<()> {
            let files: Vec<RemoteFile> = (files.iter())
                .map(|(name, size)| RemoteFile {
                    name: name.clone(),
                    size: *size,
                })
                .collect();
            (self.publication)
                .copy_in(&self.remote.beside(dir), &files)
                .map_err(std::io::Error::other)?;
            lock(&self.adopted).push(dir.to_string());
            Ok(())
        }
    }

    pub(super) fn with_checkpoint<T>(
        path: &Path,
        io: &IoOptions,
        describe: impl FnOnce(&Path, Option<&RemoteInput>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let (limits, retries) = io_settings(io);
        let url = path.to_str().expect("a remote path is UTF-8");
        let remote = Remote::open(url, limits, retries).map_err(|e| Failure::message(e.to_string()))?;
        let staging = staging().map_err(Failure::message)?;
        let dir = staging.path("input");
        std::fs::create_dir(&dir).map_err(|e| Failure::message(format!("{}: {e}", dir.display())))?;
        let tensors = stage_input(Arc::new(remote), &dir).map_err(|e| Failure::message(e.to_string()))?;
        let remote_input = RemoteInput(Arc::new(tensors));
        describe(&dir, Some(&remote_input)).map_err(|mut failure| {
            let (local, url) = (dir.display().to_string(), url.trim_end_matches('/'));
            failure.message = failure.message.replace(&local, url);
            for problem in &mut failure.problems {
                problem.message = problem.message.replace(&local, url);
                problem.file = problem.file.take().map(|file| file.replace(&local, url));
            }
            failure
        })
    }

    pub(super) fn read_document(path: &Path, io: &IoOptions) -> Result<fastllm_config::Map, Failure> {
        let url = path.to_str().expect("a remote path is UTF-8");
        let named = url
            .rsplit_once('/')
            .filter(|(dir, name)| !name.is_empty() && !dir.ends_with(':') && !dir.ends_with(":/"));
        let Some((dir, name)) = named else {
            return Err(Failure::message(format!(
                "{url}: names no file (expected e.g. s3://bucket/model/config.json)"
            )));
        };
        let (limits, retries) = io_settings(io);
        let remote = Remote::open(dir, limits, retries).map_err(|e| Failure::message(e.to_string()))?;
        let bytes = remote
            .read_small(&remote.location, name, fastllm_checkpoint::policy::MAX_CONFIG_BYTES)
            .map_err(|e| Failure::message(e.to_string()))?
            .ok_or_else(|| Failure::message(format!("{url}: no such file")))?;
        fastllm_checkpoint::parse_named_document(path, bytes).map_err(|e| Failure::conversion(&e.into()))
    }

    /// `message` with the local paths of an object-store output's staging (its directory, and
    /// the hidden `.NAME.partial-PID-TOKEN` sibling it is written in) named by the output's
    /// `url`, and a name then repeated by the upload's own error (`URL/file: URL/file: ...`)
    /// said once.
    pub(super) fn name_by_url(message: &str, local_output: &Path, url: &str) -> String {
        let local = local_output.display().to_string();
        let mut named = message.to_string();
        if let (Some(parent), Some(name)) = (local_output.parent(), local_output.file_name()) {
            let partial = format!("{}/.{}.partial-", parent.display(), name.to_string_lossy());
            while let Some(start) = named.find(&partial) {
                let end = named[start + partial.len()..]
                    .find(['/', ':', ' '])
                    .map_or(named.len(), |i| start + partial.len() + i);
                named.replace_range(start..end, url);
            }
        }
        let named = named.replace(&local, url);
        // The staging path named the file, and the upload's error names it again.
        let mut said: Vec<&str> = Vec::new();
        for segment in named.split(": ") {
            if said.last() != Some(&segment) || !segment.starts_with(url) {
                said.push(segment);
            }
        }
        said.join(": ")
    }

    /// The IO limits and retry policy of `io`.
    fn io_settings(io: &IoOptions) -> (IoLimits, Retries) {
        let limits = IoLimits {
            concurrency: io.concurrency,
            part_bytes: io.part_bytes,
        };
        let retries = Retries {
            max_retries: io.retries,
            ..Retries::default()
        };
        (limits, retries)
    }

    /// Refuses an output that is, contains or is inside the input (same store and bucket,
    /// overlapping prefixes).
    fn check_disjoint(input: &Remote, output: &Remote) -> Result<(), String> {
        let (i, o) = (&input.location, &output.location);
        if i.scheme != o.scheme || i.bucket != o.bucket {
            return Ok(());
        }
        let inside = |a: &str, b: &str| a == b || b.is_empty() || a.starts_with(&format!("{b}/"));
        let (ip, op) = (i.prefix.as_ref(), o.prefix.as_ref());
        if inside(ip, op) || inside(op, ip) {
            return Err(format!(
                "{}: the output overlaps the input {}; write it elsewhere",
                o.url, i.url
            ));
        }
        Ok(())
    }

    /// Stages the remote checkpoint's documents and companions in `dir`, each checked against
    /// the policy's limits first, and reads the header of each of its safetensors files (which
    /// stay remote); other weights and files larger than a companion may be are only listed.
    fn stage_input(remote: Arc<Remote>, dir: &Path) -> Result<RemoteTensors, StoreError> {
        let files = match remote.location.scheme {
            Scheme::Http => http_files(&remote)?,
            _ => remote.list()?,
        };
        let url = &remote.location.url;
        if files.is_empty() {
            return Err(StoreError::Refused {
                url: url.clone(),
                reason: "no checkpoint here: no object directly under this prefix".to_string(),
            });
        }
        let refuse = |file: &RemoteFile, reason: String| StoreError::Refused {
            url: remote.location.url_of(&file.name),
            reason,
        };
        let mut headers_left = MAX_HEADERS_TOTAL;
        let mut fetch = Vec::new();
        let mut tensors = BTreeMap::new();
        for file in &files {
            let limit = match file.name.as_str() {
                "config.json" | "metadata.yaml" => Some(MAX_CONFIG_BYTES),
                name if name.ends_with(".index.json") => Some(MAX_INDEX_BYTES),
                _ => None,
            };
            if let Some(limit) = limit
                && file.size > limit
            {
                return Err(refuse(
                    file,
                    format!("{} bytes, more than the {limit} this document may have", file.size),
                ));
            }
            if file.name.ends_with(".safetensors") {
                let header = remote.read_header(file, MAX_HEADER_BYTES as u64)?;
                let length = header.len() as u64 - 8;
                if length > headers_left {
                    return Err(refuse(
                        file,
                        format!(
                            "header of {length} bytes: the checkpoint's safetensors headers would pass the \
                             {MAX_HEADERS_TOTAL} bytes they may hold in all"
                        ),
                    ));
                }
                headers_left -= length;
                tensors.insert(
                    file.name.clone(),
                    (file.clone(), remote.location.url_of(&file.name), header),
                );
            } else if is_foreign_weights(&file.name) || file.size > MAX_COMPANION_BYTES {
                // Never read: a pickle, another format's weights, or more than any file the
                // conversion copies (it is named, as locally, only by the listing).
                tensors.insert(
                    file.name.clone(),
                    (file.clone(), remote.location.url_of(&file.name), Vec::new()),
                );
            } else {
                fetch.push(file.clone());
            }
        }
        remote.fetch(&fetch, dir)?;
        Ok(RemoteTensors { remote, files: tensors })
    }

    /// An object-store output's safetensors files, each uploaded as the conversion writes it.
    struct Uploads(Arc<Publication>);

    impl RemoteSink for Uploads {
        fn create(&self, name: &str) -> std::io::Result<Box<dyn RemoteUpload>> {
            Ok(Box::new(FileUpload(self.0.upload(name))))
        }
    }

    /// One file of [`Uploads`].
    struct FileUpload(Upload);

    impl std::io::Write for FileUpload {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }

    impl RemoteUpload for FileUpload {
        fn finish(self: Box<Self>) -> std::io::Result<()> {
            self.0.finish()
        }
    }

    /// The safetensors files of a remote input, read by range as the conversion needs them.
    struct RemoteTensors {
        remote: Arc<Remote>,
        /// By name: the file, its URL and its header (empty for weights never read).
        files: BTreeMap<String, (RemoteFile, String, Vec<u8>)>,
    }

    impl RemoteFiles for RemoteTensors {
        fn file(&self, name: &str) -> Option<source::RemoteFile<'_>> {
            let (file, url, header) = self.files.get(name)?;
            Some(source::RemoteFile {
                url,
                size: file.size,
                header,
            })
        }

        fn names(&self) -> Vec<String> {
            self.files.keys().cloned().collect()
        }

        fn read(
            &self,
            name: &str,
            range: std::ops::Range<u64>,
            sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        ) -> Result<(), RangeError> {
            let Some((file, _, _)) = self.files.get(name) else {
                return Err(RangeError::Failed(format!("no remote file `{name}`").into()));
            };
            self.remote.read_parts(file, range, sink).map_err(|e| match e {
                PartsError::Sink(e) => RangeError::Sink(e),
                PartsError::Store(StoreError::Short { start, end, found, .. }) => RangeError::Short {
                    expected: end - start,
                    found,
                },
                // The URL is the caller's to name.
                PartsError::Store(StoreError::Request { source, .. }) => RangeError::Failed(source),
                PartsError::Store(e) => RangeError::Failed(Box::new(e)),
            })
        }

        fn read_ahead(&self, ranges: &[(&str, std::ops::Range<u64>)]) {
            let ranges: Vec<_> = (ranges.iter())
                .filter_map(|(name, range)| Some((&self.files.get(*name)?.0, range.clone())))
                .collect();
            self.remote.read_ahead(&ranges);
        }
    }

    /// A local directory for a remote conversion's files: an [`OutputDir`] that is never
    /// committed, so it is removed when the conversion ends, also on SIGINT / SIGTERM (the
    /// CLI's handler abandons live outputs), and a killed run's is swept by the next run.
    fn staging() -> Result<OutputDir, String> {
        OutputDir::create(
            &std::env::temp_dir().join("fastllm-convert-remote"),
            Existing::Refuse,
            &Protected::nothing(),
        )
        .map_err(|e| format!("creating a local staging directory: {e}"))
    }

    /// The files of an HTTP location, which cannot be listed: the documents and companions a
    /// checkpoint may have, probed by name; the shards its index names, or numbered Fast-LLM
    /// shards and rank files up to the first missing one.
    fn http_files(remote: &Remote) -> Result<Vec<RemoteFile>, StoreError> {
        let mut files = Vec::new();
        let probe = |name: &str, files: &mut Vec<RemoteFile>| -> Result<bool, StoreError> {
            if files.iter().any(|f: &RemoteFile| f.name == name) {
                return Ok(true);
            }
            Ok(match remote.size_of(name)? {
                Some(size) => {
                    files.push(RemoteFile {
                        name: name.to_string(),
                        size,
                    });
                    true
                }
                None => false,
            })
        };
        for name in HTTP_PROBED {
            probe(name, &mut files)?;
        }
        if let Some(index) = files.iter().find(|f| f.name == "model.safetensors.index.json").cloned() {
            if index.size > MAX_INDEX_BYTES {
                return Err(StoreError::Refused {
                    url: remote.location.url_of(&index.name),
                    reason: format!(
                        "{} bytes, more than the {MAX_INDEX_BYTES} this document may have",
                        index.size
                    ),
                });
            }
            let text = remote.get_range(&index, 0..index.size)?;
            let shards: std::collections::BTreeSet<String> = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|index| {
                    let map = index.get("weight_map")?.as_object()?.clone();
                    Some(map.values().filter_map(|v| v.as_str().map(String::from)).collect())
                })
                .unwrap_or_default();
            for shard in shards {
                // A name with a path in it is left for the local index check to name as missing.
                if !shard.contains('/') && !shard.starts_with('.') {
                    probe(&shard, &mut files)?;
                }
            }
        }
        for stem in ["model", "rank"] {
            let mut k = 0;
            while probe(&format!("{stem}_{k}.safetensors"), &mut files)? {
                k += 1;
            }
        }
        Ok(files)
    }
}

#[cfg(not(feature = "object-store"))]
mod imp {
    use super::*;

    pub(super) fn convert(
        request: &ConvertRequest,
        options: &convert::Options,
        _io: &IoOptions,
        progress: &mut dyn FnMut(u64, u64) -> std::ops::ControlFlow<()>,
    ) -> Result<Summary, String> {
        if let Some(remote) = [request.input, request.output].into_iter().find(|p| is_remote(p)) {
            return Err(feature_needed(remote));
        }
        local(request, options, progress)
    }

    /// Why this build cannot use the remote `path`.
    fn feature_needed(path: &Path) -> String {
        format!(
            "{}: object-store paths need a build with the `object-store` feature",
            path.display()
        )
    }

    pub(super) fn read_document(path: &Path, _io: &IoOptions) -> Result<fastllm_config::Map, Failure> {
        Err(Failure::message(feature_needed(path)))
    }

    pub(super) fn with_checkpoint<T>(
        path: &Path,
        _io: &IoOptions,
        _describe: impl FnOnce(&Path, Option<&RemoteInput>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        Err(Failure::message(feature_needed(path)))
    }
}

#[cfg(all(test, feature = "object-store"))]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::the_staging_directory("/tmp/st/output/m/config.json: cannot write", "s3://b/m/config.json: cannot write")]
    #[case::the_hidden_sibling_then_the_upload(
        "/tmp/st/output/.m.partial-21518-6c285f9a2f78fe89/model.safetensors: s3://b/m/model.safetensors: uploading a part: HTTP error",
        "s3://b/m/model.safetensors: uploading a part: HTTP error"
    )]
    #[case::another_name_kept(
        "/tmp/st/output/.mm.partial-1-2/x: /tmp/other: no",
        "/tmp/st/output/.mm.partial-1-2/x: /tmp/other: no"
    )]
    fn staging_paths_are_named_by_the_output_url(#[case] message: &str, #[case] named: &str) {
        assert_eq!(
            imp::name_by_url(message, Path::new("/tmp/st/output/m"), "s3://b/m"),
            named
        );
    }
}
