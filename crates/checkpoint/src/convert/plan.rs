//! The output plan: every tensor the output holds, with the Fast-LLM parameter it comes from,
//! checked against the opened input before anything is written.

use std::collections::BTreeSet;
use std::path::Path;

use fastllm_config::BaseModelConfig;
use fastllm_core::weights::{BoundedPlan, PlanEntry, PlanLimits, plan_bounded};
use fastllm_core::{Handler, Problem};

use super::input::Input;
use super::{ConversionError, Output, PlannedTensor, Side};
use crate::cast::{Dtype, Source};
use crate::naming::{config_file, tensor_bytes};

/// The shard suffix of Fast-LLM tensor names (`<parameter>/weights`).
pub(crate) const SHARD: &str = "/weights";

/// One output tensor: what the summary lists, and how to make it from a Fast-LLM parameter.
#[derive(Debug, Clone)]
pub(crate) struct OutputTensor {
    pub tensor: PlannedTensor,
    /// The Fast-LLM parameter it is (part of).
    pub parameter: String,
    /// Its index among the `parts` output tensors of the parameter.
    pub part: usize,
    pub parts: usize,
    /// The parameter's Fast-LLM shape.
    pub fast_llm_shape: Vec<usize>,
    /// The cast its bytes go through (`--dtype`): from the input's dtype to `tensor.dtype`.
    pub cast: Option<(Source, Dtype)>,
    /// The optimizer shard it holds (`exp_avgs`, ...), `None` for the weights.
    pub shard: Option<String>,
}

/// The output tensors of `input` (read from `dir` as `from`) in format `to`, in write order.
/// Every problem is collected, each naming its tensor: a planned tensor the input lacks or holds
/// with another shape, a size that overflows, an input parameter with no place in the output.
pub(crate) fn plan(input: &Input, dir: &Path, from: Side, to: Output) -> Result<Vec<OutputTensor>, ConversionError> {
    let mut outputs = Vec::new();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let mut truncated = None;
    match to {
        Output::FastLlm => {
            for (parameter, src) in &input.sources {
                used.insert(parameter.clone());
                let Some(bytes) = tensor_bytes(&src.shape, &src.dtype) else {
                    problems.push(format!(
                        "Fast-LLM `{parameter}`: shape {:?} of {} overflows",
                        src.shape, src.dtype
                    ));
                    continue;
                };
                let tensor = PlannedTensor {
                    name: format!("{parameter}{SHARD}"),
                    dtype: src.dtype.clone(),
                    shape: src.shape.clone(),
                    from: src.inputs.clone(),
                    transform: src.transform,
                    bytes,
                    cast_from: None,
                };
                outputs.push(OutputTensor {
                    tensor,
                    parameter: parameter.clone(),
                    part: 0,
                    parts: 1,
                    fast_llm_shape: src.shape.clone(),
                    cast: None,
                    shard: None,
                });
            }
        }
        Output::Hf(handler) => {
            let name_hf_keys = matches!(from, Side::Hf(h) if std::ptr::eq(h, handler));
            let BoundedPlan {
                entries,
                oversized,
                beyond_tensor_limit,
                ..
            } = weight_plan(
                handler,
                &PlanFor {
                    config: &input.config,
                    limits: &input.limits,
                    source: &config_file(dir, from),
                    name_hf_keys,
                },
            )?;
            // Named after the tensors of the plan's first part the input lacks (there is one at
            // least: the plan holds more distinct parameters than the input).
            truncated = beyond_tensor_limit.map(|beyond| beyond.message);
            for entry in entries {
                let Some(src) = input.sources.get(&entry.fast_llm) else {
                    problems.push(format!("Fast-LLM `{}`: missing from {}", entry.fast_llm, input.listing));
                    continue;
                };
                if src.shape != entry.fast_llm_shape {
                    problems.push(format!(
                        "Fast-LLM `{}` in {}: shape {:?}, the config implies {:?}",
                        entry.fast_llm,
                        input.file_of(&entry.fast_llm),
                        src.shape,
                        entry.fast_llm_shape
                    ));
                    continue;
                }
                used.insert(entry.fast_llm.clone());
                let parts = entry.hf.len();
                for (i, (name, shape)) in entry.hf.iter().zip(&entry.hf_shapes).enumerate() {
                    let Some(bytes) = tensor_bytes(shape, &src.dtype) else {
                        problems.push(format!("`{name}`: shape {shape:?} of {} overflows", src.dtype));
                        continue;
                    };
                    let tensor = PlannedTensor {
                        name: name.clone(),
                        dtype: src.dtype.clone(),
                        shape: shape.clone(),
                        from: src.inputs.clone(),
                        transform: entry.transform,
                        bytes,
                        cast_from: None,
                    };
                    outputs.push(OutputTensor {
                        tensor,
                        parameter: entry.fast_llm.clone(),
                        part: i,
                        parts,
                        fast_llm_shape: entry.fast_llm_shape.clone(),
                        cast: None,
                        shard: None,
                    });
                }
            }
            beyond_the_checkpoint(oversized, &mut problems);
        }
    }
    match truncated {
        // The input's parameters after where the plan stopped were never looked for.
        Some(beyond) => problems.push(beyond),
        None => problems.extend(input.unplaced(to.name(), |p| used.contains(p))),
    }
    ConversionError::check_tensors(dir, problems)?;
    Ok(outputs)
}

/// Appends to a Fast-LLM plan the optimizer state of `input` (read from `dir`): per optimizer
/// shard, in the input's order, `<parameter>/<shard>` of every parameter that has one, as
/// Fast-LLM's state-dict format names them. A frozen parameter has none: Fast-LLM never keeps
/// optimizer state for it.
pub(crate) fn add_optimizer_state(
    outputs: &mut Vec<OutputTensor>,
    input: &Input,
    dir: &Path,
) -> Result<(), ConversionError> {
    let weights: Vec<OutputTensor> = outputs.iter().filter(|o| o.shard.is_none()).cloned().collect();
    let mut problems = Vec::new();
    for shard in &input.optimizer_shards {
        for output in &weights {
            let Some((dtype, shape)) = input.state_tensor(&output.parameter, shard) else {
                continue;
            };
            if (&dtype, &shape) != (&output.tensor.dtype, &output.tensor.shape) {
                problems.push(format!(
                    "`{}/{shard}`: {dtype} {shape:?}, its weights are {} {:?}",
                    output.parameter, output.tensor.dtype, output.tensor.shape
                ));
                continue;
            }
            let mut state = output.clone();
            state.tensor.name = format!("{}/{shard}", output.parameter);
            state.tensor.from = vec![format!("{}/{shard}", output.parameter)];
            state.shard = Some(shard.clone());
            outputs.push(state);
        }
    }
    ConversionError::check_tensors(dir, problems)
}

/// Casts the planned `outputs` of `input` (read from `dir`) to `dtype` (`--dtype`): each tensor
/// of another dtype gets the cast and its size after it. A tensor whose dtype is not a
/// floating-point one this tool casts is refused by name (unless already `dtype`).
pub(crate) fn cast(
    outputs: &mut [OutputTensor],
    input: &Input,
    dir: &Path,
    dtype: Dtype,
) -> Result<(), ConversionError> {
    let mut problems = Vec::new();
    for output in outputs.iter_mut() {
        let tensor = &mut output.tensor;
        if tensor.dtype == dtype.safetensors() {
            continue;
        }
        let Some(source) = Source::of(&tensor.dtype) else {
            problems.push(format!(
                "`{}` (Fast-LLM `{}`) in {}: dtype {} cannot be cast to {} (--dtype casts F64, F32, BF16 and F16)",
                tensor.name,
                output.parameter,
                input.file_of(&output.parameter),
                tensor.dtype,
                dtype.safetensors()
            ));
            continue;
        };
        let Some(bytes) = tensor_bytes(&tensor.shape, dtype.safetensors()) else {
            problems.push(format!(
                "`{}`: shape {:?} of {} overflows",
                tensor.name,
                tensor.shape,
                dtype.safetensors()
            ));
            continue;
        };
        tensor.cast_from = Some(std::mem::replace(&mut tensor.dtype, dtype.safetensors().to_string()));
        tensor.bytes = bytes;
        output.cast = Some((source, dtype));
    }
    ConversionError::check_tensors(dir, problems)
}

/// What a weight plan is made for.
pub(crate) struct PlanFor<'a> {
    /// The model.
    pub config: &'a BaseModelConfig,
    /// The bounds the plan stays within.
    pub limits: &'a PlanLimits,
    /// The file the config was read from, named by the plan's errors.
    pub source: &'a Path,
    /// Whether each problem also names the HF key behind its Fast-LLM path: when the config was
    /// imported through the plan's handler.
    pub name_hf_keys: bool,
}

/// The handler's weight plan for `request.config` within `request.limits`: its problems are an
/// error; a plan beyond the tensor limit is returned up to the first entry past it, for the
/// caller to name the tensors the input lacks.
pub(crate) fn weight_plan(handler: &Handler, request: &PlanFor) -> Result<BoundedPlan, ConversionError> {
    let &PlanFor {
        config,
        limits,
        source,
        name_hf_keys,
    } = request;
    let section = &handler.converter().base_model;
    if section.weights().is_empty() {
        return Err(ConversionError::WeightsNotDeclared { format: handler.name });
    }
    let mut plan = plan_bounded(section, config, limits);
    if plan.problems.is_empty() {
        return Ok(plan);
    }
    if name_hf_keys {
        for problem in &mut plan.problems {
            problem.hf = problem.fast_llm.as_deref().and_then(|path| handler.hf_source(path));
        }
    }
    Err(plan_error(handler, source, plan.problems))
}

/// [`weight_plan`] made without an input to check it against: beyond the limits is an error too.
pub(crate) fn whole_weight_plan(
    handler: &Handler,
    config: &BaseModelConfig,
    limits: &PlanLimits,
    source: &Path,
) -> Result<Vec<PlanEntry>, ConversionError> {
    let request = PlanFor {
        config,
        limits,
        source,
        name_hf_keys: false,
    };
    let plan = weight_plan(handler, &request)?;
    let problems: Vec<Problem> = plan.oversized.into_iter().chain(plan.beyond_tensor_limit).collect();
    if problems.is_empty() {
        Ok(plan.entries)
    } else {
        Err(plan_error(handler, source, problems))
    }
}

/// The planned parameters with more elements than the checkpoint holds in all, when checking
/// the plan against it found nothing: each is missing there or another shape, and named so.
pub(crate) fn beyond_the_checkpoint(oversized: Vec<Problem>, problems: &mut Vec<String>) {
    if problems.is_empty() {
        problems.extend(oversized.into_iter().map(|problem| problem.message));
    }
}

fn plan_error(handler: &Handler, source: &Path, problems: Vec<Problem>) -> ConversionError {
    ConversionError::Plan {
        path: source.to_path_buf(),
        format: handler.name,
        problems,
    }
}
