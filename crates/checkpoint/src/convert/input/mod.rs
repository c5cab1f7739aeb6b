//! The input side of a conversion: the checkpoint layouts a conversion reads, each behind
//! [`InputLayout`], and the opened [`Input`] they all produce (the Fast-LLM parameters it holds,
//! and each one's bytes).
//!
//! To add a layout: a module here implementing [`InputLayout`], a [`Side`] variant, and its arm
//! in [`Side::input_layout`] (and in [`detect`] if `--from auto` should find it).

mod distributed;
mod fast_llm;
mod hf;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use fastllm_config::BaseModelConfig;
use fastllm_core::weights::{PlanLimits, Transform};

pub use self::fast_llm::{fast_llm_base_model, fast_llm_config};
use super::transfer;
use super::{ConversionError, Options, Side};
use crate::bytes::{Matrix, transpose_rows};
use crate::carry::InputConfig;
use crate::cast::{Dtype, Overflow, Source as CastSource};
use crate::distributed::DistributedCheckpoint;
use crate::extents::{Extent, write_cast_extents, write_extents};
use crate::metadata_yaml::{MetadataFormat, read_metadata};
use crate::naming::in_file;
use crate::policy::InputDir;
use crate::read::read_document;
use crate::{CheckpointError, FileSet, TensorRef};

/// A checkpoint layout a conversion reads: where its config is and how its tensors become
/// Fast-LLM parameters.
pub(crate) trait InputLayout {
    /// The file the config is read from, named in config errors.
    fn config_file(&self) -> &'static str;

    /// The input's base-model config from its config file alone (no tensor opened), with the HF
    /// keys it carries and the ones `--drop-key` / `--text-only` removed.
    fn read_config(&self, dir: &Path, options: &Options) -> Result<InputConfig, ConversionError>;

    /// Opens the input's tensors and checks them against `config` (from [`Self::read_config`]):
    /// every Fast-LLM parameter the input holds, with where its bytes are.
    fn open(&self, dir: &Path, config: BaseModelConfig, options: &Options) -> Result<Input, ConversionError>;
}

impl Side {
    /// How checkpoints of this side are read: the one place an input layout is chosen.
    pub(crate) fn input_layout(self) -> Box<dyn InputLayout> {
        match self {
            Side::FastLlm => Box::new(fast_llm::FastLlmInput),
            Side::Hf(handler) => Box::new(hf::HfInput(handler)),
            Side::FastLlmDistributed => Box::new(distributed::DistributedInput),
        }
    }
}

/// Detects the format of a checkpoint directory: `metadata.yaml` means Fast-LLM, in the layout
/// its `format` declares, else the `model_type` of `config.json`.
pub fn detect(dir: &Path) -> Result<Side, ConversionError> {
    // Whatever it is (a FIFO, a dangling link): reading it says so, not a missing config.json.
    if InputDir::new(dir)?.entry("metadata.yaml").exists() {
        return Ok(match read_metadata(dir, None)?.1 {
            MetadataFormat::StateDict => Side::FastLlm,
            MetadataFormat::Distributed => Side::FastLlmDistributed,
        });
    }
    let path = dir.join("config.json");
    let config = read_document(&path)?;
    Ok(Side::Hf(fastllm_core::detect(&config).map_err(in_file(path))?))
}

/// An opened input: its config, the Fast-LLM parameters it holds and where their bytes are.
pub(crate) struct Input {
    pub config: BaseModelConfig,
    /// Fast-LLM parameter → how to build it from the input's tensors.
    pub sources: BTreeMap<String, Source>,
    /// Input tensors of parts the format does not convert, dropped with `text_only`.
    pub dropped_tensors: Vec<String>,
    /// The input's shards not converted (a distributed checkpoint's optimizer state).
    pub skipped_shards: Vec<String>,
    /// The optimizer's shards the input holds (`exp_avgs`, `exp_avgs_sq`, ...), in its order;
    /// `--optimizer-state` carries them.
    pub optimizer_shards: Vec<String>,
    /// What the trainer saved besides the model, not converted (dotted key, value).
    pub training_state: Vec<(String, fastllm_config::Value)>,
    /// Where the input's tensors are listed (where a missing tensor is missing from).
    pub listing: &'static str,
    /// What the input holds, bounding the output plan.
    pub limits: PlanLimits,
    storage: Storage,
    /// The buffer of a parameter already written, handed back by [`Input::recycle`] for the next.
    spare: std::sync::Mutex<Vec<u8>>,
    /// The buffers the input tensors of the last transformed parameter were read into, for the
    /// next one's: fresh ones would be page-faulted (a tenth of an import's time in a
    /// transposed tensor).
    read_buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Parameter → the one written after it (see [`Input::read_in_order`]).
    next: std::sync::OnceLock<BTreeMap<String, String>>,
}

/// Where an input's bytes are.
enum Storage {
    /// Safetensors files holding each input tensor whole.
    Files(FileSet),
    /// The rank files of a distributed checkpoint, read for one shard.
    Distributed {
        checkpoint: Box<DistributedCheckpoint>,
        shard: String,
    },
}

/// How to get one Fast-LLM parameter from the input.
pub(crate) struct Source {
    /// Input tensor names it is made of.
    pub inputs: Vec<String>,
    pub transform: Transform,
    pub shape: Vec<usize>,
    pub dtype: String,
}

impl Input {
    /// Says in which order the parameters will be written (repeats ignored), so that a remote
    /// input fetches each one's bytes while the one before is written; said once, later calls
    /// are ignored.
    pub fn read_in_order<'a>(&self, parameters: impl IntoIterator<Item = &'a str>) {
        let mut order: Vec<&str> = Vec::new();
        for parameter in parameters {
            if order.last() != Some(&parameter) {
                order.push(parameter);
            }
        }
        let next = (order.windows(2))
            .map(|pair| (pair[0].to_string(), pair[1].to_string()))
            .collect();
        let _ = self.next.set(next);
    }

    /// Tells the storage which input tensors follow parameter `name`'s.
    fn announce_next(&self, name: &str) {
        let next = self.next.get().and_then(|next| next.get(name));
        match (&self.storage, next) {
            (Storage::Files(files), Some(next)) => {
                files.read_next(self.sources.get(next).map(|s| s.inputs.clone()).unwrap_or_default());
            }
            (Storage::Distributed { checkpoint, shard }, next) => {
                checkpoint.read_next(next.map(|next| (next.clone(), shard.clone())));
            }
            _ => {}
        }
    }

    /// The bytes of Fast-LLM parameter `name`.
    pub fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, CheckpointError> {
        let source = &self.sources[name];
        self.announce_next(name);
        match &self.storage {
            Storage::Files(files) => {
                if let ([input], Transform::Copy | Transform::Reshape) = (&source.inputs[..], source.transform) {
                    // Read into the last parameter's buffer: never copied again.
                    return Ok(Cow::Owned(files.read(input, self.take_spare())?));
                }
                if let ([input], Transform::Transpose) = (&source.inputs[..], source.transform)
                    && let Some(extent) = files.local_extent(input, 0..usize::MAX)
                {
                    return self.transposed_by_bands(files, extent, source).map(Cow::Owned);
                }
                let mut buffers = std::mem::take(&mut *self.read_buffers.lock().unwrap_or_else(|e| e.into_inner()));
                let mut bytes = Vec::with_capacity(source.inputs.len());
                for input in &source.inputs {
                    bytes.push(files.read(input, buffers.pop().unwrap_or_default())?);
                }
                let parts = (source.inputs.iter().zip(&bytes))
                    .map(|(input, data)| {
                        let tensor = files.tensor(input).expect("checked");
                        TensorRef {
                            name: tensor.name,
                            dtype: tensor.dtype,
                            shape: tensor.shape,
                            data,
                            file: tensor.file,
                        }
                    })
                    .collect::<Vec<_>>();
                // Every other transform builds its buffer, in the one the last parameter left.
                let parameter = transfer::FastLlmParameter {
                    shape: &source.shape,
                    transform: source.transform,
                    dtype: &source.dtype,
                };
                let built = parameter.bytes(&parts, self.take_spare()).into_owned();
                *self.read_buffers.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
                Ok(Cow::Owned(built))
            }
            Storage::Distributed { checkpoint, shard } => {
                Ok(Cow::Owned(checkpoint.read_reusing(name, shard, self.take_spare())?))
            }
        }
    }

    /// The Fast-LLM parameter `source`, the transpose of the one local HF tensor `extent` (of
    /// `files`), read a band of rows at a time into a buffer that stays in the cache (the next band read
    /// ahead on another thread) and each band transposed into its place: no copy of the whole
    /// HF tensor first.
    fn transposed_by_bands(
        &self,
        files: &FileSet,
        extent: Extent,
        source: &Source,
    ) -> Result<Vec<u8>, CheckpointError> {
        // The HF tensor is [shape[1], shape[0]].
        let matrix = Matrix {
            rows: source.shape[1],
            cols: source.shape[0],
            element: transfer::element(&source.dtype),
        };
        let row = matrix.cols * matrix.element;
        let band_rows = (TRANSPOSE_BAND / row.max(1) / TILE_ROWS).max(1) * TILE_ROWS;
        let mut out = self.take_spare();
        // Every byte is overwritten by the bands: reused memory is not zeroed first.
        out.truncate(extent.len);
        out.resize(extent.len, 0);
        let mut buffers = self.read_buffers.lock().unwrap_or_else(|e| e.into_inner());
        let mut band = buffers.pop().unwrap_or_default();
        band.clear();
        let mut sink = Transposing {
            matrix,
            band_bytes: band_rows * row,
            band: &mut band,
            next_row: 0,
            out: &mut out,
        };
        let read = write_extents(&[extent], &mut sink).and_then(|()| sink.finish());
        buffers.push(band);
        drop(buffers);
        read.map_err(|error| match error.downcast::<CheckpointError>() {
            Ok(error) => error,
            Err(error) => CheckpointError::io(files.dir().join(&extent.file.name), error),
        })?;
        Ok(out)
    }

    /// The buffer [`Input::recycle`] kept, or a new one.
    fn take_spare(&self) -> Vec<u8> {
        std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes back the bytes [`Input::bytes`] returned, once written: a buffer it built (a
    /// reassembly, a concatenation, a transpose) is reused for the next parameter it builds.
    pub fn recycle(&self, bytes: Cow<'_, [u8]>) {
        if let Cow::Owned(buffer) = bytes {
            *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = buffer;
        }
    }

    /// Writes Fast-LLM parameter `name` to `sink` without a tensor-sized buffer, when it needs
    /// none (input tensors concatenated as they are, or rank-file pieces in order); `false` when
    /// it does.
    pub fn stream(&self, name: &str, sink: &mut dyn Write) -> std::io::Result<bool> {
        if self.stream_range(name, 0..usize::MAX, None, sink)?.is_some() {
            return Ok(true);
        }
        let source = &self.sources[name];
        match &self.storage {
            Storage::Files(files) => {
                if !matches!(
                    source.transform,
                    Transform::Copy | Transform::Reshape | Transform::Concat
                ) {
                    return Ok(false);
                }
                self.announce_next(name);
                for input in &source.inputs {
                    files.write_to(input, sink)?;
                }
            }
            Storage::Distributed { checkpoint, shard } => {
                self.announce_next(name);
                checkpoint.write_to(name, shard, sink)?;
            }
        }
        Ok(true)
    }

    /// Writes bytes `range` of Fast-LLM parameter `name` (cut to its end) to `sink` straight from
    /// a local input's files, read ahead of the writing and cast on the way when `cast` says
    /// ([`crate::extents`]): a whole parameter, or the slice of a fused one that is one HF tensor
    /// (the key of `key_value`), with no parameter-sized buffer. Returns the cast's overflow;
    /// `None` (nothing written) when the input is remote (its own streaming reads ahead by
    /// parameter), the parameter is not its inputs' bytes as they are (a transpose), or the
    /// range is not whole elements of the cast.
    pub fn stream_range(
        &self,
        name: &str,
        range: Range<usize>,
        cast: Option<(CastSource, Dtype)>,
        sink: &mut dyn Write,
    ) -> std::io::Result<Option<Overflow>> {
        let extents = match &self.storage {
            Storage::Files(files) => match self.file_extents(files, name, std::slice::from_ref(&range)) {
                Some(extents) => extents,
                None => return Ok(None),
            },
            Storage::Distributed { checkpoint, shard } => {
                let element = crate::dtype_size(checkpoint.dtype()).unwrap_or(1);
                let elements = range.start / element..range.end / element;
                match checkpoint.local_extents(name, shard, elements)? {
                    Some(extents) => extents,
                    None => return Ok(None),
                }
            }
        };
        self.write_extents_of(name, &extents, cast, sink)
    }

    /// Whether [`Input::stream_ranges`] writes parameter `name` (it is its safetensors input
    /// tensors' bytes as they are, in local files).
    pub fn streams_ranges(&self, name: &str) -> bool {
        match &self.storage {
            Storage::Files(files) => self.file_extents(files, name, std::slice::from_ref(&(0..0))).is_some(),
            Storage::Distributed { .. } => false,
        }
    }

    /// Writes bytes `ranges` of Fast-LLM parameter `name` (each cut to its end), in order, to
    /// `sink` straight from a local safetensors input's files as [`Input::stream_range`] does
    /// one range: a rank's slice of a parameter (the rows, or the runs of every row, a
    /// tensor-parallel split keeps) with no parameter-sized buffer. `None` (nothing written)
    /// when [`Input::streams_ranges`] is false or a range is not whole elements of the cast.
    pub fn stream_ranges(
        &self,
        name: &str,
        ranges: &[Range<usize>],
        cast: Option<(CastSource, Dtype)>,
        sink: &mut dyn Write,
    ) -> std::io::Result<Option<Overflow>> {
        let Storage::Files(files) = &self.storage else {
            return Ok(None);
        };
        match self.file_extents(files, name, ranges) {
            Some(extents) => self.write_extents_of(name, &extents, cast, sink),
            None => Ok(None),
        }
    }

    /// Bytes `ranges` of parameter `name` over its input tensors, concatenated, as extents of
    /// their local files; `None` when the parameter is not those bytes as they are or a file is
    /// remote.
    fn file_extents<'f>(&self, files: &'f FileSet, name: &str, ranges: &[Range<usize>]) -> Option<Vec<Extent<'f>>> {
        let source = &self.sources[name];
        if !matches!(
            source.transform,
            Transform::Copy | Transform::Reshape | Transform::Concat
        ) {
            return None;
        }
        let lengths = (source.inputs.iter())
            .map(|input| files.tensor(input).map(|t| t.bytes as usize))
            .collect::<Option<Vec<_>>>()?;
        let mut extents = Vec::with_capacity(ranges.len().max(source.inputs.len()));
        for range in ranges {
            let mut at = 0;
            for (input, &len) in source.inputs.iter().zip(&lengths) {
                let inside = range.start.clamp(at, at + len) - at..range.end.clamp(at, at + len) - at;
                let extent = files.local_extent(input, inside)?;
                if extent.len > 0 || ranges.len() == 1 {
                    extents.push(extent);
                }
                at += len;
            }
        }
        Some(extents)
    }

    /// Writes `extents` of parameter `name` to `sink`, cast on the way when `cast` says; `None`
    /// (nothing written) when they are not whole elements of the cast.
    fn write_extents_of(
        &self,
        name: &str,
        extents: &[Extent],
        cast: Option<(CastSource, Dtype)>,
        sink: &mut dyn Write,
    ) -> std::io::Result<Option<Overflow>> {
        if let Some((from, _)) = cast {
            let total: usize = extents.iter().map(|e| e.len).sum();
            if extents.iter().any(|e| !e.len.is_multiple_of(from.size())) || !total.is_multiple_of(from.size()) {
                return Ok(None);
            }
        }
        self.announce_next(name);
        write_cast_extents(extents, cast, sink).map(Some)
    }

    /// The dtype and shape of parameter `name` in optimizer shard `shard`, `None` when it has
    /// none there (a frozen parameter).
    pub fn state_tensor(&self, name: &str, shard: &str) -> Option<(String, Vec<usize>)> {
        match &self.storage {
            Storage::Files(files) => files
                .tensor(&format!("{name}/{shard}"))
                .map(|tensor| (tensor.dtype.to_string(), tensor.shape.to_vec())),
            Storage::Distributed { checkpoint, .. } => {
                let (_, group, placed) = checkpoint.layout().find(name)?;
                let listed = checkpoint.shard_names().iter().any(|s| s == shard);
                (!group.frozen && listed).then(|| (checkpoint.dtype().to_string(), placed.parameter.shape()))
            }
        }
    }

    /// The bytes of parameter `name` in optimizer shard `shard`, in the input's dtype.
    pub fn state_bytes(&self, name: &str, shard: &str) -> Result<Cow<'_, [u8]>, CheckpointError> {
        match &self.storage {
            Storage::Files(files) => {
                let tensor = format!("{name}/{shard}");
                match files.tensor(&tensor) {
                    Some(_) => files.read(&tensor, self.take_spare()).map(Cow::Owned),
                    None => Err(self.no_state(&tensor)),
                }
            }
            Storage::Distributed { checkpoint, .. } => {
                Ok(Cow::Owned(checkpoint.read_reusing(name, shard, self.take_spare())?))
            }
        }
    }

    fn no_state(&self, tensor: &str) -> CheckpointError {
        CheckpointError::invalid(self.listing, format!("`{tensor}`: no such optimizer-state tensor"))
    }

    /// Writes parameter `name` of optimizer shard `shard` to `sink` without a tensor-sized
    /// buffer.
    pub fn stream_state(&self, name: &str, shard: &str, sink: &mut dyn Write) -> std::io::Result<()> {
        match &self.storage {
            Storage::Files(files) => {
                let tensor = format!("{name}/{shard}");
                match files.tensor(&tensor) {
                    Some(_) => files.write_to(&tensor, sink),
                    None => Err(std::io::Error::other(self.no_state(&tensor))),
                }
            }
            Storage::Distributed { checkpoint, .. } => checkpoint.write_to(name, shard, sink),
        }
    }

    /// Whether every local input file is as it was opened: called after the last tensor is read
    /// and before the output is committed, so an output is never made of a file that changed
    /// while it was read (see [`crate::policy::Opened::check_unchanged`]).
    pub fn check_unchanged(&self) -> Result<(), CheckpointError> {
        match &self.storage {
            Storage::Files(files) => files.check_unchanged(),
            Storage::Distributed { checkpoint, .. } => checkpoint.check_unchanged(),
        }
    }

    /// The file holding (the first input tensor of) Fast-LLM parameter `name`, for messages.
    /// The problem "N parameter(s) of the input have no place in `target`: ..." for the input's
    /// parameters `placed` refuses, each with its file; `None` when every one has a place.
    pub fn unplaced(&self, target: &str, placed: impl Fn(&str) -> bool) -> Option<String> {
        let unused: Vec<String> = (self.sources.keys())
            .filter(|name| !placed(name))
            .map(|name| format!("`{name}` in {}", self.file_of(name)))
            .collect();
        (!unused.is_empty()).then(|| {
            format!(
                "{} parameter(s) of the input have no place in {target}: {}",
                unused.len(),
                unused.join(", ")
            )
        })
    }

    pub fn file_of(&self, name: &str) -> String {
        match &self.storage {
            Storage::Files(files) => self.sources[name]
                .inputs
                .first()
                .and_then(|input| files.tensor(input))
                .map_or_else(String::new, |t| t.file.to_string()),
            Storage::Distributed { .. } => self.listing.to_string(),
        }
    }
}

/// Bytes of a transposed parameter's input read a band at a time: about this many of its rows.
const TRANSPOSE_BAND: usize = 1 << 20;

/// Bands are whole tiles of the transpose's rows, so each band writes whole cache lines.
const TILE_ROWS: usize = 64;

/// A [`Write`] taking a matrix's bytes in order, gathering them into bands of whole rows, each
/// transposed into its place in `out` once complete.
struct Transposing<'a> {
    matrix: Matrix,
    band_bytes: usize,
    band: &'a mut Vec<u8>,
    /// The first row of the band being gathered.
    next_row: usize,
    out: &'a mut [u8],
}

impl Write for Transposing<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            let n = (self.band_bytes - self.band.len()).min(buf.len());
            self.band.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.band.len() == self.band_bytes {
                self.transpose_band()?;
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transposing<'_> {
    /// Transposes the last band (which may be shorter); every row must have come.
    fn finish(&mut self) -> std::io::Result<()> {
        self.transpose_band()?;
        // An empty matrix has rows of no bytes, none of them gathered.
        if self.next_row == self.matrix.rows || self.matrix.cols == 0 {
            return Ok(());
        }
        Err(std::io::Error::other(format!(
            "internal error: {} rows of a {}x{} matrix were read",
            self.next_row, self.matrix.rows, self.matrix.cols
        )))
    }

    /// Transposes the rows gathered into their place.
    fn transpose_band(&mut self) -> std::io::Result<()> {
        let row = self.matrix.cols * self.matrix.element;
        if self.band.is_empty() || row == 0 {
            return Ok(());
        }
        let rows = self.band.len() / row;
        if rows * row != self.band.len() || self.next_row + rows > self.matrix.rows {
            return Err(std::io::Error::other(format!(
                "internal error: {} bytes are not whole rows of the {} left of a {}x{} matrix",
                self.band.len(),
                self.matrix.rows - self.next_row.min(self.matrix.rows),
                self.matrix.rows,
                self.matrix.cols
            )));
        }
        transpose_rows(self.band, self.matrix, self.next_row, self.out);
        self.next_row += rows;
        self.band.clear();
        Ok(())
    }
}
