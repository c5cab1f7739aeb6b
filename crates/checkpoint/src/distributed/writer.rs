//! Writing a distributed checkpoint: the inverse of the reader, every rank file written from
//! its start to its end, in order, like any other safetensors output (through
//! [`crate::direct::SequentialFile`] on local disk, or uploaded as it is written to an object
//! store, never staged).
//!
//! A rank file's data is its shards' tensors `<shard>_shard` in name order (as HF's safetensors
//! writer orders same-dtype tensors; the header holds the whole metadata with that rank's
//! `config.distributed.rank`), each the concatenation, over the stages on the rank's device in
//! stage order, of each group's data-rank shard: its slices of the group's parameters in the
//! group's order, then the zeros that pad the group. So the writer visits shard (in file order),
//! stage, group, parameter: each parameter's global tensor is cut into the local slice of every
//! rank holding its stage (its pipeline rank's, and those keeping a tied copy) and appended to
//! each of their files, and after a group's last parameter each holder gets its padding. Every
//! rank file then grows in file order: the position of each write is checked against the
//! placement (an internal error, never a misplaced byte), and every file's length at its end.
//!
//! Memory: a parameter the source streams ([`ShardSource::stream`]: one that is its local input
//! tensors' bytes as they are) is read in blocks, rank slice by rank slice, never whole; any
//! other is one global tensor in the input's dtype plus at most [`WRITE_CHUNK`] of a rank's
//! slice of it, gathered when the slice is made of short runs (a tensor-parallel split of an
//! inner axis), and that chunk cast to the shards' dtype when the input's differs; and, per rank
//! file (all are open until the last
//! shard), its writer's buffers. On local disk the first [`DIRECT_RANK_FILES`] rank files are
//! written by the direct writer (three 4 MiB chunks, 12 MiB, and a thread each), the others
//! buffered through 64 KiB on the converting thread, so a large world costs file descriptors,
//! not memory or threads. To an object store each rank file holds the part it is filling
//! (`--io-part-size`, at least 5 MiB: world size × that, the one cost that grows with the
//! world), the parts in flight being bounded by the publication as a whole. Each parameter is read once per shard;
//! every shard reads other input tensors (the weights, each optimizer state), so no input byte
//! is read twice.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::{ControlFlow, Range};
use std::path::PathBuf;

use fastllm_config::{Map, Value};

use super::layout::{DistributedLayout, Placed, ShardKind, local_runs};
use super::reader::rank_file;
use crate::cast::{Dtype, Overflow, Source as CastSource, cast};
use crate::destination::RemoteOutput;
use crate::direct::Writing;
use crate::writer::{Destination, OutputDir, Sink, TensorSpec, safetensors_header};
use crate::{CheckpointError, dtype_size};

/// Where a distributed checkpoint's tensors come from: parameter `parameter` of shard `shard`
/// (`weights`, `exp_avgs`, ...) as its global tensor, row-major, with its safetensors dtype. A
/// float dtype other than the shards' is cast on the way to the files (exactly, when widening).
pub trait ShardSource {
    fn tensor(&self, parameter: &str, shard: &str) -> Result<SourceTensor<'_>, CheckpointError>;

    /// Called once `parameter`'s bytes of a shard are written, with the bytes `tensor` gave: a
    /// source may reuse their buffer.
    fn release(&self, _parameter: &str, _bytes: Cow<'_, [u8]>) {}

    /// The dtype of `parameter` in shard `shard` when [`ShardSource::stream`] writes its ranks'
    /// slices straight from the input's files; `None` when it is read whole by
    /// [`ShardSource::tensor`].
    fn streams(&self, _parameter: &str, _shard: &str) -> Option<String> {
        None
    }

    /// Writes `slice` to `sink`, cast on the way when `cast` says; returns the cast's overflow.
    /// Called only when [`ShardSource::streams`] gave a dtype.
    fn stream(
        &self,
        slice: &TensorSlice,
        _cast: Option<(CastSource, Dtype)>,
        _sink: &mut dyn Write,
    ) -> std::io::Result<Overflow> {
        Err(std::io::Error::other(format!("`{}` is not streamed", slice.parameter)))
    }
}

/// Bytes of a parameter's global tensor in one shard (row-major, in the dtype
/// [`ShardSource::streams`] gave): what [`ShardSource::stream`] writes for one rank.
pub struct TensorSlice<'a> {
    pub parameter: &'a str,
    pub shard: &'a str,
    /// Byte ranges of the global tensor, in order.
    pub ranges: &'a [Range<usize>],
}

/// A global tensor given to the writer.
pub struct SourceTensor<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub dtype: String,
}

/// A distributed checkpoint to write: its layout, its shards (`weights` first) and its metadata
/// (the whole of metadata.yaml, with rank 0's `config.distributed.rank`); its rank files go into
/// the output directory, or to `remote` (an object-store output) as they are written.
pub struct DistributedWrite<'a> {
    pub layout: &'a DistributedLayout,
    pub shards: &'a [String],
    pub metadata: &'a Map,
    pub remote: Option<&'a RemoteOutput>,
}

/// Short runs of a rank's slice are gathered up to this many bytes before being written.
const WRITE_CHUNK: usize = 4 << 20;

/// Rank files written `O_DIRECT` from threads of their own (see the module doc): 96 MiB of
/// buffers at most.
const DIRECT_RANK_FILES: usize = 8;

/// Zeros for the padding (at most `data_parallel × 32` elements a group).
const ZEROS: [u8; 4096] = [0; 4096];

/// One rank file being written from its start: where its bytes go, how many went, and where
/// each shard's tensor starts.
struct RankFile {
    name: String,
    path: PathBuf,
    sink: Sink,
    written: u64,
    size: u64,
    starts: BTreeMap<String, u64>,
}

impl RankFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sink.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Refuses a write at `at` when the file is elsewhere: the visit order and the placement
    /// disagree, which would misplace every byte after.
    fn check_at(&self, at: u64, what: &dyn std::fmt::Display) -> Result<(), CheckpointError> {
        if at == self.written {
            return Ok(());
        }
        Err(CheckpointError::invalid(
            &self.path,
            format!(
                "internal error: {what} belongs at byte {at} of {}, which is at byte {}",
                self.name, self.written
            ),
        ))
    }
}

impl DistributedWrite<'_> {
    /// The bytes of every rank file's tensors (what progress counts).
    pub fn total_bytes(&self) -> u64 {
        let element = dtype_size(self.layout.parallelism.shard_dtype).unwrap_or(1) as u64;
        let world = self.layout.parallelism.world_size;
        (0..world)
            .flat_map(|rank| {
                self.shards
                    .iter()
                    .map(move |shard| self.layout.shard_len(rank, ShardKind::of(shard)) as u64)
            })
            .sum::<u64>()
            * element
    }

    /// The header metadata of rank `rank`'s file: every entry of the metadata as a string (YAML
    /// for structured values), as Fast-LLM's `export_safetensors_metadata` writes it.
    pub fn header_metadata(&self, rank: usize) -> BTreeMap<String, String> {
        let mut metadata = self.metadata.clone();
        if let Some(Value::Map(config)) = metadata.get_mut("config")
            && let Some(Value::Map(distributed)) = config.get_mut("distributed")
        {
            distributed.insert("rank".into(), Value::Int(rank as i128));
        }
        crate::convert::metadata::header_strings(metadata).collect()
    }

    /// The shards in the order of their tensors in a rank file (their names' order).
    fn file_order(&self) -> Vec<&String> {
        let mut shards: Vec<&String> = self.shards.iter().collect();
        shards.sort_by_key(|shard| format!("{shard}_shard"));
        shards
    }

    /// Writes every `rank_<r>.safetensors` into `out` (or to the remote output), taking tensors
    /// from `source`; calls `progress(bytes written, total)` before the first write and after
    /// every write of at most 4 MiB, and stops with [`CheckpointError::Interrupted`] when it says
    /// so. A file is complete (synced, or its upload completed) only once every file is written.
    pub fn write(
        &self,
        out: &OutputDir,
        source: &dyn ShardSource,
        progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<(), CheckpointError> {
        let parallelism = &self.layout.parallelism;
        let dtype = parallelism.shard_dtype;
        let element = dtype_size(dtype).unwrap_or(1);
        let total = self.total_bytes();
        let mut files = Vec::with_capacity(parallelism.world_size);
        for rank in 0..parallelism.world_size {
            files.push(self.create_rank_file(out, rank, dtype)?);
        }
        if progress(0, total).is_break() {
            return Err(CheckpointError::Interrupted);
        }
        let mut done = 0u64;
        let stages_on_device: Vec<Vec<usize>> = (0..parallelism.world_size)
            .map(|rank| self.layout.stages_on_device(rank))
            .collect();
        for shard in self.file_order() {
            let kind = ShardKind::of(shard);
            // Per rank, where each (stage, group) of this shard starts in its shard tensor.
            let offsets: Vec<BTreeMap<(usize, &str), usize>> = (0..parallelism.world_size)
                .map(|rank| {
                    self.layout
                        .rank_groups(rank, kind)
                        .into_iter()
                        .map(|(stage, group, offset)| ((stage.index, group.name.as_str()), offset))
                        .collect()
                })
                .collect();
            for stage in &self.layout.stages {
                let holders: Vec<usize> = (0..parallelism.world_size)
                    .filter(|rank| stages_on_device[*rank].contains(&stage.index))
                    .collect();
                for group in stage.groups.iter().filter(|g| g.size(kind) > 0) {
                    for placed in &group.parameters {
                        let name = &placed.parameter.name;
                        let streamed = source.streams(name, shard);
                        // A streamed parameter's bytes are read from the input rank by rank.
                        let (bytes, source_element, mut conversion) = match streamed {
                            Some(dtype) => self
                                .conversion_of(&dtype, placed, shard)
                                .map(|(element, conversion)| (None, element, conversion)),
                            None => {
                                let tensor = source.tensor(name, shard)?;
                                let numel: usize = placed.parameter.shape().iter().product();
                                self.conversion_of(&tensor.dtype, placed, shard)
                                    .and_then(|(element, conversion)| {
                                        if tensor.bytes.len() == numel * element {
                                            Ok((Some(tensor.bytes), element, conversion))
                                        } else {
                                            Err(format!(
                                                "`{name}/{shard}`: {} bytes given, its shape {:?} in {} needs {}",
                                                tensor.bytes.len(),
                                                placed.parameter.shape(),
                                                tensor.dtype,
                                                numel * element
                                            ))
                                        }
                                    })
                            }
                        }
                        .map_err(|message| CheckpointError::invalid(&files[0].path, message))?;
                        let mut runs_by_tensor_rank: BTreeMap<usize, Vec<(usize, usize, usize)>> = BTreeMap::new();
                        let mut slice = Vec::new();
                        for &rank in &holders {
                            let at = parallelism.coordinates(rank);
                            let shard_begin = at.data * group.shard_size;
                            let low = placed.begin.max(shard_begin);
                            let high = placed.end.min(shard_begin + group.shard_size);
                            if low >= high {
                                continue;
                            }
                            let runs = match runs_by_tensor_rank.entry(at.tensor) {
                                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                                std::collections::btree_map::Entry::Vacant(entry) => entry.insert(
                                    local_runs(&placed.parameter, parallelism.tensor_parallel, at.tensor)
                                        .map_err(|message| CheckpointError::invalid(&files[rank].path, message))?,
                                ),
                            };
                            let group_offset = offsets[rank][&(stage.index, group.name.as_str())];
                            let file = &mut files[rank];
                            let at_byte = file.starts[shard] + ((group_offset + low - shard_begin) * element) as u64;
                            file.check_at(at_byte, &format_args!("`{name}/{shard}`"))?;
                            let local = Span {
                                runs,
                                low: low - placed.begin,
                                high: high - placed.begin,
                                element: source_element,
                            };
                            let mut stopped = false;
                            let mut write = |converted: &[u8]| -> std::io::Result<()> {
                                // In chunks, each reported: a caller stops within one.
                                for part in converted.chunks(WRITE_CHUNK) {
                                    file.write(part)?;
                                    done += part.len() as u64;
                                    if progress(done, total).is_break() {
                                        stopped = true;
                                        return Err(std::io::Error::other("stopped"));
                                    }
                                }
                                Ok(())
                            };
                            let written = match &bytes {
                                Some(bytes) => local
                                    .emit(bytes, &mut slice, WRITE_CHUNK, &mut |data| {
                                        conversion.write(data, &mut write)
                                    })
                                    .map(|_| ()),
                                // Read in blocks from the input's files and cast by the threads
                                // reading them: no copy of the whole tensor first.
                                None => {
                                    let slice = TensorSlice {
                                        parameter: name,
                                        shard,
                                        ranges: &local.byte_ranges(),
                                    };
                                    source
                                        .stream(&slice, conversion.cast, &mut Chunked(&mut write))
                                        .map(|overflow| conversion.overflow.add(overflow))
                                }
                            };
                            if stopped {
                                return Err(CheckpointError::Interrupted);
                            }
                            written.map_err(|e| CheckpointError::io(&file.path, e))?;
                        }
                        if conversion.overflow.count > 0 {
                            return Err(CheckpointError::invalid(
                                &files[0].path,
                                format!(
                                    "`{name}/{shard}`: {} finite value(s) overflow the shards' {dtype} (largest \
                                     magnitude {:e})",
                                    conversion.overflow.count, conversion.overflow.largest
                                ),
                            ));
                        }
                        if let Some(bytes) = bytes {
                            source.release(name, bytes);
                        }
                    }
                    // The zeros after the group's parameters, at the end of the last data ranks'
                    // shards.
                    for &rank in &holders {
                        let data = parallelism.coordinates(rank).data;
                        let pad = group.shard_pad(data, parallelism.data_parallel) * element;
                        let group_offset = offsets[rank][&(stage.index, group.name.as_str())];
                        let file = &mut files[rank];
                        let at_byte = file.starts[shard] + ((group_offset + group.shard_size) * element - pad) as u64;
                        file.check_at(at_byte, &format_args!("the padding of group `{}`", group.name))?;
                        let mut left = pad;
                        while left > 0 {
                            let n = left.min(ZEROS.len());
                            file.write(&ZEROS[..n])
                                .map_err(|e| CheckpointError::io(&file.path, e))?;
                            left -= n;
                        }
                        done += pad as u64;
                    }
                }
            }
        }
        for file in &files {
            if file.written != file.size {
                return Err(CheckpointError::invalid(
                    &file.path,
                    format!(
                        "internal error: {} bytes written of the {} its layout places",
                        file.written, file.size
                    ),
                ));
            }
        }
        for file in files {
            file.sink.finish(&file.path)?;
        }
        if progress(total, total).is_break() {
            return Err(CheckpointError::Interrupted);
        }
        Ok(())
    }

    /// The element size of a source tensor of `source_dtype` for `placed`, and the cast to the
    /// shards' dtype it needs.
    fn conversion_of(&self, source_dtype: &str, placed: &Placed, shard: &str) -> Result<(usize, Conversion), String> {
        let dtype = self.layout.parallelism.shard_dtype;
        let name = &placed.parameter.name;
        let Some(source_element) = dtype_size(source_dtype) else {
            return Err(format!("`{name}/{shard}`: unknown dtype {source_dtype}"));
        };
        let cast = if source_dtype == dtype {
            None
        } else {
            let target = match dtype {
                "F32" => Dtype::F32,
                "BF16" => Dtype::BF16,
                "F16" => Dtype::F16,
                _ => {
                    return Err(format!("`{name}/{shard}`: {source_dtype} cannot be written as {dtype}"));
                }
            };
            let Some(from) = CastSource::of(source_dtype) else {
                return Err(format!("`{name}/{shard}`: {source_dtype} cannot be cast to {dtype}"));
            };
            Some((from, target))
        };
        let conversion = Conversion {
            cast,
            buffer: Vec::new(),
            overflow: Overflow::default(),
        };
        Ok((source_element, conversion))
    }

    /// Starts rank `rank`'s file with its header.
    fn create_rank_file(&self, out: &OutputDir, rank: usize, dtype: &str) -> Result<RankFile, CheckpointError> {
        let name = rank_file(rank);
        let path = out.path(&name);
        let shards = self.file_order();
        let specs: Vec<TensorSpec> = shards
            .iter()
            .map(|shard| TensorSpec {
                name: format!("{shard}_shard"),
                dtype: dtype.to_string(),
                shape: vec![self.layout.shard_len(rank, ShardKind::of(shard))],
            })
            .collect();
        let (header, lengths) = safetensors_header(&path, &self.header_metadata(rank), &specs)?;
        let data_start = 8 + header.len() as u64;
        let mut starts = BTreeMap::new();
        let mut size = data_start;
        for (shard, len) in shards.iter().zip(&lengths) {
            starts.insert((*shard).clone(), size);
            size += *len as u64;
        }
        let destination = match self.remote {
            Some(remote) => Destination::Remote(remote.0.create(&name).map_err(|e| CheckpointError::io(&path, e))?),
            None => Destination::Local,
        };
        let writing = if rank < DIRECT_RANK_FILES {
            Writing::Direct
        } else {
            Writing::Buffered
        };
        let mut file = RankFile {
            sink: Sink::open_as(&path, destination, writing)?,
            name,
            path,
            written: 0,
            size,
            starts,
        };
        let mut prefix = (header.len() as u64).to_le_bytes().to_vec();
        prefix.extend_from_slice(&header);
        match file.write(&prefix) {
            Ok(()) => Ok(file),
            Err(e) => Err(CheckpointError::io(&file.path, e)),
        }
    }
}

/// The cast of a source tensor's bytes to the shards' dtype, chunk by chunk.
struct Conversion {
    cast: Option<(CastSource, Dtype)>,
    buffer: Vec<u8>,
    overflow: Overflow,
}

impl Conversion {
    /// Passes `data` to `sink`, cast in chunks of at most [`WRITE_CHUNK`] input bytes (whole
    /// elements: the chunk is a multiple of 8).
    fn write(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        let Some((from, to)) = self.cast else {
            return sink(data);
        };
        for part in data.chunks(WRITE_CHUNK) {
            self.buffer.clear();
            let overflow = cast(part, from, to, &mut self.buffer);
            self.overflow.count += overflow.count;
            self.overflow.largest = self.overflow.largest.max(overflow.largest);
            sink(&self.buffer)?;
        }
        Ok(())
    }
}

/// A [`Write`] over a function taking each write whole.
struct Chunked<'f>(&'f mut dyn FnMut(&[u8]) -> std::io::Result<()>);

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0)(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Local elements `[low, high)` of a parameter on one tensor rank, whose local tensor is `runs`
/// (`(local, global, len)`, from `local_runs`) of its global tensor.
struct Span<'a> {
    runs: &'a [(usize, usize, usize)],
    low: usize,
    high: usize,
    element: usize,
}

impl Span<'_> {
    /// The span's bytes in the global tensor, in order: one range per run it covers.
    fn byte_ranges(&self) -> Vec<Range<usize>> {
        let element = self.element;
        (self.runs.iter())
            .filter_map(|&(local, global, len)| {
                let (start, end) = (local.max(self.low), (local + len).min(self.high));
                (start < end).then(|| {
                    let from = global + start - local;
                    from * element..(from + end - start) * element
                })
            })
            .collect()
    }

    /// Passes the span's bytes, taken from the global tensor `bytes`, to `emit` in order: runs of
    /// at least `chunk` bytes straight from `bytes`, shorter ones gathered in `scratch` up to
    /// `chunk` bytes. Returns the bytes emitted.
    fn emit(
        &self,
        bytes: &[u8],
        scratch: &mut Vec<u8>,
        chunk: usize,
        emit: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let element = self.element;
        let mut total = 0u64;
        scratch.clear();
        for &(local, global, len) in self.runs {
            let start = local.max(self.low);
            let end = (local + len).min(self.high);
            if start >= end {
                continue;
            }
            let from = global + start - local;
            let piece = &bytes[from * element..(from + end - start) * element];
            if !scratch.is_empty() && (scratch.len() + piece.len() > chunk || piece.len() >= chunk) {
                emit(scratch)?;
                scratch.clear();
            }
            if piece.len() >= chunk {
                emit(piece)?;
            } else {
                scratch.extend_from_slice(piece);
            }
            total += piece.len() as u64;
        }
        if !scratch.is_empty() {
            emit(scratch)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Local elements 3..8 of a tensor-parallel slice (column pair 2..4 of each row of a 4×6
    /// tensor of bytes 0..24): the last element of row 1's pair, then rows 2 and 3. Emitted in
    /// order, short runs gathered up to the chunk, a run of a chunk or more alone.
    #[rstest]
    #[case(2, vec![vec![9], vec![14, 15], vec![20, 21]])]
    #[case(3, vec![vec![9, 14, 15], vec![20, 21]])]
    #[case(8, vec![vec![9, 14, 15, 20, 21]])]
    fn spans_are_gathered_up_to_the_chunk(#[case] chunk: usize, #[case] expected: Vec<Vec<u8>>) {
        let bytes: Vec<u8> = (0..24).collect();
        let runs: Vec<(usize, usize, usize)> = (0..4).map(|row| (row * 2, row * 6 + 2, 2)).collect();
        let span = Span {
            runs: &runs,
            low: 3,
            high: 8,
            element: 1,
        };
        let mut emitted: Vec<Vec<u8>> = Vec::new();
        let total = span
            .emit(&bytes, &mut Vec::new(), chunk, &mut |data| {
                emitted.push(data.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(emitted, expected);
        assert_eq!(total, 5);
    }

    /// The byte ranges of a span (what a streamed slice reads from the input's files) cover
    /// the bytes `emit` takes from the global tensor, in order, whatever the element size and
    /// wherever the span starts and ends in a run.
    #[rstest]
    fn a_span_s_byte_ranges_are_the_bytes_it_emits(
        #[values(1, 2, 4)] element: usize,
        #[values((0, 12), (3, 8), (1, 2), (4, 6), (11, 12))] span: (usize, usize),
    ) {
        let bytes: Vec<u8> = (0..24 * element as u8).collect();
        let runs: Vec<(usize, usize, usize)> = (0..4).map(|row| (row * 3, row * 6 + 2, 3)).collect();
        let span = Span {
            runs: &runs,
            low: span.0,
            high: span.1,
            element,
        };
        let mut emitted = Vec::new();
        span.emit(&bytes, &mut Vec::new(), 1 << 20, &mut |data| {
            emitted.extend_from_slice(data);
            Ok(())
        })
        .unwrap();
        let ranges = span.byte_ranges();
        let read: Vec<u8> = ranges.iter().flat_map(|range| bytes[range.clone()].to_vec()).collect();
        assert_eq!(read, emitted);
        assert!(ranges.iter().all(|range| !range.is_empty()), "{ranges:?}");
    }
}
