//! Where a conversion error comes from: the file (`config.json`, `metadata.yaml`, the shard or
//! index file) and, for configs imported from HF, the HF key behind a Fast-LLM path.

use std::path::{Path, PathBuf};

use fastllm_core::weights::{PlanLimits, elements};
use fastllm_core::{ConvertError, Problem, render_problems};

use crate::convert::{ConversionError, Side};
use crate::{FileSet, dtype_size};

/// The problems of a weight plan, under one heading.
pub(crate) fn render_plan(format: &str, problems: &[Problem]) -> String {
    render_problems(
        &format!("the {format} tensors this config implies cannot be planned"),
        problems,
    )
}

/// The file an input side's config is read from.
pub(crate) fn config_file(dir: &Path, side: Side) -> PathBuf {
    dir.join(side.input_layout().config_file())
}

/// A config problem, named with the file the config came from.
pub(crate) fn in_file(path: PathBuf) -> impl FnOnce(ConvertError) -> ConversionError {
    move |source| ConversionError::ConfigFile { path, source }
}

/// An export rejection of the input's config: named with the input's config file and, for an
/// HF input, with the input's HF key behind each Fast-LLM path (the key the user can change).
pub(crate) fn export_error(input: &Path, from: Side) -> impl FnOnce(ConvertError) -> ConversionError {
    let path = config_file(input, from);
    move |mut error| {
        if let (Side::Hf(handler), ConvertError::Rejected { problems, .. }) = (from, &mut error) {
            for problem in problems.iter_mut().filter(|p| p.hf.is_none()) {
                problem.hf = problem.fast_llm.as_deref().and_then(|path| handler.hf_source(path));
            }
        }
        ConversionError::ConfigFile { path, source: error }
    }
}

/// The plan limits of an input: it holds so many tensors and elements, and no more.
pub(crate) fn limits(files: &FileSet) -> PlanLimits {
    PlanLimits::checkpoint(files.len(), files.total_elements())
}

/// The byte size of a tensor, or `None` for an unknown dtype or an overflowing shape.
pub(crate) fn tensor_bytes(shape: &[usize], dtype: &str) -> Option<u64> {
    elements(shape)?.checked_mul(dtype_size(dtype)? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_error_counts_its_problems_and_lists_one_per_line() {
        let problems = [Problem::at_fast_llm("decoder.mlp.intermediate_size", "overflows")];
        assert_eq!(
            render_plan("llama", &problems),
            "the llama tensors this config implies cannot be planned (1 problem):\n  `decoder.mlp.intermediate_size`: overflows"
        );
    }
}
