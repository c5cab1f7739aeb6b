//! Opening checkpoint directories: HF (`config.json` + `model.safetensors` or an index and
//! shards) and Fast-LLM (`metadata.yaml` + the files of its `state_index`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use fastllm_config::{Map, Value, parse_document};
use memmap2::Mmap;
use safetensors::SafeTensors;

use crate::CheckpointError;
use crate::metadata_yaml::{MetadataFormat, mapping, read_metadata};
use crate::policy::{DocumentKind, HeaderBudget, InputDir, MAX_HEADER_BYTES, Opened, open_named};

/// One tensor's place in a mapped file.
#[derive(Debug, Clone)]
pub(crate) struct TensorMeta {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
    /// Byte range in the file.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A mapped, validated safetensors file.
pub(crate) struct MappedFile {
    pub(crate) name: String,
    map: Mmap,
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
        budget.charge(&map).map_err(|message| CheckpointError::Safetensors {
            path: path.clone(),
            message,
        })?;
        let (header, metadata) = SafeTensors::read_metadata(&map).map_err(|e| CheckpointError::Safetensors {
            path: path.clone(),
            message: match offender(&map) {
                Some(tensor) => format!("{tensor} ({e})"),
                None => e.to_string(),
            },
        })?;
        let base = 8 + header;
        let mut tensors = BTreeMap::new();
        for (name, info) in metadata.tensors() {
            let dtype = info.dtype.to_string();
            if crate::dtype_size(&dtype).is_none() {
                return Err(CheckpointError::Safetensors {
                    path,
                    message: format!(
                        "tensor `{name}`: dtype {dtype} is not converted (its elements are not whole bytes)"
                    ),
                });
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
            map,
            tensors,
            metadata: extra.into_iter().collect(),
        })
    }

    /// The header's `__metadata__` (string keys and values; empty when it has none).
    pub(crate) fn header_metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The bytes of tensor `name`, with its place.
    pub(crate) fn tensor(&self, name: &str) -> Option<(&TensorMeta, &[u8])> {
        let meta = self.tensors.get(name)?;
        Some((meta, &self.map[meta.start..meta.end]))
    }

    /// Maps bytes `start..end` in one call (Linux's `MADV_POPULATE_READ`) before they are read,
    /// instead of one page fault every few pages while they are.
    pub(crate) fn populate(&self, start: usize, end: usize) {
        if start >= end || end > self.map.len() {
            return;
        }
        #[cfg(target_os = "linux")]
        let _ = self.map.advise_range(memmap2::Advice::PopulateRead, start, end - start);
    }

    /// Drops bytes `start..end` of the file from this process's resident memory (they stay in the
    /// page cache; a later access faults the same bytes back in).
    pub(crate) fn release(&self, start: usize, end: usize) {
        if start >= end || end > self.map.len() {
            return;
        }
        #[cfg(unix)]
        // SAFETY: the map is a read-only shared file mapping; after MADV_DONTNEED a later access
        // faults the same file bytes back in, so borrowed slices stay valid and unchanged.
        unsafe {
            let _ = self
                .map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
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

/// The safetensors files of a checkpoint, each tensor in exactly one of them.
pub struct FileSet {
    dir: PathBuf,
    files: Vec<MappedFile>,
    /// Tensor name → index in `files`.
    index: BTreeMap<String, usize>,
}

impl FileSet {
    /// Maps `names` (files of `input`); a tensor in two files is an error.
    fn open(input: &InputDir, names: &[String]) -> Result<Self, CheckpointError> {
        let dir = input.path();
        let mut files = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut budget = HeaderBudget::new();
        for name in names {
            let file = MappedFile::open(input, name, &mut budget)?;
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
        })
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let (name, &position) = self.index.get_key_value(name)?;
        let file = &self.files[position];
        let meta = &file.tensors[name];
        Some(TensorRef {
            name: name.as_str(),
            dtype: &meta.dtype,
            shape: &meta.shape,
            data: &file.map[meta.start..meta.end],
            file: &file.name,
        })
    }

    /// Drops tensor `name`'s pages from this process's resident memory (they stay in the page
    /// cache): a streamed conversion then holds at most the tensors it is working on.
    pub fn release(&self, name: &str) {
        let Some(&position) = self.index.get(name) else { return };
        let file = &self.files[position];
        let meta = &file.tensors[name];
        file.release(meta.start, meta.end);
    }

    /// Drops bytes `range` of tensor `name` (offsets within the tensor) from resident memory: a
    /// tensor streamed in parts holds one part at a time.
    pub fn release_part(&self, name: &str, range: std::ops::Range<usize>) {
        let Some(&position) = self.index.get(name) else { return };
        let file = &self.files[position];
        let meta = &file.tensors[name];
        let end = (meta.start + range.end).min(meta.end);
        file.release(meta.start + range.start, end);
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
    let config = read_document(&dir.join("config.json"))?;
    let index_path = dir.join("model.safetensors.index.json");
    let input = InputDir::new(dir)?;
    let files = if input.entry("model.safetensors.index.json").exists() {
        open_indexed(&input, &index_path)?
    } else if input.entry("model.safetensors").exists() {
        FileSet::open(&input, &["model.safetensors".to_string()])?
    } else {
        if let Some(pickle) = pickle_file(&input) {
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
fn pickle_file(input: &InputDir) -> Option<PathBuf> {
    const PICKLE: &[&str] = &[".bin", ".bin.index.json", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"];
    input
        .names()
        .ok()?
        .into_iter()
        .find(|name| PICKLE.iter().any(|suffix| name.ends_with(suffix)))
        .map(|name| input.join(&name))
}

/// Opens the shards of `model.safetensors.index.json`: every indexed tensor in the shard the
/// index names, every shard tensor indexed, no tensor twice.
fn open_indexed(input: &InputDir, index_path: &Path) -> Result<FileSet, CheckpointError> {
    let index = read_document_of(index_path, DocumentKind::Index)?;
    let weight_map = mapping(&index, "weight_map").map_err(|e| CheckpointError::invalid(index_path, e))?;
    let Some(weight_map) = weight_map else {
        return Err(CheckpointError::invalid(
            index_path,
            "no `weight_map` (expected a mapping: tensor name → shard file)",
        ));
    };
    let mut shards: Vec<String> = Vec::new();
    let mut expected: BTreeMap<&str, &str> = BTreeMap::new();
    for (tensor, shard) in weight_map {
        let Value::Str(shard) = shard else {
            return Err(CheckpointError::invalid(
                index_path,
                format!("weight_map[{tensor:?}] is not a file name"),
            ));
        };
        check_file_name(index_path, tensor, shard)?;
        if !input.entry(shard).exists() {
            return Err(CheckpointError::MissingShard {
                path: index_path.to_path_buf(),
                tensor: tensor.clone(),
                shard: shard.clone(),
            });
        }
        if !shards.contains(shard) {
            shards.push(shard.clone());
        }
        expected.insert(tensor, shard);
    }
    let files = FileSet::open(input, &shards)?;
    for (tensor, shard) in &expected {
        match files.get(tensor) {
            Some(found) if found.file == *shard => {}
            Some(found) => {
                return Err(CheckpointError::DuplicateTensor {
                    path: index_path.to_path_buf(),
                    tensor: tensor.to_string(),
                    first: shard.to_string(),
                    second: found.file.to_string(),
                });
            }
            None => {
                return Err(CheckpointError::TensorNotInShard {
                    path: index_path.to_path_buf(),
                    tensor: tensor.to_string(),
                    shard: shard.to_string(),
                });
            }
        }
    }
    if let Some(extra) = files.names().find(|name| !expected.contains_key(name)) {
        let shard = files.get(extra).map(|t| t.file.to_string()).unwrap_or_default();
        return Err(CheckpointError::UnindexedTensor {
            path: index_path.to_path_buf(),
            tensor: extra.to_string(),
            shard,
        });
    }
    Ok(files)
}

/// Opens a Fast-LLM checkpoint directory: `metadata.yaml` and the files its `state_index` names.
pub fn open_fast_llm(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let input = InputDir::new(dir)?;
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
    let mut names: Vec<String> = Vec::new();
    for (tensor, file) in state_index {
        let Value::Str(file) = file else {
            return Err(CheckpointError::invalid(
                &metadata_path,
                format!("state_index[{tensor:?}] is not a file name"),
            ));
        };
        check_file_name(&metadata_path, tensor, file)?;
        if !input.entry(file).exists() {
            return Err(CheckpointError::MissingShard {
                path: metadata_path.clone(),
                tensor: tensor.clone(),
                shard: file.clone(),
            });
        }
        if !names.contains(file) {
            names.push(file.clone());
        }
    }
    let files = FileSet::open(&input, &names)?;
    for (tensor, file) in state_index {
        match files.get(tensor) {
            Some(found) if Value::Str(found.file.to_string()) == *file => {}
            _ => {
                return Err(CheckpointError::TensorNotInShard {
                    path: metadata_path.clone(),
                    tensor: tensor.clone(),
                    shard: match file {
                        Value::Str(s) => s.clone(),
                        _ => String::new(),
                    },
                });
            }
        }
    }
    if let Some(extra) = files.names().find(|name| !state_index.contains_key(*name)) {
        let shard = files.get(extra).map(|t| t.file.to_string()).unwrap_or_default();
        return Err(CheckpointError::UnindexedTensor {
            path: metadata_path,
            tensor: extra.to_string(),
            shard,
        });
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        files,
    })
}
