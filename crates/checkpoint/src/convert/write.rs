//! Writing the planned tensors: split into files (Fast-LLM's element budget or HF's shard size),
//! each file streamed in plan order, one Fast-LLM parameter's bytes alive at a time; and the
//! output format's extra files (modeling code) the input has.

use std::borrow::Cow;
use std::io::Write;
use std::ops::{ControlFlow, Range};
use std::path::Path;

use fastllm_core::weights::{Transform, elements};

use super::input::{Input, Source};
use super::plan::OutputTensor;
use super::transfer::{BAND_BYTES, HfPart, element};
use super::{ConversionError, Options, Output};
use crate::CheckpointError;
use crate::cast::{CastWriter, Overflow};
use crate::destination::RemoteOutput;
use crate::policy::{Entry, InputDir};
use crate::writer::{Destination, OutputDir, SafetensorsFile, TensorSpec, write_safetensors_to};

/// Fast-LLM starts a new file once a file holds this many elements.
const FAST_LLM_ELEMENTS_PER_FILE: u64 = 1 << 32;

/// Splits the output tensors into files: Fast-LLM's element budget, or HF's `max_shard_bytes`.
pub(crate) fn shard(outputs: &[OutputTensor], to: Output, options: &Options) -> Vec<(String, Range<usize>)> {
    let mut ranges = Vec::new();
    let (mut start, mut size) = (0usize, 0u64);
    for (i, output) in outputs.iter().enumerate() {
        let tensor = &output.tensor;
        let weight = match to {
            // Shapes of planned tensors are checked: their element counts fit.
            Output::FastLlm => elements(&tensor.shape).unwrap_or(u64::MAX),
            Output::Hf(_) => tensor.bytes,
        };
        let limit = match to {
            Output::FastLlm => FAST_LLM_ELEMENTS_PER_FILE,
            Output::Hf(_) => options.max_shard_bytes,
        };
        if matches!(to, Output::Hf(_)) && i > start && size.saturating_add(weight) > limit {
            ranges.push(start..i);
            (start, size) = (i, 0);
        }
        size = size.saturating_add(weight);
        if matches!(to, Output::FastLlm) && size >= limit {
            ranges.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    if start < outputs.len() || ranges.is_empty() {
        ranges.push(start..outputs.len());
    }
    let n = ranges.len();
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let name = match to {
                Output::FastLlm => format!("model_{i}.safetensors"),
                Output::Hf(_) if n == 1 => "model.safetensors".to_string(),
                Output::Hf(_) => format!("model-{:05}-of-{n:05}.safetensors", i + 1),
            };
            (name, range)
        })
        .collect()
}

/// The specs of `outputs`, in order.
pub(crate) fn specs(outputs: &[OutputTensor]) -> Vec<TensorSpec> {
    outputs
        .iter()
        .map(|o| TensorSpec {
            name: o.tensor.name.clone(),
            dtype: o.tensor.dtype.clone(),
            shape: o.tensor.shape.clone(),
        })
        .collect()
}

/// A tensor whose cast turned finite values into infinities (`--dtype`).
#[derive(Debug, Clone, PartialEq)]
pub struct Overflowed {
    /// The output tensor.
    pub tensor: String,
    /// The input file holding it.
    pub file: String,
    pub from: String,
    pub to: &'static str,
    pub count: u64,
    pub largest: f64,
}

/// The tensor files of a conversion: what [`write_tensors`] writes.
pub(crate) struct TensorFiles<'a> {
    /// Each file with the range of `outputs` it holds.
    pub files: &'a [(String, Range<usize>)],
    pub outputs: &'a [OutputTensor],
    /// Every file's header metadata.
    pub metadata: &'a std::collections::BTreeMap<String, String>,
    pub input: &'a Input,
    pub to: Output,
    /// Write a cast's overflow as infinities (and return it) instead of failing.
    pub allow_overflow: bool,
    /// Upload the files there instead of writing them into `out`.
    pub remote: Option<&'a RemoteOutput>,
}

/// Writes `outputs` into `files` of `out`, making each from `input`'s Fast-LLM parameters;
/// calls `progress(bytes written, total bytes)` before the first tensor, as the bytes of each
/// tensor are written (at most [`PROGRESS_CHUNK`] apart) and after each tensor, and stops with
/// [`CheckpointError::Interrupted`] as soon as it returns `Break`. A tensor that is its
/// parameter's bytes as they are streams from the input when the input can stream them;
/// otherwise one parameter's bytes are kept while its parts are written, then freed with the
/// pages of its inputs. A tensor with a cast goes through it on its way to the file; one whose
/// cast overflows stops the writing (the output is never committed) unless `allow_overflow`,
/// and is returned.
pub(crate) fn write_tensors(
    out: &OutputDir,
    tensors: &TensorFiles,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Vec<Overflowed>, ConversionError> {
    let &TensorFiles {
        files,
        outputs,
        metadata,
        input,
        to,
        allow_overflow,
        remote,
    } = tensors;
    let total: u64 = outputs.iter().map(|o| o.tensor.bytes).sum();
    let mut done = 0u64;
    if progress(done, total).is_break() {
        return Err(CheckpointError::Interrupted.into());
    }
    let mut stopped = false;
    let mut overflowed = Vec::new();
    // The transposed parts of the parameter being written: a band of a transpose at a time,
    // kept from one parameter to the next; a whole transposed part (experts, a transposed
    // concatenation) is freed with its parameter (kept, it stayed resident beside the largest
    // tensors, +78 MB peak RSS).
    let mut transposed = Vec::new();
    for (file, range) in files {
        let mut cached: Option<(&str, Cow<[u8]>)> = None;
        let path = out.path(file);
        let specs = specs(&outputs[range.clone()]);
        let destination = match remote {
            Some(remote) => Destination::Remote(remote.0.create(file).map_err(|e| CheckpointError::io(&path, e))?),
            None => Destination::Local,
        };
        let safetensors = SafetensorsFile {
            path: &path,
            metadata,
            tensors: &specs,
        };
        let written = write_safetensors_to(&safetensors, destination, |i, sink: &mut dyn Write| {
            let output = &outputs[range.start + i];
            let (tensor, parameter) = (&output.tensor, output.parameter.as_str());
            let start = done;
            // Progress counts the bytes that reach the file (after any cast).
            let sink = &mut Metered {
                sink,
                done: &mut done,
                total,
                progress: &mut *progress,
                stopped: &mut stopped,
            };
            // The input's bytes, in the input's dtype (a cast follows).
            let element = element(&input.sources[parameter].dtype);
            let mut fill = |sink: &mut dyn Write| -> std::io::Result<()> {
                if let Some(shard) = &output.shard {
                    // Optimizer state: only Fast-LLM outputs hold it, unchanged.
                    return input.stream_state(parameter, shard, sink);
                }
                // An output tensor that is its parameter's bytes as they are streams when the
                // input can stream it.
                let unchanged =
                    matches!(to, Output::FastLlm) || matches!(tensor.transform, Transform::Copy | Transform::Reshape);
                if unchanged && input.stream(parameter, sink)? {
                    return Ok(());
                }
                if cached.as_ref().is_none_or(|(p, _)| *p != parameter) {
                    if let Some((_, old)) = cached.take() {
                        input.recycle(old);
                    }
                    let bytes = input.bytes(parameter).map_err(std::io::Error::other)?;
                    cached = Some((parameter, bytes));
                }
                let bytes = &cached.as_ref().expect("filled").1;
                // Fast-LLM outputs are the Fast-LLM bytes; HF outputs apply the export transform.
                let transform = if matches!(to, Output::FastLlm) {
                    Transform::Copy
                } else {
                    tensor.transform
                };
                // Stacked experts need the HF shape; every other transform the Fast-LLM one.
                let shape = if transform == Transform::TransposeExperts {
                    &tensor.shape
                } else {
                    &output.fast_llm_shape
                };
                let part = HfPart {
                    shape,
                    transform,
                    index: output.part,
                    parts: output.parts,
                    element,
                };
                part.write(bytes, &mut transposed, sink)?;
                if output.part + 1 == output.parts {
                    // The parameter is fully written: its buffer goes to the next one.
                    if let Some((_, done)) = cached.take() {
                        input.recycle(done);
                    }
                    if transposed.capacity() > BAND_BYTES {
                        transposed = Vec::new();
                    }
                }
                Ok(())
            };
            // A slice of the parameter's bytes as they are (the whole parameter, or one part of
            // a fused one) streams from a local input, cast on the way by the threads reading it.
            let streamed = match (
                &output.shard,
                streamed_range(output, to, element, &input.sources[parameter]),
            ) {
                (None, Some(range)) => input.stream_range(parameter, range, output.cast, sink)?,
                _ => None,
            };
            let overflow = match (streamed, output.cast) {
                (Some(overflow), _) => overflow,
                (None, None) => {
                    fill(sink)?;
                    Overflow::default()
                }
                (None, Some((from, dtype))) => {
                    let mut cast = CastWriter::new(sink, from, dtype);
                    fill(&mut cast)?;
                    let (overflow, whole) = cast.finish();
                    if !whole {
                        return Err(std::io::Error::other(format!(
                            "tensor `{}`: its bytes are not whole {} elements",
                            tensor.name, input.sources[parameter].dtype
                        )));
                    }
                    overflow
                }
            };
            if let (true, Some((_, dtype))) = (overflow.count > 0, output.cast) {
                overflowed.push(Overflowed {
                    tensor: tensor.name.clone(),
                    file: input.file_of(parameter),
                    from: input.sources[parameter].dtype.clone(),
                    to: dtype.safetensors(),
                    count: overflow.count,
                    largest: overflow.largest,
                });
                if !allow_overflow {
                    // Reported by the caller from `overflowed`; nothing is committed.
                    return Err(std::io::Error::other("overflow"));
                }
            }
            done = start + tensor.bytes;
            tensor_done(progress, done, total, &mut stopped)
        });
        if stopped {
            return Err(CheckpointError::Interrupted.into());
        }
        if let Err(error) = written {
            return Err(match overflowed.pop() {
                Some(overflow) if !allow_overflow => ConversionError::Overflow(Box::new(overflow)),
                _ => error.into(),
            });
        }
    }
    Ok(overflowed)
}

/// The bytes of `output`'s parameter (a [`Source`] of `element`-byte values) that the output
/// tensor is, as they are, when it is a slice of them: the whole parameter for a Fast-LLM output
/// or a copied one, part `output.part` for one HF tensor of a fused parameter (as
/// [`super::transfer::HfPart`] cuts it); `None` when it is transformed (transposed).
fn streamed_range(output: &OutputTensor, to: Output, element: usize, source: &Source) -> Option<Range<usize>> {
    match output.tensor.transform {
        _ if matches!(to, Output::FastLlm) => Some(0..usize::MAX),
        Transform::Copy | Transform::Reshape => Some(0..usize::MAX),
        Transform::Concat if output.parts > 0 => {
            let len = source.shape.iter().product::<usize>() * element / output.parts;
            Some(output.part * len..(output.part + 1) * len)
        }
        _ => None,
    }
}

/// How many bytes a tensor is written in at most between two progress calls.
pub(crate) const PROGRESS_CHUNK: usize = 16 << 20;

/// Reports a finished tensor; an error (which stops the file) when `progress` says to stop.
fn tensor_done(
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    done: u64,
    total: u64,
    stopped: &mut bool,
) -> std::io::Result<()> {
    if progress(done, total).is_break() {
        *stopped = true;
        return Err(stop());
    }
    Ok(())
}

fn stop() -> std::io::Error {
    std::io::Error::other("the conversion was stopped")
}

/// A sink that writes at most [`PROGRESS_CHUNK`] bytes at a time, reports each write to
/// `progress`, and fails every write once `progress` says to stop.
struct Metered<'a> {
    sink: &'a mut dyn Write,
    done: &'a mut u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    stopped: &'a mut bool,
}

impl Write for Metered<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if *self.stopped {
            return Err(stop());
        }
        let n = self.sink.write(&buf[..buf.len().min(PROGRESS_CHUNK)])?;
        *self.done += n as u64;
        if (self.progress)(*self.done, self.total).is_break() {
            *self.stopped = true;
            return Err(stop());
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

/// The files the output format's checkpoints carry (e.g. `modeling_*.py`) split into the ones
/// the input directory has and the ones it lacks.
pub(crate) fn extra_files(input: &Path, to: Output) -> (Vec<&'static str>, Vec<String>) {
    let Output::Hf(handler) = to else {
        return (Vec::new(), Vec::new());
    };
    let Ok(dir) = InputDir::new(input) else {
        return (Vec::new(), handler.extra_files.iter().map(|f| f.to_string()).collect());
    };
    let (present, missing): (Vec<&str>, Vec<&str>) = handler
        .extra_files
        .iter()
        .partition(|file| matches!(dir.entry(file), Entry::Readable { .. }));
    (present, missing.into_iter().map(String::from).collect())
}

/// Copies the format's extra files the input has; returns the ones it lacks.
pub(crate) fn copy_extra_files(out: &OutputDir, input: &Path, to: Output) -> Result<Vec<String>, CheckpointError> {
    let (present, missing) = extra_files(input, to);
    if !present.is_empty() {
        let dir = InputDir::new(input)?;
        for file in present {
            dir.open(file)?.copy_to(&out.path(file))?;
        }
    }
    Ok(missing)
}
