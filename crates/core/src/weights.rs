//! Weight declarations, beside the config declarations of each section and composed the same way,
//! and the plan they yield for one config: every Fast-LLM tensor ↔ its HF tensors, the transform,
//! and every shape.
//!
//! Transforms are stated in the import direction (HF → Fast-LLM); export applies the inverse.

use std::sync::Arc;

use fastllm_config::{Map, Value};

use crate::dict::{self, join};
use crate::section::Section;
use crate::{Problem, fl_value};

/// How a Fast-LLM tensor is made of its HF tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// One HF tensor, the same bytes.
    Copy,
    /// Several HF tensors concatenated along dimension 0 (fused K/V, gate/up, experts).
    Concat,
    /// One 2-D HF tensor, transposed (Fast-LLM stores `down_proj` transposed).
    Transpose,
    /// Several 2-D HF tensors, each transposed, concatenated along dimension 0 (MoE `w2`).
    TransposeConcat,
}

impl Transform {
    /// The shape of each of `parts` HF tensors, for a Fast-LLM tensor of shape `fast_llm`.
    pub fn hf_shapes(self, fast_llm: &[usize], parts: usize) -> Option<Vec<Vec<usize>>> {
        let split = |shape: &[usize]| -> Option<Vec<usize>> {
            let (first, rest) = shape.split_first()?;
            (parts > 0 && first % parts == 0)
                .then(|| std::iter::once(first / parts).chain(rest.iter().copied()).collect())
        };
        Some(match self {
            Transform::Copy if parts == 1 => vec![fast_llm.to_vec()],
            Transform::Concat => vec![split(fast_llm)?; parts],
            Transform::Transpose if parts == 1 && fast_llm.len() == 2 => vec![vec![fast_llm[1], fast_llm[0]]],
            Transform::TransposeConcat if fast_llm.len() == 2 => {
                let part = split(fast_llm)?;
                vec![vec![part[1], part[0]]; parts]
            }
            _ => return None,
        })
    }
}

/// What a weight declaration sees: the section's Fast-LLM full-form dict and the root's.
pub struct WeightContext<'a> {
    pub section: &'a Map,
    pub root: &'a Map,
}

impl WeightContext<'_> {
    /// An int field of the section (0 when absent, which a validated config never is).
    pub fn int(&self, path: &str) -> usize {
        as_usize(fl_value(self.section, path))
    }

    /// An int field of the root config.
    pub fn root_int(&self, path: &str) -> usize {
        as_usize(fl_value(self.root, path))
    }

    /// A bool field of the section.
    pub fn flag(&self, path: &str) -> bool {
        fl_value(self.section, path) == &Value::Bool(true)
    }
}

fn as_usize(value: &Value) -> usize {
    match value {
        Value::Int(i) if *i >= 0 => *i as usize,
        _ => 0,
    }
}

/// The Fast-LLM shape of a parameter.
pub type ShapeFn = Arc<dyn Fn(&WeightContext) -> Vec<usize> + Send + Sync>;
/// Whether a parameter exists for this config.
pub type WhenFn = Arc<dyn Fn(&WeightContext) -> bool + Send + Sync>;
/// HF names (relative to the section's HF prefix) computed from the config (e.g. per expert).
pub type NamesFn = Arc<dyn Fn(&WeightContext) -> Vec<String> + Send + Sync>;

/// One weight declaration of a section.
#[derive(Clone)]
pub enum WeightDecl {
    /// A parameter: Fast-LLM name ↔ HF names, with its transform and shape.
    Param {
        fast_llm: &'static str,
        hf: NamesFn,
        transform: Transform,
        shape: ShapeFn,
        when: Option<WhenFn>,
    },
    /// A sub-section's weights: its config at `config`, names under `fast_llm` / `hf`.
    Nested {
        config: &'static str,
        fast_llm: &'static str,
        hf: &'static str,
        section: Arc<Section>,
    },
    /// The blocks of a block sequence at `config`, block `i` under `fast_llm.i` / `hf.i`.
    Blocks {
        config: &'static str,
        fast_llm: &'static str,
        hf: &'static str,
        block: Arc<Section>,
    },
}

impl WeightDecl {
    /// A parameter with fixed HF names.
    pub fn param(
        fast_llm: &'static str,
        hf: &'static [&'static str],
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        WeightDecl::Param {
            fast_llm,
            hf: Arc::new(move |_| hf.iter().map(|s| s.to_string()).collect()),
            transform,
            shape: Arc::new(shape),
            when: None,
        }
    }

    /// A parameter whose HF names depend on the config.
    pub fn param_named(
        fast_llm: &'static str,
        hf: impl Fn(&WeightContext) -> Vec<String> + Send + Sync + 'static,
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        WeightDecl::Param {
            fast_llm,
            hf: Arc::new(hf),
            transform,
            shape: Arc::new(shape),
            when: None,
        }
    }

    /// Only when `when(config)` holds (biases, untied output weights).
    pub fn when(mut self, condition: impl Fn(&WeightContext) -> bool + Send + Sync + 'static) -> Self {
        if let WeightDecl::Param { when, .. } = &mut self {
            *when = Some(Arc::new(condition));
        }
        self
    }
}

/// One planned tensor conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// The Fast-LLM parameter name (without the `/weights` shard suffix).
    pub fast_llm: String,
    pub fast_llm_shape: Vec<usize>,
    pub hf: Vec<String>,
    pub hf_shapes: Vec<Vec<usize>>,
    pub transform: Transform,
}

/// The plan of `root` (a base-model section) for the config `config` (full form).
pub fn plan(root: &Section, config: &Map) -> Result<Vec<PlanEntry>, Vec<Problem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    walk(root, config, config, "", "", &mut out, &mut problems);
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    section: &Section,
    config: &Map,
    root: &Map,
    fl_prefix: &str,
    hf_prefix: &str,
    out: &mut Vec<PlanEntry>,
    problems: &mut Vec<Problem>,
) {
    let context = WeightContext { section: config, root };
    // Weights are declared for one config class, as config declarations are.
    if let Some(expected) = section.class.type_name
        && fl_value(config, "type") != &Value::Str(expected.to_string())
    {
        problems.push(Problem::at_fast_llm(
            join(fl_prefix, "type"),
            format!(
                "weights are declared for `{expected}` here, found {}",
                dict::show(fl_value(config, "type"))
            ),
        ));
        return;
    }
    for (_, decl) in &section.weights {
        match decl {
            WeightDecl::Param {
                fast_llm,
                hf,
                transform,
                shape,
                when,
            } => {
                if when.as_ref().is_some_and(|w| !w(&context)) {
                    continue;
                }
                let fast_llm_shape = shape(&context);
                let hf: Vec<String> = hf(&context).iter().map(|n| join(hf_prefix, n)).collect();
                let name = join(fl_prefix, fast_llm);
                match transform.hf_shapes(&fast_llm_shape, hf.len()) {
                    Some(hf_shapes) => out.push(PlanEntry {
                        fast_llm: name,
                        fast_llm_shape,
                        hf,
                        hf_shapes,
                        transform: *transform,
                    }),
                    None => problems.push(Problem::at_fast_llm(
                        name,
                        format!(
                            "{transform:?} cannot split shape {fast_llm_shape:?} into {} HF tensors",
                            hf.len()
                        ),
                    )),
                }
            }
            WeightDecl::Nested {
                config: path,
                fast_llm,
                hf,
                section,
            } => match dict::get(config, path) {
                Some(Value::Map(sub)) => walk(
                    section,
                    sub,
                    root,
                    &join(fl_prefix, fast_llm),
                    &join(hf_prefix, hf),
                    out,
                    problems,
                ),
                _ => problems.push(Problem::at_fast_llm(
                    join(fl_prefix, path),
                    "no config for these weights",
                )),
            },
            WeightDecl::Blocks {
                config: path,
                fast_llm,
                hf,
                block,
            } => {
                let sequence = dict::get(config, path)
                    .and_then(Value::as_map)
                    .cloned()
                    .unwrap_or_default();
                for (i, block_config) in blocks(&sequence).into_iter().enumerate() {
                    let fl = join(&join(fl_prefix, fast_llm), &i.to_string());
                    let hf = join(&join(hf_prefix, hf), &i.to_string());
                    walk(block, &block_config, root, &fl, &hf, out, problems);
                }
            }
        }
    }
}

/// The block config at each position of a block sequence (fixed or pattern).
fn blocks(sequence: &Map) -> Vec<Map> {
    let count = as_usize(fl_value(sequence, "num_blocks"));
    match fl_value(sequence, "type") {
        Value::Str(t) if t == "pattern" => {
            let names: Vec<String> = match fl_value(sequence, "pattern") {
                Value::List(items) => items
                    .iter()
                    .filter_map(|v| if let Value::Str(s) = v { Some(s.clone()) } else { None })
                    .collect(),
                _ => Vec::new(),
            };
            if names.is_empty() {
                return Vec::new();
            }
            (0..count)
                .map(|i| {
                    dict::get(sequence, &format!("blocks.{}", names[i % names.len()]))
                        .and_then(Value::as_map)
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        }
        _ => vec![fl_value(sequence, "block").as_map().cloned().unwrap_or_default(); count],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_shapes_per_transform() {
        assert_eq!(Transform::Copy.hf_shapes(&[4, 8], 1), Some(vec![vec![4, 8]]));
        assert_eq!(
            Transform::Concat.hf_shapes(&[4, 8], 2),
            Some(vec![vec![2, 8], vec![2, 8]])
        );
        assert_eq!(Transform::Concat.hf_shapes(&[5, 8], 2), None, "uneven split");
        assert_eq!(Transform::Transpose.hf_shapes(&[4, 8], 1), Some(vec![vec![8, 4]]));
        assert_eq!(
            Transform::TransposeConcat.hf_shapes(&[6, 8], 3),
            Some(vec![vec![8, 2]; 3])
        );
        assert_eq!(Transform::Transpose.hf_shapes(&[4], 1), None, "1-D has no transpose");
    }
}
