//! Opening checkpoint directories: HF (`config.json` + `model.safetensors` or an index and
//! shards) and Fast-LLM (`metadata.yaml` + the files of its `state_index`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fastllm_config::{Map, Value, parse_document};
use std::fs::File;

use memmap2::Mmap;
use safetensors::tensor::Metadata;
use safetensors::{SafeTensorError, SafeTensors};

use crate::CheckpointError;
use crate::extents::{Extent, write_extents};
use crate::metadata_yaml::{MetadataFormat, mapping, read_metadata};
use crate::policy::{DocumentKind, HeaderBudget, InputDir, MAX_HEADER_BYTES, Opened, open_named};
use crate::source::{RangeError, RemoteInput};

/// One tensor's place in a mapped file.
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
    /// Mapped from the input directory: tensors are borrowed from the map, or read from the file
    /// (`pread`) when they are streamed or copied (see [`crate::extents`]). `path` names the
    /// file in read errors.
    Mapped { map: Mmap, file: File, path: PathBuf },
    /// A remote file, read by range when a tensor is needed.
    Remote { files: RemoteInput, url: String },
}

/// A validated safetensors file of an input, mapped or remote.
pub(crate) struct MappedFile {
    pub(crate) name: String,
    backing: Backing,
    pub(crate) tensors: BTreeMap<String, TensorMeta>,
    metadata: HashMap<String, String>,
}

impl MappedFile {
    /// Maps file `name` of `input` and validates its header, charging the header's bytes to
    /// `budget` (shared by every file of one checkpoint) before it is parsed.
    pub(crate) fn open(input: &InputDir, name: &str, budget: &mut HeaderBudget) -> Result<Self, CheckpointError> {
        let Opened { file, path, .. } = input.open(name)?;
        // SAFETY: the map is read-only; a file changed underneath us while converting would
        // give wrong bytes, as any reader would, but not memory unsafety in safe code that
        // only copies out of the slice.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(&path, e))?;
        let invalid = |message| CheckpointError::Safetensors {
            path: path.clone(),
            message,
        };
        budget.charge(&map).map_err(invalid)?;
        let (header, metadata) = SafeTensors::read_metadata(&map).map_err(|e| {
            invalid(match offender(&map) {
                Some(tensor) => format!("{tensor} ({e})"),
                None => e.to_string(),
            })
        })?;
        let backing = Backing::Mapped {
            map,
            file,
            path: path.clone(),
        };
        Self::new(name, backing, 8 + header, &metadata).map_err(invalid)
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
        let metadata: Metadata = serde_json::from_slice(json).map_err(|e| {
            let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);
            invalid(match crate::header::offending_tensor(json, data_len) {
                Some(tensor) => format!("{tensor} ({e})"),
                None => e.to_string(),
            })
        })?;
        if metadata.data_len() as u64 != data_len {
            return Err(invalid(format!(
                "its tensors end at byte {} of its data, but the file holds {data_len} bytes after the header",
                metadata.data_len()
            )));
        }
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
        Ok(MappedFile {
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

    /// Bytes `range` of a mapped file, borrowed; `None` for a remote one.
    pub(crate) fn mapped(&self, range: Range<usize>) -> Option<&[u8]> {
        match &self.backing {
            Backing::Mapped { map, .. } => map.get(range),
            Backing::Remote { .. } => None,
        }
    }

    /// Reads bytes `start..start + out.len()` of a mapped file into `out` with `pread`, touching
    /// no page of the map; `None` for a remote file. A failed or short read (the file cut
    /// since it was opened) names the file.
    pub(crate) fn read_local(&self, start: usize, out: &mut [u8]) -> Option<Result<(), CheckpointError>> {
        let Backing::Mapped { map, file, path } = &self.backing else {
            return None;
        };
        #[cfg(unix)]
        {
            let _ = map;
            use std::os::unix::fs::FileExt;
            Some(
                file.read_exact_at(out, start as u64)
                    .map_err(|e| CheckpointError::io(path, e)),
            )
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            let bytes = map
                .get(start..start + out.len())
                .ok_or_else(|| CheckpointError::io(path, std::io::ErrorKind::UnexpectedEof.into()));
            Some(bytes.map(|bytes| out.copy_from_slice(bytes)))
        }
    }

    /// Bytes `range` of the file (inside tensor `tensor`, named in errors): borrowed from a
    /// map, fetched whole from a remote file.
    pub(crate) fn read(&self, tensor: &str, range: Range<usize>) -> Result<Cow<'_, [u8]>, CheckpointError> {
        if let Some(bytes) = self.mapped(range.clone()) {
            return Ok(Cow::Borrowed(bytes));
        }
        let mut out = Vec::with_capacity(range.len());
        self.read_remote(tensor, range, &mut |part| {
            out.extend_from_slice(part);
            Ok(())
        })?;
        Ok(Cow::Owned(out))
    }

    /// Writes bytes `range` of the file (inside tensor `tensor`) to `sink`: from a map at once,
    /// from a remote file part by part as they arrive (never the whole range in memory). A
    /// failed remote read is an [`std::io::Error`] wrapping [`CheckpointError::RangeRead`].
    pub(crate) fn write_to(&self, tensor: &str, range: Range<usize>, sink: &mut dyn Write) -> std::io::Result<()> {
        if let Some(bytes) = self.mapped(range.clone()) {
            return sink.write_all(bytes);
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
            Backing::Mapped { .. } => {
                return Err(CheckpointError::invalid(
                    &self.name,
                    format!("bytes {range:?} are past the end of the file"),
                ));
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
            Backing::Mapped { .. } => None,
        }
    }

    /// Drops bytes `start..end` of a mapped file from this process's resident memory (they stay
    /// in the page cache; a later access faults the same bytes back in). A remote file holds
    /// nothing between reads.
    pub(crate) fn release(&self, start: usize, end: usize) {
        let Backing::Mapped { map, .. } = &self.backing else {
            return;
        };
        if start >= end || end > map.len() {
            return;
        }
        #[cfg(unix)]
        // SAFETY: the map is a read-only shared file mapping; after MADV_DONTNEED a later access
        // faults the same file bytes back in, so borrowed slices stay valid and unchanged.
        unsafe {
            let _ = map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
        }
    }
}

/// The tensor a rejected file's header is wrong about, when its header can be read at all.
fn offender(map: &[u8]) -> Option<String> {
    let length = u64::from_le_bytes(map.get(..8)?.try_into().ok()?);
    let length = usize::try_from(length).ok().filter(|&n| n <= MAX_HEADER_BYTES)?;
    let header = map.get(8..8 + length)?;
    crate::header::offending_tensor(header, map.len() - 8 - length)
}

/// A tensor of a checkpoint: its name, dtype, shape, bytes and file.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    /// The safetensors dtype name (`F32`, `BF16`, ...).
    pub dtype: &'a str,
    pub shape: &'a [usize],
    /// The raw little-endian bytes, borrowed from the mapped file.
    pub data: &'a [u8],
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
    pub(crate) fn open(&self, name: &str, budget: &mut HeaderBudget) -> Result<MappedFile, CheckpointError> {
        match self.remote {
            Some(remote) if remote.0.file(name).is_some() => {
                MappedFile::open_remote(remote, name, &self.input.join(name), budget)
            }
            _ => MappedFile::open(self.input, name, budget),
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
    files: Vec<MappedFile>,
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
                            .map(|f: &MappedFile| f.name.clone())
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
    pub(crate) fn of(dir: PathBuf, files: Vec<MappedFile>) -> FileSet {
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
    fn locate(&self, name: &str) -> Option<(&str, &MappedFile, &TensorMeta)> {
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

    /// The bytes of tensor `name`: borrowed from a mapped file, read whole from a remote one.
    pub(crate) fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, CheckpointError> {
        let (name, file, meta) = self.locate(name).ok_or_else(|| self.unknown(name))?;
        if let Some(bytes) = file.mapped(meta.start..meta.end) {
            return Ok(Cow::Borrowed(bytes));
        }
        let mut out = Vec::with_capacity(meta.end - meta.start);
        let mut ahead = Some(());
        file.read_remote(name, meta.start..meta.end, &mut |part| {
            if ahead.take().is_some() {
                self.read_ahead();
            }
            out.extend_from_slice(part);
            Ok(())
        })?;
        Ok(Cow::Owned(out))
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

    /// The tensor `name`, its bytes borrowed from its mapped file. A checkpoint opened by
    /// [`open_hf`] or [`open_fast_llm`] is mapped whole; a conversion's remote input is not, and
    /// a tensor of a remote file is `None` here.
    pub fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let (name, file, meta) = self.locate(name)?;
        Some(TensorRef {
            name,
            dtype: &meta.dtype,
            shape: &meta.shape,
            data: file.mapped(meta.start..meta.end)?,
            file: &file.name,
        })
    }

    /// Drops tensor `name`'s pages from this process's resident memory (they stay in the page
    /// cache): a streamed conversion then holds at most the tensors it is working on.
    pub fn release(&self, name: &str) {
        if let Some((_, file, meta)) = self.locate(name) {
            file.release(meta.start, meta.end);
        }
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

    /// The `__metadata__` of file `name`.
    pub fn file_metadata(&self, name: &str) -> Option<&HashMap<String, String>> {
        self.files.iter().find(|f| f.name == name).map(|f| &f.metadata)
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
            let (a, b) = (self.get(name)?, other.get(name)?);
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
