//! Opening checkpoint directories: HF (`config.json` + `model.safetensors` or an index and
//! shards) and Fast-LLM (`metadata.yaml` + the files of its `state_index`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use fastllm_config::{Map, Value, parse_document};
use memmap2::Mmap;
use safetensors::SafeTensors;

use crate::CheckpointError;

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
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Self, CheckpointError> {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|e| CheckpointError::io(&path, e))?;
        // SAFETY: the map is read-only; a file changed underneath us while converting would
        // give wrong bytes, as any reader would, but not memory unsafety in safe code that
        // only copies out of the slice.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(&path, e))?;
        let (header, metadata) = SafeTensors::read_metadata(&map).map_err(|e| CheckpointError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let base = 8 + header;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let meta = TensorMeta {
                    dtype: info.dtype.to_string(),
                    shape: info.shape.clone(),
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                };
                (name, meta)
            })
            .collect();
        let extra = metadata.metadata().clone().unwrap_or_default();
        Ok(MappedFile {
            name: name.to_string(),
            map,
            tensors,
            metadata: extra.into_iter().collect(),
        })
    }

    /// The bytes of tensor `name`, with its place.
    pub(crate) fn tensor(&self, name: &str) -> Option<(&TensorMeta, &[u8])> {
        let meta = self.tensors.get(name)?;
        Some((meta, &self.map[meta.start..meta.end]))
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
    /// Maps `names` (files in `dir`); a tensor in two files is an error.
    fn open(dir: &Path, names: &[String]) -> Result<Self, CheckpointError> {
        let mut files = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for name in names {
            check_file_name(dir, name)?;
            let file = MappedFile::open(dir, name)?;
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
}

/// A file name must stay in the checkpoint directory.
fn check_file_name(dir: &Path, name: &str) -> Result<(), CheckpointError> {
    let plain = Path::new(name).components().count() == 1
        && !name.contains(['/', '\\'])
        && name != ".."
        && name != "."
        && !name.is_empty();
    if plain {
        Ok(())
    } else {
        Err(CheckpointError::UnsafeShardName {
            path: dir.to_path_buf(),
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

/// Reads a JSON or YAML document (by extension) that must be a mapping.
pub(crate) fn read_document(path: &Path) -> Result<Map, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::io(path, e))?;
    let extension = path.extension().and_then(|e| e.to_str());
    match parse_document(&text, extension) {
        Ok(Value::Map(map)) => Ok(map),
        Ok(_) => Err(CheckpointError::invalid(path, "expected a mapping")),
        Err(e) => Err(CheckpointError::invalid(path, e.to_string())),
    }
}

/// Opens an HF checkpoint directory and validates its index against its shards.
pub fn open_hf(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let config = read_document(&dir.join("config.json"))?;
    let single = dir.join("model.safetensors");
    let index_path = dir.join("model.safetensors.index.json");
    let files = if index_path.exists() {
        open_indexed(dir, &index_path)?
    } else if single.exists() {
        FileSet::open(dir, &["model.safetensors".to_string()])?
    } else {
        for pickle in ["pytorch_model.bin", "pytorch_model.bin.index.json"] {
            if dir.join(pickle).exists() {
                return Err(CheckpointError::Pickle { path: dir.join(pickle) });
            }
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

/// Opens the shards of `model.safetensors.index.json`: every indexed tensor in the shard the
/// index names, every shard tensor indexed, no tensor twice.
fn open_indexed(dir: &Path, index_path: &Path) -> Result<FileSet, CheckpointError> {
    let index = read_document(index_path)?;
    let Some(Value::Map(weight_map)) = index.get("weight_map") else {
        return Err(CheckpointError::invalid(index_path, "no `weight_map` dict"));
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
        check_file_name(dir, shard)?;
        if !dir.join(shard).is_file() {
            return Err(CheckpointError::MissingShard {
                path: index_path.to_path_buf(),
                shard: shard.clone(),
            });
        }
        if !shards.contains(shard) {
            shards.push(shard.clone());
        }
        expected.insert(tensor, shard);
    }
    let files = FileSet::open(dir, &shards)?;
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
    let metadata_path = dir.join("metadata.yaml");
    let config = read_document(&metadata_path)?;
    let Some(Value::Map(state_index)) = fastllm_config_get(&config, &["metadata", "state_index"]) else {
        return Err(CheckpointError::invalid(&metadata_path, "no `metadata.state_index`"));
    };
    let mut names: Vec<String> = Vec::new();
    for (tensor, file) in state_index {
        let Value::Str(file) = file else {
            return Err(CheckpointError::invalid(
                &metadata_path,
                format!("state_index[{tensor:?}] is not a file name"),
            ));
        };
        check_file_name(dir, file)?;
        if !dir.join(file).is_file() {
            return Err(CheckpointError::MissingShard {
                path: metadata_path.clone(),
                shard: file.clone(),
            });
        }
        if !names.contains(file) {
            names.push(file.clone());
        }
    }
    let files = FileSet::open(dir, &names)?;
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

fn fastllm_config_get<'a>(map: &'a Map, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = map.get(*first)?;
    for key in rest {
        value = value.as_map()?.get(*key)?;
    }
    Some(value)
}
