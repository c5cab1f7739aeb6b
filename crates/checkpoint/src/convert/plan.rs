//! The output plan: every tensor the output holds, with the Fast-LLM parameter it comes from,
//! checked against the opened input before anything is written.

use std::collections::BTreeSet;
use std::path::Path;

use fastllm_config::{BaseModelConfig, Form};
use fastllm_core::Handler;
use fastllm_core::weights::{PlanEntry, PlanLimits, plan_within};

use super::input::Input;
use super::{ConversionError, Output, PlannedTensor, Side};
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
}

/// The output tensors of `input` (read from `dir` as `from`) in format `to`, in write order.
/// Every problem is collected, each naming its tensor: a planned tensor the input lacks or holds
/// with another shape, a size that overflows, an input parameter with no place in the output.
pub(crate) fn plan(input: &Input, dir: &Path, from: Side, to: Output) -> Result<Vec<OutputTensor>, ConversionError> {
    let mut outputs = Vec::new();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
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
                };
                outputs.push(OutputTensor {
                    tensor,
                    parameter: parameter.clone(),
                    part: 0,
                    parts: 1,
                    fast_llm_shape: src.shape.clone(),
                });
            }
        }
        Output::Hf(handler) => {
            let name_hf_keys = matches!(from, Side::Hf(h) if std::ptr::eq(h, handler));
            let entries = weight_plan(
                handler,
                &input.config,
                &input.limits,
                &config_file(dir, from),
                name_hf_keys,
            )?;
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
                    };
                    outputs.push(OutputTensor {
                        tensor,
                        parameter: entry.fast_llm.clone(),
                        part: i,
                        parts,
                        fast_llm_shape: entry.fast_llm_shape.clone(),
                    });
                }
            }
        }
    }
    let unused: Vec<&String> = input.sources.keys().filter(|p| !used.contains(*p)).collect();
    if !unused.is_empty() {
        problems.push(format!(
            "{} parameter(s) of the input have no place in {}: {}",
            unused.len(),
            to.name(),
            unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(ConversionError::Tensors {
            path: dir.to_path_buf(),
            problems,
        });
    }
    Ok(outputs)
}

/// The handler's weight plan for `config` (read from `source`) within `limits`. With
/// `name_hf_keys` (the config was imported through this handler), each problem also names the
/// HF key behind its Fast-LLM path.
pub(crate) fn weight_plan(
    handler: &Handler,
    config: &BaseModelConfig,
    limits: &PlanLimits,
    source: &Path,
    name_hf_keys: bool,
) -> Result<Vec<PlanEntry>, ConversionError> {
    let section = &handler.converter().base_model;
    if section.weights.is_empty() {
        return Err(ConversionError::WeightsNotDeclared { format: handler.name });
    }
    plan_within(section, &config.to_form(Form::Full), limits).map_err(|mut problems| {
        if name_hf_keys {
            for problem in &mut problems {
                problem.hf = problem.fast_llm.as_deref().and_then(|path| handler.hf_source(path));
            }
        }
        ConversionError::Plan {
            path: source.to_path_buf(),
            format: handler.name,
            problems,
        }
    })
}
