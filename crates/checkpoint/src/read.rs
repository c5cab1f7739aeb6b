//! Opening checkpoint directories: HF (`config.json` + `model.safetensors` or an index and
//! shards) and Fast-LLM (`metadata.yaml` + the files of its `state_index`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fastllm_config::{Map, Value, parse_document};

use safetensors::SafeTensorError;
use safetensors::tensor::Metadata;

use crate::CheckpointError;
use crate::extents::{Extent, write_extents};
use crate::metadata_yaml::{MetadataFormat, mapping, read_metadata};
use crate::policy::{DocumentKind, HeaderBudget, InputDir, Opened, open_named};
use crate::source::{RangeError, RemoteInput};

/// One tensor's place in a safetensors file.
#[derive(Debug, Clone)]
pub(crate) struct TensorMeta {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
    /// Byte range in the file.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Where a safetensors file's bytes are.
enum Backing {
    /// A file of the input directory, opened once: every byte read from it is read with `pread`
    /// through [`Opened::read_exact_at`], bounded by the size it was opened at and checked, never
    /// through a memory map (a page past the end of a file cut meanwhile would be a SIGBUS).
    Local(Opened),
    /// A remote file, read by range when a tensor is needed.
    Remote { files: RemoteInput, url: String },
}

/// A validated safetensors file of an input, local or remote.
pub(crate) struct TensorFile {
    pub(crate) name: String,
    backing: Backing,
    pub(crate) tensors: BTreeMap<String, TensorMeta>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Opens file `name` of `input` and validates its header (read with `pread`), charging the
    /// header's bytes to `budget` (shared by every file of one checkpoint) before it is read.
    pub(crate) fn open(input: &InputDir, name: &str, budget: &mut HeaderBudget) -> Result<Self, CheckpointError> {
        let opened = input.open(name)?;
        let path = opened.path.clone();
        let invalid = |message| CheckpointError::Safetensors {
            path: path.clone(),
            message,
        };
        let mut length = [0u8; 8];
        if opened.size < 8 {
            return Err(invalid(SafeTensorError::HeaderTooSmall.to_string()));
        }
        opened.read_exact_at(0, &mut length)?;
        budget.charge(&length).map_err(invalid)?;
        let header_len = u64::from_le_bytes(length);
        // Charged above: at most MAX_HEADER_BYTES.
        let Some(header_end) = header_len.checked_add(8).filter(|&end| end <= opened.size) else {
            return Err(invalid(SafeTensorError::InvalidHeaderLength.to_string()));
        };
        let mut header = vec![0u8; header_len as usize];
        opened.read_exact_at(8, &mut header)?;
        let metadata = parse_header(&header, opened.size - header_end).map_err(invalid)?;
        Self::new(name, Backing::Local(opened), header_end as usize, &metadata).map_err(invalid)
    }

    /// Validates remote file `name` of `remote` from its header alone (charged to `budget`
    /// first): every tensor's extent inside the file's size. `path` names it in errors.
    pub(crate) fn open_remote(
        remote: &RemoteInput,
        name: &str,
        path: &Path,
        budget: &mut HeaderBudget,
    ) -> Result<Self, CheckpointError> {
        let invalid = |message| CheckpointError::Safetensors {
            path: path.to_path_buf(),
            message,
        };
        let Some(file) = remote.0.file(name) else {
            return Err(CheckpointError::io(path, std::io::ErrorKind::NotFound.into()));
        };
        budget.charge(file.header).map_err(invalid)?;
        let length = file
            .header
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let data_len = file.size.checked_sub(file.header.len() as u64);
        let (json, data_len) = match (length, data_len) {
            (Some(length), Some(data_len)) if length.checked_add(8) == Some(file.header.len() as u64) => {
                (&file.header[8..], data_len)
            }
            _ => return Err(invalid(SafeTensorError::InvalidHeaderLength.to_string())),
        };
        let metadata = parse_header(json, data_len).map_err(invalid)?;
        let backing = Backing::Remote {
            files: remote.clone(),
            url: file.url.to_string(),
        };
        Self::new(name, backing, file.header.len(), &metadata).map_err(invalid)
    }

    /// The file `name` of tensors `metadata`, whose data starts at byte `base`.
    fn new(name: &str, backing: Backing, base: usize, metadata: &Metadata) -> Result<Self, String> {
        let mut tensors = BTreeMap::new();
        for (name, info) in metadata.tensors() {
            let dtype = info.dtype.to_string();
            if crate::dtype_size(&dtype).is_none() {
                return Err(format!(
                    "tensor `{name}`: dtype {dtype} is not converted (its elements are not whole bytes)"
                ));
            }
            let meta = TensorMeta {
                dtype,
                shape: info.shape.clone(),
                start: base + info.data_offsets.0,
                end: base + info.data_offsets.1,
            };
            tensors.insert(name, meta);
        }
        let extra = metadata.metadata().clone().unwrap_or_default();
        Ok(TensorFile {
            name: name.to_string(),
            backing,
            tensors,
            metadata: extra.into_iter().collect(),
        })
    }

    /// The header's `__metadata__` (string keys and values; empty when it has none).
    pub(crate) fn header_metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Whether the file is read by range from elsewhere.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.backing, Backing::Remote { .. })
    }

    /// The place of tensor `name`.
    pub(crate) fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.tensors.get(name)
    }

    /// Reads bytes `start..start + out.len()` of a local file into `out` (see
    /// [`Opened::read_exact_at`]); `None` for a remote file.
    pub(crate) fn read_local(&self, start: usize, out: &mut [u8]) -> Option<Result<(), CheckpointError>> {
        match &self.backing {
            Backing::Local(opened) => Some(opened.read_exact_at(start as u64, out)),
            Backing::Remote { .. } => None,
        }
    }

    /// Whether a local file is as it was opened (see [`Opened::check_unchanged`]); a remote file's
    /// ranged reads check their own lengths.
    pub(crate) fn check_unchanged(&self) -> Result<(), CheckpointError> {
        match &self.backing {
            Backing::Local(opened) => opened.check_unchanged(),
            Backing::Remote { .. } => Ok(()),
        }
    }

    /// Bytes `range` of the file (inside tensor `tensor`, named in errors), read into `out`
    /// (its memory reused; every byte of it overwritten).
    pub(crate) fn read_into(
        &self,
        tensor: &str,
        range: Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), CheckpointError> {
        if let Backing::Local(opened) = &self.backing {
            // Sized without zeroing what the buffer already holds: the read overwrites it all.
            out.truncate(range.len());
            out.resize(range.len(), 0);
            return opened.read_exact_at(range.start as u64, out);
        }
        out.clear();
        out.reserve(range.len());
        self.read_remote(tensor, range, &mut |part| {
            out.extend_from_slice(part);
            Ok(())
        })
    }

    /// Bytes `range` of the file (inside tensor `tensor`, named in errors), in a new buffer.
    pub(crate) fn read(&self, tensor: &str, range: Range<usize>) -> Result<Vec<u8>, CheckpointError> {
        let mut out = Vec::new();
        self.read_into(tensor, range, &mut out)?;
        Ok(out)
    }

    /// Writes bytes `range` of the file (inside tensor `tensor`) to `sink`: a local file's read
    /// ahead of the writing ([`crate::extents`]), a remote file's part by part as they arrive
    /// (never the whole range in memory). A failed remote read is an [`std::io::Error`] wrapping
    /// [`CheckpointError::RangeRead`].
    pub(crate) fn write_to(&self, tensor: &str, range: Range<usize>, sink: &mut dyn Write) -> std::io::Result<()> {
        if !self.is_remote() {
            let extent = Extent {
                file: self,
                start: range.start,
                len: range.len(),
            };
            return write_extents(&[extent], sink);
        }
        match self.read_remote(tensor, range, &mut |part| sink.write_all(part)) {
            Err(CheckpointError::Io { source, .. }) => Err(source),
            other => other.map_err(std::io::Error::other),
        }
    }

    /// Reads bytes `range` of a remote file into `sink`; a sink's own error comes back as
    /// [`CheckpointError::Io`], the read's as [`CheckpointError::RangeRead`].
    pub(crate) fn read_remote(
        &self,
        tensor: &str,
        range: Range<usize>,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), CheckpointError> {
        let (files, url) = match &self.backing {
            Backing::Remote { files, url } => (files, url),
            Backing::Local(opened) => {
                return Err(CheckpointError::invalid(&opened.path, "not a remote file"));
            }
        };
        let (start, end) = (range.start as u64, range.end as u64);
        files
            .0
            .read(&self.name, start..end, sink)
            .map_err(|source| match source {
                RangeError::Sink(source) => CheckpointError::Io {
                    path: url.into(),
                    source,
                },
                source => CheckpointError::RangeRead {
                    url: url.clone(),
                    tensor: tensor.to_string(),
                    start,
                    end,
                    source,
                },
            })
    }

    /// The remote files this one is read from and its name there, with bytes `range`.
    pub(crate) fn remote_range(&self, range: Range<usize>) -> Option<(&RemoteInput, &str, Range<u64>)> {
        match &self.backing {
            Backing::Remote { files, .. } => Some((files, &self.name, range.start as u64..range.end as u64)),
            Backing::Local(_) => None,
        }
    }
}

/// The tensors of a safetensors header (`header`, the JSON text after its length) followed by
/// `data_len` bytes of tensor data, validated as the safetensors crate validates a whole file:
/// the first wrong tensor named when one is.
fn parse_header(header: &[u8], data_len: u64) -> Result<Metadata, String> {
    let by_tensor = |fallback: String| {
        let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);
        match crate::header::offending_tensor(header, data_len) {
            Some(tensor) => format!("{tensor} ({fallback})"),
            None => fallback,
        }
    };
    let text = std::str::from_utf8(header).map_err(|e| by_tensor(SafeTensorError::InvalidHeader(e).to_string()))?;
    let metadata: Metadata = serde_json::from_str(text)
        .map_err(|e| by_tensor(SafeTensorError::InvalidHeaderDeserialization(e).to_string()))?;
    if metadata.data_len() as u64 != data_len {
        return Err(by_tensor(format!(
            "{} (its tensors end at byte {} of its data, but the file holds {data_len} bytes after the header)",
            SafeTensorError::MetadataIncompleteBuffer,
            metadata.data_len()
        )));
    }
    Ok(metadata)
}

/// A tensor of a checkpoint: its name, dtype, shape, bytes (borrowed) and file.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    /// The safetensors dtype name (`F32`, `BF16`, ...).
    pub dtype: &'a str,
    pub shape: &'a [usize],
    /// The raw little-endian bytes.
    pub data: &'a [u8],
    /// The file holding it.
    pub file: &'a str,
}

/// A tensor of a checkpoint read from its file ([`FileSet::get`]): its name, dtype, shape, bytes
/// and file.
#[derive(Debug, Clone)]
pub struct Tensor<'a> {
    pub name: &'a str,
    /// The safetensors dtype name (`F32`, `BF16`, ...).
    pub dtype: &'a str,
    pub shape: &'a [usize],
    /// The raw little-endian bytes.
    pub data: Vec<u8>,
    /// The file holding it.
    pub file: &'a str,
}

/// A tensor of a checkpoint without its bytes: its name, dtype, shape, file and byte length.
#[derive(Debug, Clone, Copy)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub dtype: &'a str,
    pub shape: &'a [usize],
    pub file: &'a str,
    pub bytes: u64,
}

/// Where a checkpoint's safetensors files are opened from: its directory, and the remote files
/// of a remote input (a name the remote files hold is theirs, any other the directory's).
#[derive(Clone, Copy)]
pub(crate) struct Shards<'a> {
    pub input: &'a InputDir,
    pub remote: Option<&'a RemoteInput>,
}

impl Shards<'_> {
    /// Whether file `name` is there (see [`crate::policy::Entry::exists`] for a local one).
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.remote.is_some_and(|r| r.0.file(name).is_some()) || self.input.entry(name).exists()
    }

    /// Opens file `name`, its header charged to `budget`.
    pub(crate) fn open(&self, name: &str, budget: &mut HeaderBudget) -> Result<TensorFile, CheckpointError> {
        match self.remote {
            Some(remote) if remote.0.file(name).is_some() => {
                TensorFile::open_remote(remote, name, &self.input.join(name), budget)
            }
            _ => TensorFile::open(self.input, name, budget),
        }
    }

    /// Every file name, the directory's and the remote ones.
    pub(crate) fn names(&self) -> Result<Vec<String>, CheckpointError> {
        let mut names = self.input.names()?;
        names.extend(self.remote.map(|r| r.0.names()).unwrap_or_default());
        Ok(names)
    }
}

/// The safetensors files of a checkpoint, each tensor in exactly one of them.
pub struct FileSet {
    dir: PathBuf,
    files: Vec<TensorFile>,
    /// Tensor name → index in `files`.
    index: BTreeMap<String, usize>,
    /// The tensors read after the next one (see [`FileSet::read_next`]): their remote bytes are
    /// fetched ahead once that read has started.
    next: std::sync::Mutex<Vec<String>>,
}

impl FileSet {
    /// Opens `names` (files of `shards`); a tensor in two files is an error.
    fn open(shards: Shards, names: &[String]) -> Result<Self, CheckpointError> {
        let dir = shards.input.path();
        let mut files = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut budget = HeaderBudget::new();
        for name in names {
            let file = shards.open(name, &mut budget)?;
            for tensor in file.tensors.keys() {
                if let Some(&other) = index.get(tensor) {
                    return Err(CheckpointError::DuplicateTensor {
                        path: dir.to_path_buf(),
                        tensor: tensor.clone(),
                        first: files
                            .get(other)
                            .map(|f: &TensorFile| f.name.clone())
                            .unwrap_or_default(),
                        second: name.clone(),
                    });
                }
                index.insert(tensor.clone(), files.len());
            }
            files.push(file);
        }
        Ok(FileSet {
            dir: dir.to_path_buf(),
            files,
            index,
            next: Default::default(),
        })
    }

    /// The set of `files` (none holding a tensor another holds), in directory `dir`.
    #[cfg(test)]
    pub(crate) fn of(dir: PathBuf, files: Vec<TensorFile>) -> FileSet {
        let index = (files.iter().enumerate())
            .flat_map(|(i, file)| file.tensors.keys().map(move |name| (name.clone(), i)))
            .collect();
        FileSet {
            dir,
            files,
            index,
            next: Default::default(),
        }
    }

    /// Tensor `name`'s file and place.
    fn locate(&self, name: &str) -> Option<(&str, &TensorFile, &TensorMeta)> {
        let (name, &position) = self.index.get_key_value(name)?;
        let file = &self.files[position];
        Some((name.as_str(), file, &file.tensors[name]))
    }

    /// Tensor `name` without its bytes (a remote file's are read by [`FileSet::bytes`] or
    /// [`FileSet::write_to`]).
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'_>> {
        let (name, file, meta) = self.locate(name)?;
        Some(TensorInfo {
            name,
            dtype: &meta.dtype,
            shape: &meta.shape,
            file: &file.name,
            bytes: (meta.end - meta.start) as u64,
        })
    }

    /// The bytes of tensor `name`, read whole into `buffer` (its memory reused, its bytes all
    /// overwritten).
    pub(crate) fn read(&self, name: &str, mut buffer: Vec<u8>) -> Result<Vec<u8>, CheckpointError> {
        let (name, file, meta) = self.locate(name).ok_or_else(|| self.unknown(name))?;
        if file.is_remote() {
            // A remote tensor's first part arriving is when the next one's are asked for.
            let mut ahead = Some(());
            buffer.clear();
            buffer.reserve(meta.end - meta.start);
            file.read_remote(name, meta.start..meta.end, &mut |part| {
                if ahead.take().is_some() {
                    self.read_ahead();
                }
                buffer.extend_from_slice(part);
                Ok(())
            })?;
            return Ok(buffer);
        }
        file.read_into(name, meta.start..meta.end, &mut buffer)?;
        Ok(buffer)
    }

    /// Whether every local file is as it was opened (see [`Opened::check_unchanged`]): checked
    /// after a conversion's last read, before its output is committed.
    pub(crate) fn check_unchanged(&self) -> Result<(), CheckpointError> {
        self.files.iter().try_for_each(TensorFile::check_unchanged)
    }

    /// Bytes `range` of tensor `name` (cut to the tensor's end) in its file, when that file is
    /// local: what [`crate::extents::write_extents`] reads.
    pub(crate) fn local_extent(&self, name: &str, range: Range<usize>) -> Option<Extent<'_>> {
        let (_, file, meta) = self.locate(name)?;
        if file.is_remote() {
            return None;
        }
        let len = meta.end - meta.start;
        let (start, end) = (range.start.min(len), range.end.min(len));
        Some(Extent {
            file,
            start: meta.start + start,
            len: end - start,
        })
    }

    /// Writes the bytes of tensor `name` to `sink`: a local file's read ahead of the writing
    /// ([`crate::extents`]), a remote file's part by part; never the whole tensor in memory.
    pub(crate) fn write_to(&self, name: &str, sink: &mut dyn Write) -> std::io::Result<()> {
        if let Some(extent) = self.local_extent(name, 0..usize::MAX) {
            return write_extents(&[extent], sink);
        }
        let (name, file, meta) = self
            .locate(name)
            .ok_or_else(|| std::io::Error::other(self.unknown(name)))?;
        let mut ahead = Some(());
        let read = file.read_remote(name, meta.start..meta.end, &mut |part| {
            if ahead.take().is_some() {
                self.read_ahead();
            }
            sink.write_all(part)
        });
        match read {
            Err(CheckpointError::Io { source, .. }) => Err(source),
            other => other.map_err(std::io::Error::other),
        }
    }

    /// Says which tensors are read after the next one: once the next read of a remote tensor
    /// has started (its first part arrived), their remote bytes are fetched ahead (within the
    /// remote files' bounds), so the store is never idle between two tensors.
    pub(crate) fn read_next(&self, tensors: Vec<String>) {
        *self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tensors;
    }

    /// Hands the remote ranges of the tensors [`FileSet::read_next`] named to their remote
    /// files, once.
    fn read_ahead(&self) {
        let next = std::mem::take(&mut *self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let ranges: Vec<_> = (next.iter())
            .filter_map(|tensor| {
                let (_, file, meta) = self.locate(tensor)?;
                file.remote_range(meta.start..meta.end)
            })
            .collect();
        if let Some((remote, _, _)) = ranges.first() {
            let ranges: Vec<(&str, Range<u64>)> =
                (ranges.iter()).map(|(_, name, range)| (*name, range.clone())).collect();
            remote.0.read_ahead(&ranges);
        }
    }

    fn unknown(&self, name: &str) -> CheckpointError {
        CheckpointError::invalid(&self.dir, format!("no tensor `{}`", fastllm_config::printable(name)))
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The tensor `name` with its bytes, read from its file (local or remote); an unknown name,
    /// or a file cut or unreadable since it was opened, is an error naming it.
    pub fn get(&self, name: &str) -> Result<Tensor<'_>, CheckpointError> {
        let (name, file, meta) = self.locate(name).ok_or_else(|| self.unknown(name))?;
        Ok(Tensor {
            name,
            dtype: &meta.dtype,
            shape: &meta.shape,
            data: file.read(name, meta.start..meta.end)?,
            file: &file.name,
        })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Total tensor bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| f.tensors.values())
            .map(|m| (m.end - m.start) as u64)
            .sum()
    }

    /// Total tensor elements (saturating; every tensor's own count was validated).
    pub fn total_elements(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| f.tensors.values())
            .map(|m| m.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64)))
            .fold(0u64, u64::saturating_add)
    }

    /// The file names, in order.
    pub fn file_names(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.name.as_str()).collect()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first way these tensors differ from `other`'s (names in order, then each tensor's
    /// dtype, shape and bytes), or `None` when they are the same: what "bit-identical" means
    /// for two checkpoints, whatever their sharding.
    pub fn difference(&self, other: &FileSet) -> Option<String> {
        let (ours, theirs): (Vec<&str>, Vec<&str>) = (self.names().collect(), other.names().collect());
        if ours != theirs {
            return Some(format!("tensor names differ: {ours:?} vs {theirs:?}"));
        }
        ours.into_iter().find_map(|name| {
            let (a, b) = match (self.get(name), other.get(name)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return Some(format!("{name}: {e}")),
            };
            if (a.dtype, a.shape) != (b.dtype, b.shape) {
                Some(format!(
                    "{name}: {} {:?} vs {} {:?}",
                    a.dtype, a.shape, b.dtype, b.shape
                ))
            } else if a.data != b.data {
                Some(format!("{name}: bytes differ"))
            } else {
                None
            }
        })
    }
}

/// A shard name (for `tensor`, in the listing `listing`) must stay in the checkpoint directory.
fn check_file_name(listing: &Path, tensor: &str, name: &str) -> Result<(), CheckpointError> {
    let plain = Path::new(name).components().count() == 1
        && !name.contains(['/', '\\'])
        && name != ".."
        && name != "."
        && !name.is_empty();
    if plain {
        Ok(())
    } else {
        Err(CheckpointError::UnsafeShardName {
            path: listing.to_path_buf(),
            tensor: tensor.to_string(),
            shard: name.to_string(),
        })
    }
}

/// An opened checkpoint: its config document and its tensors.
pub struct Checkpoint {
    pub dir: PathBuf,
    /// `config.json` (HF) or `metadata.yaml` (Fast-LLM), parsed.
    pub config: Map,
    pub files: FileSet,
}

/// Reads a config document of a checkpoint directory (`path` is the directory joined with the
/// file name; the filesystem policy's containment rule applies): JSON or YAML (by extension,
/// else JSON first), a mapping, at most [`MAX_CONFIG_BYTES`]; what it parses to is bounded by
/// its text (fastllm_config's budget).
pub fn read_document(path: &Path) -> Result<Map, CheckpointError> {
    read_document_of(path, DocumentKind::Config)
}

/// [`read_document`] within the limit of `kind`.
fn read_document_of(path: &Path, kind: DocumentKind) -> Result<Map, CheckpointError> {
    let (dir, name) = split_dir(path)?;
    let text = InputDir::new(dir)?.open(name)?.read_text(kind)?;
    parse_mapping(path, &text)
}

/// Reads a config document the user named (a `config` command's file argument): any regular
/// file, within the same bounds as a checkpoint's config documents.
pub fn read_named_document(path: &Path) -> Result<Map, CheckpointError> {
    let kind = DocumentKind::Config;
    let text = open_named(path)?.read_text(kind)?;
    parse_mapping(path, &text)
}

/// A config document the user named by a URL, from its `bytes` (fetched whole): checked and
/// parsed as [`read_named_document`] checks and parses a file's, `url` naming it in errors.
pub fn parse_named_document(url: &Path, bytes: Vec<u8>) -> Result<Map, CheckpointError> {
    let text = crate::policy::document_text(url, bytes, DocumentKind::Config)?;
    parse_mapping(url, &text)
}

fn parse_mapping(path: &Path, text: &str) -> Result<Map, CheckpointError> {
    let extension = path.extension().and_then(|e| e.to_str());
    match parse_document(text, extension) {
        Ok(Value::Map(map)) => Ok(map),
        Ok(_) => Err(CheckpointError::invalid(path, "expected a mapping")),
        Err(e) => Err(CheckpointError::invalid(path, e.to_string())),
    }
}

/// The directory and file name of `path`.
fn split_dir(path: &Path) -> Result<(&Path, &str), CheckpointError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CheckpointError::invalid(path, "not a file name"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Opens an HF checkpoint directory and validates its index against its shards.
pub fn open_hf(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    open_hf_with(dir, None)
}

/// [`open_hf`], the safetensors files `remote` holds read from there (an object-store input,
/// whose directory holds its documents only: the headers are validated, no tensor byte read).
pub fn open_hf_with(dir: &Path, remote: Option<&RemoteInput>) -> Result<Checkpoint, CheckpointError> {
    let config = read_document(&dir.join("config.json"))?;
    let index_path = dir.join("model.safetensors.index.json");
    let input = InputDir::new(dir)?;
    let shards = Shards { input: &input, remote };
    let files = if input.entry("model.safetensors.index.json").exists() {
        open_indexed(shards, &index_path)?
    } else if shards.exists("model.safetensors") {
        FileSet::open(shards, &["model.safetensors".to_string()])?
    } else {
        if let Some(pickle) = pickle_file(shards) {
            return Err(CheckpointError::Pickle { path: pickle });
        }
        return Err(CheckpointError::NoWeights {
            path: dir.to_path_buf(),
        });
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        files,
    })
}

/// A pickle checkpoint file of `dir` (`pytorch_model.bin`, its shards or index, `*.pt`, ...).
fn pickle_file(shards: Shards) -> Option<PathBuf> {
    const PICKLE: &[&str] = &[".bin", ".bin.index.json", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"];
    let input = shards.input;
    shards
        .names()
        .ok()?
        .into_iter()
        .find(|name| PICKLE.iter().any(|suffix| name.ends_with(suffix)))
        .map(|name| input.join(&name))
}

/// Opens the shards of `model.safetensors.index.json`: every indexed tensor in the shard the
/// index names, every shard tensor indexed, no tensor twice.
fn open_indexed(shards: Shards, index_path: &Path) -> Result<FileSet, CheckpointError> {
    let index = read_document_of(index_path, DocumentKind::Index)?;
    let weight_map = mapping(&index, "weight_map").map_err(|e| CheckpointError::invalid(index_path, e))?;
    let Some(weight_map) = weight_map else {
        return Err(CheckpointError::invalid(
            index_path,
            "no `weight_map` (expected a mapping: tensor name → shard file)",
        ));
    };
    open_index(
        shards,
        &TensorIndex {
            path: index_path,
            name: "weight_map",
            entries: weight_map,
            in_another_file: InAnotherFile::Duplicate,
        },
    )
}

/// How a tensor found in another file than the one its index names is reported: each format's
/// error has been its own.
#[derive(Clone, Copy)]
enum InAnotherFile {
    /// As a duplicate, naming both files (HF's `weight_map`).
    Duplicate,
    /// As not in the file the index names (Fast-LLM's `state_index`).
    NotInFile,
}

/// A document's index of every tensor to the file holding it: HF's `weight_map`, Fast-LLM's
/// `state_index`.
struct TensorIndex<'a> {
    /// The document, for messages.
    path: &'a Path,
    /// The index's key in the document, for messages.
    name: &'static str,
    entries: &'a Map,
    in_another_file: InAnotherFile,
}

/// Opens the files `index` names: every entry a plain file name of the checkpoint, every indexed
/// tensor in the file the index names, every tensor of those files indexed.
fn open_index(shards: Shards, index: &TensorIndex) -> Result<FileSet, CheckpointError> {
    let path = index.path;
    let mut names: Vec<String> = Vec::new();
    let mut expected: BTreeMap<&str, &str> = BTreeMap::new();
    for (tensor, file) in index.entries {
        let Value::Str(file) = file else {
            return Err(CheckpointError::invalid(
                path,
                format!("{}[{tensor:?}] is not a file name", index.name),
            ));
        };
        check_file_name(path, tensor, file)?;
        if !shards.exists(file) {
            return Err(CheckpointError::MissingShard {
                path: path.to_path_buf(),
                tensor: tensor.clone(),
                shard: file.clone(),
            });
        }
        if !names.contains(file) {
            names.push(file.clone());
        }
        expected.insert(tensor, file);
    }
    let files = FileSet::open(shards, &names)?;
    for (tensor, file) in &expected {
        match (files.tensor(tensor), index.in_another_file) {
            (Some(found), _) if found.file == *file => {}
            (Some(found), InAnotherFile::Duplicate) => {
                return Err(CheckpointError::DuplicateTensor {
                    path: path.to_path_buf(),
                    tensor: tensor.to_string(),
                    first: file.to_string(),
                    second: found.file.to_string(),
                });
            }
            (Some(_), InAnotherFile::NotInFile) | (None, _) => {
                return Err(CheckpointError::TensorNotInShard {
                    path: path.to_path_buf(),
                    tensor: tensor.to_string(),
                    shard: file.to_string(),
                });
            }
        }
    }
    if let Some(extra) = files.names().find(|name| !expected.contains_key(name)) {
        let shard = files.tensor(extra).map(|t| t.file.to_string()).unwrap_or_default();
        return Err(CheckpointError::UnindexedTensor {
            path: path.to_path_buf(),
            tensor: extra.to_string(),
            shard,
        });
    }
    Ok(files)
}

/// Opens a Fast-LLM checkpoint directory: `metadata.yaml` and the files its `state_index` names.
pub fn open_fast_llm(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    open_fast_llm_with(dir, None)
}

/// [`open_fast_llm`], the safetensors files `remote` holds read from there.
pub fn open_fast_llm_with(dir: &Path, remote: Option<&RemoteInput>) -> Result<Checkpoint, CheckpointError> {
    let input = InputDir::new(dir)?;
    let shards = Shards { input: &input, remote };
    let metadata_path = dir.join("metadata.yaml");
    let (config, _) = read_metadata(dir, Some(MetadataFormat::StateDict))?;
    let state_index =
        mapping(&config, "metadata.state_index").map_err(|e| CheckpointError::invalid(&metadata_path, e))?;
    let Some(state_index) = state_index else {
        return Err(CheckpointError::invalid(
            &metadata_path,
            "no `metadata.state_index` (expected a mapping: tensor name → file)",
        ));
    };
    let files = open_index(
        shards,
        &TensorIndex {
            path: &metadata_path,
            name: "state_index",
            entries: state_index,
            in_another_file: InAnotherFile::NotInFile,
        },
    )?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        files,
    })
}
