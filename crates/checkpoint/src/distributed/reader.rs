//! Opening a distributed checkpoint directory: every check before anything is returned, then one
//! parameter at a time reassembled from the rank files, read with `pread` or (a remote input's)
//! by range.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fastllm_config::{BaseModelConfig, Map, Value, load_base_model};
use fastllm_layout::engine_layers;

use super::error::DistributedError;
use super::layout::{DistributedLayout, Piece, Placed, ShardKind};
use super::parallel::Parallelism;
use crate::extents::{Extent, write_extents};
use crate::metadata_yaml::{MetadataFormat, lookup, mapping, model_kind, read_metadata, string};
use crate::policy::HeaderBudget;
use crate::policy::{Entry, InputDir};
use crate::read::{Shards, TensorFile, TensorMeta};
use crate::source::RemoteInput;
use crate::{CheckpointError, dtype_size};

/// The checkpoint versions Fast-LLM 0.4.0 reads (it refuses anything older or newer).
const VERSIONS: ([u64; 3], [u64; 3]) = ([0, 3, 0], [0, 4, 0]);

/// A validated distributed checkpoint: its metadata, the layout it implies, and its rank files,
/// opened.
pub struct DistributedCheckpoint {
    dir: PathBuf,
    metadata: Map,
    base_model: BaseModelConfig,
    layout: DistributedLayout,
    shards: Vec<String>,
    /// `rank_<r>.safetensors`, by rank.
    files: Vec<TensorFile>,
    /// The parameter and shard read after the next one (see [`Self::read_next`]).
    next: std::sync::Mutex<Option<(String, String)>>,
}

impl DistributedCheckpoint {
    /// Opens `dir` (`metadata.yaml` + `rank_<r>.safetensors`) and checks it against the layout its
    /// config implies: every rank file present, each holding exactly one `<shard>_shard` per
    /// shard, of the size and dtype the layout implies, with zero padding.
    pub fn open(dir: &Path) -> Result<DistributedCheckpoint, CheckpointError> {
        Self::open_with(dir, None)
    }

    /// [`Self::open`], the rank files `remote` holds read from there.
    pub fn open_with(dir: &Path, remote: Option<&RemoteInput>) -> Result<DistributedCheckpoint, CheckpointError> {
        let metadata_path = dir.join("metadata.yaml");
        let (metadata, _) = read_metadata(dir, Some(MetadataFormat::Distributed))?;
        let refuse = |message: String| DistributedError::Metadata {
            path: metadata_path.clone(),
            message,
        };
        check_version(&metadata).map_err(&refuse)?;
        let kind = model_kind(&metadata).map_err(&refuse)?;
        let base_model = mapping(&metadata, "config.base_model").map_err(&refuse)?;
        let base_model = Value::Map(base_model.cloned().unwrap_or_default());
        let base_model = load_base_model(kind, &base_model).map_err(|e| refuse(format!("config.base_model: {e}")))?;
        let shards = shard_names(&metadata).map_err(&refuse)?;
        let config = match mapping(&metadata, "config").map_err(&refuse)? {
            Some(config) => config.clone(),
            None => return Err(refuse("no `config` (expected a mapping: the model config)".into()).into()),
        };
        let parallelism = Parallelism::from_config(&config).map_err(|e| refuse(format!("config.{e}")))?;
        let layers =
            engine_layers(&base_model, parallelism.tensor_parallel).map_err(|problems| DistributedError::Model {
                path: metadata_path.clone(),
                problems,
            })?;
        let layout = DistributedLayout::new(&layers, parallelism).map_err(|e| refuse(e.to_string()))?;
        let world_size = layout.parallelism.world_size;
        let input = InputDir::new(dir)?;
        let files_of = Shards { input: &input, remote };
        check_no_rank_beyond(files_of, world_size)?;
        let mut budget = HeaderBudget::new();
        let mut files = Vec::new();
        for rank in 0..world_size {
            let name = rank_file(rank);
            // A directory or a FIFO is neither missing nor mappable (opening a FIFO would block).
            match input.entry(&name) {
                _ if remote.is_some_and(|r| r.0.file(&name).is_some()) => {}
                Entry::Readable { .. } => {}
                Entry::Missing => {
                    return Err(DistributedError::MissingRankFile {
                        dir: dir.to_path_buf(),
                        file: name,
                        world_size,
                    }
                    .into());
                }
                Entry::Refused { reason } => {
                    return Err(DistributedError::RankNotAFile {
                        dir: dir.to_path_buf(),
                        file: name,
                        what: reason,
                    }
                    .into());
                }
            }
            files.push(files_of.open(&name, &mut budget)?);
        }
        let checkpoint = DistributedCheckpoint {
            dir: dir.to_path_buf(),
            metadata,
            base_model,
            layout,
            shards,
            files,
            next: Default::default(),
        };
        for rank in 0..checkpoint.files.len() {
            checkpoint.check_rank(rank)?;
        }
        Ok(checkpoint)
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `metadata.yaml`, parsed (`config`, `shards`, the trainer's `metadata`, ...).
    pub fn metadata(&self) -> &Map {
        &self.metadata
    }

    /// The model's base-model config (`config.base_model`).
    pub fn base_model(&self) -> &BaseModelConfig {
        &self.base_model
    }

    /// Where every parameter lives.
    pub fn layout(&self) -> &DistributedLayout {
        &self.layout
    }

    /// The shards saved, `weights` first (then optimizer states such as `exp_avgs`).
    pub fn shard_names(&self) -> &[String] {
        &self.shards
    }

    /// Whether every rank file is local (none is read by range from an object store).
    pub(crate) fn is_local(&self) -> bool {
        !self.files.iter().any(TensorFile::is_remote)
    }

    /// The safetensors dtype of every shard.
    pub fn dtype(&self) -> &'static str {
        self.layout.parallelism.shard_dtype
    }

    /// Every stored parameter in Fast-LLM's export order, with its global shape (`Placed::parameter`).
    pub fn parameters(&self) -> impl Iterator<Item = &Placed> {
        self.layout.parameters()
    }

    /// The size in bytes of parameter `name`'s global tensor, if it is stored.
    pub fn parameter_bytes(&self, name: &str) -> Option<usize> {
        let (_, _, placed) = self.layout.find(name)?;
        let numel: usize = placed.parameter.shape().iter().product();
        Some(numel * dtype_size(self.dtype())?)
    }

    /// Reassembles parameter `name` of shard `shard` into `out` (its global tensor, row-major,
    /// `parameter_bytes` long), each piece read from its rank file into its place. Every byte of
    /// `out` is written.
    pub fn read_into(&self, name: &str, shard: &str, out: &mut [u8]) -> Result<(), CheckpointError> {
        let pieces = self.covering_pieces(name, shard)?;
        let expected = self.parameter_bytes(name).unwrap_or(0);
        if out.len() != expected {
            return Err(DistributedError::OutputSize {
                parameter: name.to_string(),
                shard: shard.to_string(),
                expected,
                found: out.len(),
            }
            .into());
        }
        let element = dtype_size(self.dtype()).unwrap_or(1);
        let tensor = shard_tensor(shard);
        if self.is_local() {
            // Each piece read from its file into its place (`pread`).
            for piece in &pieces {
                let meta = self.shard_meta(piece.rank, shard)?;
                let target = &mut out[piece.target * element..(piece.target + piece.len) * element];
                let read = self.files[piece.rank].read_local(meta.start + piece.offset * element, target);
                read.expect("a local file")?;
            }
            return Ok(());
        }
        if self.streams_pieces(&pieces) {
            // The ranges `write_to` streams (and `read_ahead` announced), each read whole.
            for piece in &pieces {
                let meta = self.shard_meta(piece.rank, shard)?;
                let start = meta.start + piece.offset * element;
                let bytes = self.files[piece.rank].read(&tensor, start..start + piece.len * element)?;
                out[piece.target * element..(piece.target + piece.len) * element].copy_from_slice(&bytes);
                self.read_ahead();
            }
            return Ok(());
        }
        // Rank by rank, the span of the rank's shard holding its pieces, fetched at once by ranged
        // reads (a tensor-parallel split by columns cuts every row into pieces, too small to
        // fetch one by one).
        for (rank, (low, high)) in spans(&pieces) {
            let file = &self.files[rank];
            let meta = self.shard_meta(rank, shard)?;
            let span = file.read(&tensor, meta.start + low * element..meta.start + high * element)?;
            self.read_ahead();
            for piece in pieces.iter().filter(|piece| piece.rank == rank) {
                let source = (piece.offset - low) * element..(piece.offset - low + piece.len) * element;
                out[piece.target * element..(piece.target + piece.len) * element].copy_from_slice(&span[source]);
            }
        }
        Ok(())
    }

    /// Writes parameter `name` of shard `shard` to `out` (its global tensor, row-major) straight
    /// from the rank files, in order, without a tensor-sized buffer. An unknown parameter or shard is an [`std::io::Error`]
    /// wrapping the [`CheckpointError`] that [`Self::read_into`] returns.
    pub fn write_to(&self, name: &str, shard: &str, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_range_to(name, shard, 0..usize::MAX, out)
    }

    /// Writes elements `elements` of parameter `name` of shard `shard` (its global tensor,
    /// row-major; the range cut to the tensor's end) to `out`, as [`Self::write_to`] writes the
    /// whole tensor: an HF tensor that is a slice of a Fast-LLM parameter (the key or the value
    /// of a fused `key_value`) is written from the rank files without the parameter's buffer.
    /// Local rank files are read with `pread`, on a thread of its own, ahead of the writing.
    pub fn write_range_to(
        &self,
        name: &str,
        shard: &str,
        elements: Range<usize>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        if let Some(extents) = self.local_extents(name, shard, elements.clone())? {
            return write_extents(&extents, out);
        }
        let pieces = self.covering_pieces(name, shard).map_err(std::io::Error::other)?;
        let pieces = clip(&pieces, elements.clone());
        let element = dtype_size(self.dtype()).unwrap_or(1);
        if self.streams_pieces(&pieces) {
            return self.stream_pieces(shard, &pieces, out);
        }
        // Small pieces would be one request each: the parameter is read rank span by rank span,
        // then written.
        let bytes = self.read(name, shard).map_err(std::io::Error::other)?;
        let end = (elements.end.saturating_mul(element)).min(bytes.len());
        out.write_all(&bytes[(elements.start * element).min(end)..end])
    }

    /// Where elements `elements` of parameter `name` of shard `shard` are in the rank files, in
    /// the tensor's order, when every rank file is local (`None` otherwise): what
    /// [`Self::write_range_to`] streams.
    pub(crate) fn local_extents(
        &self,
        name: &str,
        shard: &str,
        elements: Range<usize>,
    ) -> std::io::Result<Option<Vec<Extent<'_>>>> {
        if !self.is_local() {
            return Ok(None);
        }
        let pieces = self.covering_pieces(name, shard).map_err(std::io::Error::other)?;
        let element = dtype_size(self.dtype()).unwrap_or(1);
        let mut extents = Vec::with_capacity(pieces.len());
        for piece in clip(&pieces, elements) {
            let meta = self.shard_meta(piece.rank, shard).map_err(std::io::Error::other)?;
            extents.push(Extent {
                file: &self.files[piece.rank],
                start: meta.start + piece.offset * element,
                len: piece.len * element,
            });
        }
        Ok(Some(extents))
    }

    /// [`Self::pieces`] in the order of the tensor, checked to cover each of its elements exactly
    /// once (so a reassembly leaves no byte of its buffer unwritten).
    fn covering_pieces(&self, name: &str, shard: &str) -> Result<Vec<Piece>, CheckpointError> {
        let mut pieces = self.pieces(name, shard)?;
        pieces.sort_by_key(|piece| piece.target);
        let elements = self.parameter_bytes(name).unwrap_or(0) / dtype_size(self.dtype()).unwrap_or(1);
        let mut next = 0;
        for end in pieces
            .iter()
            .map(|piece| (piece.target, piece.target + piece.len))
            .chain([(elements, elements)])
        {
            if end.0 != next {
                let (from, to) = (next.min(end.0), next.max(end.0));
                return Err(DistributedError::Placement {
                    path: self.dir.join("metadata.yaml"),
                    parameter: name.to_string(),
                    message: if end.0 > next {
                        format!("its pieces leave elements {from}..{to} uncovered")
                    } else {
                        format!("its pieces cover elements {from}..{to} twice")
                    },
                }
                .into());
            }
            next = end.1;
        }
        Ok(pieces)
    }

    /// Writes the `pieces` of parameter `name` to `out` in order, each streamed from its rank
    /// file (a remote one part by part).
    fn stream_pieces(&self, shard: &str, pieces: &[Piece], out: &mut dyn Write) -> std::io::Result<()> {
        let element = dtype_size(self.dtype()).unwrap_or(1);
        let tensor = shard_tensor(shard);
        for piece in pieces.iter() {
            let meta = self.shard_meta(piece.rank, shard).map_err(std::io::Error::other)?;
            let start = meta.start + piece.offset * element;
            self.files[piece.rank].write_to(&tensor, start..start + piece.len * element, out)?;
            self.read_ahead();
        }
        Ok(())
    }

    /// Says which parameter of which shard is read after the next one: once the next read of
    /// remote rank files has fetched its first range, that parameter's ranges are read ahead
    /// (within the remote files' bounds).
    pub(crate) fn read_next(&self, next: Option<(String, String)>) {
        *self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    }

    /// Hands the ranges of the parameter [`Self::read_next`] named to the remote files, once.
    fn read_ahead(&self) {
        let next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some((name, shard)) = next else { return };
        let ranges: Vec<_> = (self.remote_ranges(&name, &shard).into_iter())
            .filter_map(|(rank, range)| self.files[rank].remote_range(range))
            .collect();
        if let Some((remote, _, _)) = ranges.first() {
            let ranges: Vec<_> = (ranges.iter()).map(|(_, file, range)| (*file, range.clone())).collect();
            remote.0.read_ahead(&ranges);
        }
    }

    /// The byte ranges of the rank files a remote read of parameter `name` of shard `shard`
    /// asks for, in order: its pieces when they are streamed, else one span a rank.
    fn remote_ranges(&self, name: &str, shard: &str) -> Vec<(usize, std::ops::Range<usize>)> {
        let Ok(mut pieces) = self.pieces(name, shard) else {
            return Vec::new();
        };
        let element = dtype_size(self.dtype()).unwrap_or(1);
        let start_of = |rank: usize| self.shard_meta(rank, shard).map(|meta| meta.start).ok();
        if self.streams_pieces(&pieces) {
            pieces.sort_by_key(|piece| piece.target);
            (pieces.iter())
                .filter_map(|piece| {
                    let start = start_of(piece.rank)? + piece.offset * element;
                    Some((piece.rank, start..start + piece.len * element))
                })
                .collect()
        } else {
            (spans(&pieces).into_iter())
                .filter_map(|(rank, (low, high))| {
                    let start = start_of(rank)?;
                    Some((rank, start + low * element..start + high * element))
                })
                .collect()
        }
    }

    /// Whether a parameter of `pieces` is read piece by piece: from remote rank files when every
    /// piece is large enough to be worth its requests.
    fn streams_pieces(&self, pieces: &[Piece]) -> bool {
        let element = dtype_size(self.dtype()).unwrap_or(1);
        self.files.iter().any(TensorFile::is_remote)
            && pieces.iter().all(|piece| piece.len * element >= MIN_STREAMED_PIECE)
    }

    /// The place of shard `shard` in rank `rank`'s file (checked when opened).
    fn shard_meta(&self, rank: usize, shard: &str) -> Result<&TensorMeta, CheckpointError> {
        let file = &self.files[rank];
        let tensor = shard_tensor(shard);
        file.meta(&tensor).ok_or_else(|| {
            DistributedError::MissingShard {
                path: self.dir.join(&file.name),
                tensor,
                shards: self.shards.join(", "),
            }
            .into()
        })
    }

    /// The copies that rebuild parameter `name` of shard `shard`, after checking both exist and
    /// the parameter has that shard.
    fn pieces(&self, name: &str, shard: &str) -> Result<Vec<Piece>, CheckpointError> {
        let metadata_path = || self.dir.join("metadata.yaml");
        if !self.shards.iter().any(|s| s == shard) {
            return Err(DistributedError::UnknownShard {
                path: metadata_path(),
                shard: shard.to_string(),
                shards: self.shards.join(", "),
            }
            .into());
        }
        let Some((_, group, _)) = self.layout.find(name) else {
            return Err(DistributedError::UnknownParameter {
                path: metadata_path(),
                parameter: name.to_string(),
            }
            .into());
        };
        match self.layout.pieces(name, ShardKind::of(shard)) {
            Some(pieces) => Ok(pieces),
            None if group.frozen => Err(DistributedError::FrozenParameter {
                path: metadata_path(),
                parameter: name.to_string(),
                shard: shard.to_string(),
            }
            .into()),
            None => Err(DistributedError::Placement {
                path: metadata_path(),
                parameter: name.to_string(),
                message: "no placement in the layout".into(),
            }
            .into()),
        }
    }

    /// Whether every local rank file is as it was opened (see
    /// [`crate::policy::Opened::check_unchanged`]): checked after a conversion's last read.
    pub(crate) fn check_unchanged(&self) -> Result<(), CheckpointError> {
        self.files.iter().try_for_each(TensorFile::check_unchanged)
    }

    /// Reassembles parameter `name` of shard `shard` into a new buffer (see [`Self::read_into`]).
    pub fn read(&self, name: &str, shard: &str) -> Result<Vec<u8>, CheckpointError> {
        self.read_reusing(name, shard, Vec::new())
    }

    /// [`Self::read`] into `buffer`, whose memory is reused: a conversion passes each parameter's
    /// buffer on to the next, sparing the page faults of a fresh allocation (a tenth of a
    /// distributed export's time in profiles). Its old bytes are all overwritten.
    pub fn read_reusing(&self, name: &str, shard: &str, mut buffer: Vec<u8>) -> Result<Vec<u8>, CheckpointError> {
        let len = self.parameter_bytes(name).unwrap_or(0);
        // No zeroing of reused bytes: `read_into` writes every one.
        buffer.truncate(len);
        buffer.resize(len, 0);
        self.read_into(name, shard, &mut buffer)?;
        Ok(buffer)
    }

    /// Checks rank `rank`'s file: the rank its header says it is, its tensors, their sizes and
    /// dtype, and that padding is zero.
    fn check_rank(&self, rank: usize) -> Result<(), CheckpointError> {
        let file = &self.files[rank];
        let path = self.dir.join(&file.name);
        // Same-sized rank files swapped would pass every check below: only the header tells.
        let identity = header_identity(file.header_metadata()).map_err(|message| DistributedError::RankHeader {
            path: path.clone(),
            message,
        })?;
        let world_size = self.layout.parallelism.world_size;
        match identity {
            Some((found, _)) if found != rank => {
                return Err(DistributedError::RankIdentity {
                    path,
                    named: rank,
                    found,
                }
                .into());
            }
            Some((_, Some(found))) if found != world_size => {
                return Err(DistributedError::RankWorld {
                    path,
                    expected: world_size,
                    found,
                }
                .into());
            }
            _ => {}
        }
        let shards = self.shards.join(", ");
        if let Some(extra) = file
            .tensors
            .keys()
            .find(|t| !self.shards.iter().any(|s| shard_tensor(s) == **t))
        {
            return Err(DistributedError::UnexpectedTensor {
                path,
                tensor: extra.clone(),
                shards,
            }
            .into());
        }
        for shard in &self.shards {
            let tensor = shard_tensor(shard);
            let Some(meta) = file.meta(&tensor) else {
                return Err(DistributedError::MissingShard { path, tensor, shards }.into());
            };
            let kind = ShardKind::of(shard);
            let expected = self.layout.shard_len(rank, kind);
            // The dtype first: a shard of another dtype has another length, and saying so would
            // hide the cause.
            if meta.dtype != self.dtype() {
                return Err(DistributedError::ShardDtype {
                    path,
                    tensor,
                    expected: self.dtype().to_string(),
                    found: meta.dtype.clone(),
                    field: "optimization_dtype",
                }
                .into());
            }
            if meta.shape != [expected] {
                return Err(DistributedError::ShardSize {
                    path,
                    tensor,
                    expected,
                    found: meta.shape.clone(),
                    breakdown: self.breakdown(rank, kind),
                }
                .into());
            }
            let element = dtype_size(self.dtype()).unwrap_or(1);
            let data_rank = self.layout.parallelism.coordinates(rank).data;
            for (stage, group, offset) in self.layout.rank_groups(rank, kind) {
                let pad = group.shard_pad(data_rank, self.layout.parallelism.data_parallel);
                if group.size(kind) == 0 || pad == 0 {
                    continue;
                }
                let (start, end) = (offset + group.shard_size - pad, offset + group.shard_size);
                let padding = file.read(&tensor, meta.start + start * element..meta.start + end * element)?;
                if let Some(at) = padding.iter().position(|&b| b != 0) {
                    let parameter = group
                        .parameters
                        .last()
                        .map_or_else(|| format!("stage {}", stage.index), |p| p.parameter.name.clone());
                    return Err(DistributedError::NonzeroPadding {
                        path,
                        tensor,
                        group: group.name.clone(),
                        parameter,
                        start,
                        end,
                        at: start + at / element,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// What a rank's shard of `kind` is made of, for size errors.
    fn breakdown(&self, rank: usize, kind: ShardKind) -> String {
        self.layout
            .rank_groups(rank, kind)
            .iter()
            .map(|(_, group, _)| format!("{} {}", group.name, group.size(kind)))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// A remote parameter is streamed piece by piece when every piece has at least this many bytes
/// (one part of a ranged read or more), else read whole, rank span by rank span.
const MIN_STREAMED_PIECE: usize = 1 << 20;

/// Per rank, the span of its file (in elements of its shard) holding `pieces`.
fn spans(pieces: &[Piece]) -> std::collections::BTreeMap<usize, (usize, usize)> {
    let mut spans: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
    for piece in pieces {
        let span = spans
            .entry(piece.rank)
            .or_insert((piece.offset, piece.offset + piece.len));
        span.0 = span.0.min(piece.offset);
        span.1 = span.1.max(piece.offset + piece.len);
    }
    spans
}

/// The parts of `pieces` (in the order of the tensor) inside elements `range` of the tensor.
fn clip(pieces: &[Piece], range: Range<usize>) -> Vec<Piece> {
    (pieces.iter())
        .filter_map(|piece| {
            let start = piece.target.max(range.start);
            let end = (piece.target + piece.len).min(range.end);
            (start < end).then(|| Piece {
                rank: piece.rank,
                offset: piece.offset + (start - piece.target),
                target: start,
                len: end - start,
            })
        })
        .collect()
}

/// Refuses a `rank_<r>.safetensors` with `r` at or past the world size: a file the layout has no
/// place for, whose values a conversion would otherwise drop without a word.
fn check_no_rank_beyond(shards: Shards, world_size: usize) -> Result<(), DistributedError> {
    let dir = shards.input.path();
    let Ok(names) = shards.names() else {
        return Ok(());
    };
    let first_beyond = names
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_prefix("rank_")?.strip_suffix(".safetensors")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Too many digits for a usize is beyond any world.
            let rank = digits.parse().unwrap_or(usize::MAX);
            (rank >= world_size).then_some((rank, name))
        })
        .min();
    match first_beyond {
        Some((_, file)) => Err(DistributedError::RankBeyondWorld {
            dir: dir.to_path_buf(),
            file,
            world_size,
            last: world_size.saturating_sub(1),
        }),
        None => Ok(()),
    }
}

/// The rank a rank file's header says it is, and the world size it was saved in when given.
/// Fast-LLM writes its whole metadata into every rank file's `__metadata__`, the model config as
/// YAML under `config`, whose `distributed.rank` is the saving rank. `None` when the header holds
/// no rank: Fast-LLM finds a rank's file by its name alone and never reads this metadata, so such
/// a file is taken by its name, as Fast-LLM takes it. A rank given but unreadable is an error.
fn header_identity(metadata: &HashMap<String, String>) -> Result<Option<(usize, Option<usize>)>, String> {
    let Some(config) = metadata.get("config") else {
        return Ok(None);
    };
    let config = Value::from_yaml_str(config).map_err(|e| format!("`config`: {e}"))?;
    // Under its key, so that messages name the whole path.
    let header = Map::from([("config".to_string(), config)]);
    let count = |value: &Value| match value {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    };
    let rank = lookup(&header, "config.distributed.rank", "a rank (an int, 0 or more)", count)?;
    let world = lookup(
        &header,
        "config.distributed.world_size",
        "a world size (an int, 0 or more)",
        count,
    )?;
    Ok(rank.map(|rank| (rank, world)))
}

/// The rank file of rank `rank`.
pub fn rank_file(rank: usize) -> String {
    format!("rank_{rank}.safetensors")
}

/// The tensor holding shard `shard` in a rank file.
fn shard_tensor(shard: &str) -> String {
    format!("{shard}_shard")
}

/// `shards`: a non-empty list of distinct names, `weights` first.
fn shard_names(metadata: &Map) -> Result<Vec<String>, String> {
    const EXPECTED: &str = "a list of shard names, `weights` first";
    let list = lookup(metadata, "shards", EXPECTED, |value| match value {
        Value::List(items) => Some(items),
        _ => None,
    })?;
    let Some(items) = list else {
        return Err(format!("no `shards` (expected {EXPECTED})"));
    };
    let mut names: Vec<String> = Vec::new();
    for item in items {
        match item {
            Value::Str(name) if !names.contains(name) => names.push(name.clone()),
            Value::Str(name) => return Err(format!("shard `{name}` is listed twice")),
            other => return Err(format!("shards: expected names, found {}", other.describe())),
        }
    }
    if names.first().map(String::as_str) != Some("weights") {
        return Err(format!(
            "shards must start with `weights` (Fast-LLM saves the weights, then the optimizer state), found {names:?}"
        ));
    }
    Ok(names)
}

/// `fast_llm_version` must be one Fast-LLM 0.4.0 reads, whose layout this reader follows.
fn check_version(metadata: &Map) -> Result<(), String> {
    const EXPECTED: &str = "a release version string like \"0.3.0\"";
    let Some(version) = string(metadata, "fast_llm_version", EXPECTED)? else {
        return Err(format!("no `fast_llm_version` (expected {EXPECTED})"));
    };
    let parts: Option<Vec<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
    let Some(mut parts) = parts.filter(|p| !p.is_empty() && p.len() <= 3) else {
        return Err(format!("fast_llm_version `{version}` is not a release version (x.y.z)"));
    };
    parts.resize(3, 0);
    let (low, high) = VERSIONS;
    if parts.as_slice() < low.as_slice() || parts.as_slice() > high.as_slice() {
        return Err(format!(
            "fast_llm_version {version}: only checkpoints of Fast-LLM 0.3.0 to 0.4.0 are read (their layout is the one this \
             reader follows)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_yaml::tests::map;
    use rstest::rstest;

    #[rstest]
    #[case("fast_llm_version: 0.4.0", true)]
    #[case("fast_llm_version: 0.3.2", true)]
    #[case("fast_llm_version: '0.4'", true)]
    #[case("fast_llm_version: 0.5.0", false)]
    #[case("fast_llm_version: 0.2.9", false)]
    #[case("fast_llm_version: 0.4.0rc1", false)]
    #[case("{}", false)]
    fn versions(#[case] yaml: &str, #[case] accepted: bool) {
        assert_eq!(check_version(&map(yaml)).is_ok(), accepted, "{yaml}");
    }

    #[rstest]
    #[case("{}", "no `fast_llm_version`")]
    #[case(
        "fast_llm_version: 0.4",
        "`fast_llm_version`: expected a release version string like \"0.3.0\", found float 0.4"
    )]
    #[case("fast_llm_version: 4", "found int 4")]
    fn a_version_of_another_type_is_not_missing(#[case] yaml: &str, #[case] message: &str) {
        let error = check_version(&map(yaml)).unwrap_err();
        assert!(error.contains(message), "{error}");
    }

    #[rstest]
    #[case::fast_llm_s(Some("distributed:\n  rank: 3\n  world_size: 4\n"), Ok(Some((3, Some(4)))))]
    #[case::no_metadata(None, Ok(None))]
    #[case::no_distributed(Some("base_model: {}\n"), Ok(None))]
    #[case::no_rank(Some("distributed: {world_size: 4}\n"), Ok(None))]
    #[case::rank_a_string(
        Some("distributed: {rank: '3'}"),
        Err("`config.distributed.rank`: expected a rank (an int, 0 or more), found str \"3\"")
    )]
    #[case::world_a_float(
        Some("distributed: {rank: 3, world_size: 4.0}"),
        Err("`config.distributed.world_size`: expected a world size (an int, 0 or more), found float 4.0")
    )]
    #[case::rank_negative(
        Some("distributed: {rank: -1}"),
        Err("`config.distributed.rank`: expected a rank (an int, 0 or more), found int -1")
    )]
    #[case::config_a_list(Some("[1]"), Err("`config`: expected a mapping, found list"))]
    #[case::config_not_yaml(Some("a: [b"), Err("`config`: "))]
    fn rank_file_identities(
        #[case] config: Option<&str>,
        #[case] expected: Result<Option<(usize, Option<usize>)>, &str>,
    ) {
        let metadata: HashMap<String, String> = config
            .map(|c| ("config".to_string(), c.to_string()))
            .into_iter()
            .collect();
        match (header_identity(&metadata), expected) {
            (Ok(found), Ok(expected)) => assert_eq!(found, expected),
            (Err(message), Err(expected)) => assert!(message.starts_with(expected), "{message}"),
            (found, expected) => panic!("{config:?}: {found:?}, expected {expected:?}"),
        }
    }

    #[rstest]
    #[case("shards: [weights, exp_avgs]", Ok(vec!["weights", "exp_avgs"]))]
    #[case("shards: [exp_avgs, weights]", Err("must start with `weights`"))]
    #[case("shards: [weights, weights]", Err("listed twice"))]
    #[case("shards: [weights, 3]", Err("expected names"))]
    #[case(
        "shards: weights",
        Err("`shards`: expected a list of shard names, `weights` first, found str \"weights\"")
    )]
    #[case("{}", Err("no `shards`"))]
    fn shard_lists(#[case] yaml: &str, #[case] expected: Result<Vec<&str>, &str>) {
        match (shard_names(&map(yaml)), expected) {
            (Ok(names), Ok(expected)) => assert_eq!(names, expected),
            (Err(message), Err(expected)) => assert!(message.contains(expected), "{message}"),
            (got, expected) => panic!("{yaml}: {got:?} vs {expected:?}"),
        }
    }
}
