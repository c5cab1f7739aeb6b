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
    /// One HF tensor, the same bytes in another shape (a conv kernel `[out, C, p, p]` is
    /// Fast-LLM's linear `[out, C·p·p]`). The HF shape is declared ([`WeightDecl::reshaped`]).
    Reshape,
    /// One HF tensor `[E, H, I]` of stacked experts, each transposed into Fast-LLM's
    /// `[E·I, H]` (fused MoE down-projections). The HF shape is declared
    /// ([`WeightDecl::experts_transposed`]).
    TransposeExperts,
}

impl Transform {
    /// The shape of each of `parts` HF tensors, for a Fast-LLM tensor of shape `fast_llm`
    /// (`Reshape` shapes are declared, not derived).
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
/// Fast-LLM or HF name of repetition `i`.
pub type IndexedName = Arc<dyn Fn(usize) -> String + Send + Sync>;
/// A count computed from the config.
pub type CountFn = Arc<dyn Fn(&WeightContext) -> usize + Send + Sync>;

/// One weight declaration of a section.
#[derive(Clone)]
pub enum WeightDecl {
    /// A parameter: Fast-LLM name ↔ HF names, with its transform and shape (`hf_shape`: the HF
    /// shape of a `Reshape`).
    Param {
        fast_llm: &'static str,
        hf: NamesFn,
        transform: Transform,
        shape: ShapeFn,
        when: Option<WhenFn>,
        hf_shape: Option<ShapeFn>,
    },
    /// A sub-section's weights: its config at `config` (empty: this section's own, to mount a
    /// weight tree under a prefix), names under `fast_llm` / `hf`.
    Nested {
        config: &'static str,
        fast_llm: &'static str,
        hf: &'static str,
        section: Arc<Section>,
    },
    /// The blocks of a block sequence at `config`, block `i` under `fast_llm.i` / `hf.i`. A
    /// block's own declarations dispatch per position (e.g. on its mixer's type).
    Blocks {
        config: &'static str,
        fast_llm: &'static str,
        hf: &'static str,
        block: Arc<Section>,
    },
    /// The section whose class matches the runtime `type` of the config at `config`; each
    /// candidate has its own HF prefix (mixers live under different HF names).
    Dispatch {
        config: &'static str,
        fast_llm: &'static str,
        sections: Vec<(&'static str, Arc<Section>)>,
    },
    /// `count` repetitions of a section on the config at `config` (empty: this section's), with
    /// index-templated prefixes (multi-token-prediction heads).
    Repeat {
        config: &'static str,
        count: CountFn,
        fast_llm: IndexedName,
        hf: IndexedName,
        section: Arc<Section>,
    },
    /// `count` copies of the last block of the block sequence at `config` (fixed or pattern: the
    /// block of the expanded pattern's last entry), with index-templated prefixes
    /// (multi-token-prediction blocks copy the decoder's last block).
    RepeatLastBlock {
        config: &'static str,
        count: CountFn,
        fast_llm: IndexedName,
        hf: IndexedName,
        block: Arc<Section>,
    },
    /// Each entry of the dict at `config` (stochastic mixers), by its type, under
    /// `fast_llm.<name>` / `hf.<name>`.
    TypedDict {
        config: &'static str,
        fast_llm: &'static str,
        hf: &'static str,
        sections: Vec<Arc<Section>>,
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
        Self::param_named(
            fast_llm,
            move |_| hf.iter().map(|s| s.to_string()).collect(),
            transform,
            shape,
        )
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
            hf_shape: None,
        }
    }

    /// A parameter stored in another shape on the HF side (same bytes).
    pub fn reshaped(
        fast_llm: &'static str,
        hf: &'static str,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
        hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::declared_hf_shape(fast_llm, hf, Transform::Reshape, shape, hf_shape)
    }

    /// A stacked-experts HF tensor `[E, H, I]` ↔ Fast-LLM `[E·I, H]`, each expert transposed.
    pub fn experts_transposed(
        fast_llm: &'static str,
        hf: &'static str,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
        hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        Self::declared_hf_shape(fast_llm, hf, Transform::TransposeExperts, shape, hf_shape)
    }

    /// One HF tensor whose shape is declared rather than derived from the transform.
    fn declared_hf_shape(
        fast_llm: &'static str,
        hf: &'static str,
        transform: Transform,
        shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
        hf_shape: impl Fn(&WeightContext) -> Vec<usize> + Send + Sync + 'static,
    ) -> Self {
        WeightDecl::Param {
            fast_llm,
            hf: Arc::new(move |_| vec![hf.to_string()]),
            transform,
            shape: Arc::new(shape),
            when: None,
            hf_shape: Some(Arc::new(hf_shape)),
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

fn matching<'s>(sections: impl Iterator<Item = &'s Arc<Section>>, found: &Value) -> Option<&'s Arc<Section>> {
    let mut sections = sections;
    sections.find(|s| s.class.type_name.is_some_and(|t| &Value::Str(t.into()) == found))
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
                hf_shape,
            } => {
                if when.as_ref().is_some_and(|w| !w(&context)) {
                    continue;
                }
                let fast_llm_shape = shape(&context);
                let hf: Vec<String> = hf(&context).iter().map(|n| join(hf_prefix, n)).collect();
                let name = join(fl_prefix, fast_llm);
                let shapes = match (transform, hf_shape) {
                    (Transform::Reshape, Some(hf_shape)) => {
                        let hf_shape = hf_shape(&context);
                        let same_size = hf_shape.iter().product::<usize>() == fast_llm_shape.iter().product::<usize>();
                        (hf.len() == 1 && same_size).then(|| vec![hf_shape])
                    }
                    (Transform::TransposeExperts, Some(hf_shape)) => {
                        let hf_shape = hf_shape(&context);
                        let fits = matches!((hf_shape.as_slice(), fast_llm_shape.as_slice()),
                            ([e, h, i], [rows, cols]) if e * i == *rows && h == cols);
                        (hf.len() == 1 && fits).then(|| vec![hf_shape])
                    }
                    _ => transform.hf_shapes(&fast_llm_shape, hf.len()),
                };
                match shapes {
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
                            "{transform:?} cannot map shape {fast_llm_shape:?} onto {} HF tensors",
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
            } => match dict::get_map(config, path) {
                Some(sub) => walk(
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
            WeightDecl::Dispatch {
                config: path,
                fast_llm,
                sections,
            } => {
                let Some(Value::Map(sub)) = dict::get(config, path) else {
                    problems.push(Problem::at_fast_llm(
                        join(fl_prefix, path),
                        "no config for these weights",
                    ));
                    continue;
                };
                let found = fl_value(sub, "type");
                let candidate = sections
                    .iter()
                    .find(|(_, s)| matching(std::iter::once(s), found).is_some());
                match candidate {
                    Some((hf, section)) => walk(
                        section,
                        sub,
                        root,
                        &join(fl_prefix, fast_llm),
                        &join(hf_prefix, hf),
                        out,
                        problems,
                    ),
                    None => problems.push(Problem::at_fast_llm(
                        join(&join(fl_prefix, path), "type"),
                        format!(
                            "weights of {} are not declared (supported: {})",
                            dict::show(found),
                            sections
                                .iter()
                                .filter_map(|(_, s)| s.class.type_name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                }
            }
            WeightDecl::Repeat {
                config: path,
                count,
                fast_llm,
                hf,
                section,
            } => {
                let sub = if path.is_empty() {
                    Some(config.clone())
                } else {
                    dict::get(config, path).and_then(Value::as_map).cloned()
                };
                let Some(sub) = sub else {
                    problems.push(Problem::at_fast_llm(
                        join(fl_prefix, path),
                        "no config for these weights",
                    ));
                    continue;
                };
                for i in 0..count(&context) {
                    walk(
                        section,
                        &sub,
                        root,
                        &join(fl_prefix, &fast_llm(i)),
                        &join(hf_prefix, &hf(i)),
                        out,
                        problems,
                    );
                }
            }
            WeightDecl::RepeatLastBlock {
                config: path,
                count,
                fast_llm,
                hf,
                block,
            } => {
                let sequence = dict::get(config, path)
                    .and_then(Value::as_map)
                    .cloned()
                    .unwrap_or_default();
                let copies = count(&context);
                match blocks(&sequence).pop() {
                    Some(last) => {
                        for i in 0..copies {
                            let (fl, hf) = (join(fl_prefix, &fast_llm(i)), join(hf_prefix, &hf(i)));
                            walk(block, &last, root, &fl, &hf, out, problems);
                        }
                    }
                    None if copies == 0 => {}
                    None => problems.push(Problem::at_fast_llm(
                        join(fl_prefix, path),
                        "no last block to copy (an empty block sequence)",
                    )),
                }
            }
            WeightDecl::TypedDict {
                config: path,
                fast_llm,
                hf,
                sections,
            } => {
                let entries = dict::get(config, path)
                    .and_then(Value::as_map)
                    .cloned()
                    .unwrap_or_default();
                for (name, entry) in &entries {
                    let Value::Map(entry) = entry else { continue };
                    let fl = join(&join(fl_prefix, fast_llm), name);
                    match matching(sections.iter(), fl_value(entry, "type")) {
                        Some(section) => walk(
                            section,
                            entry,
                            root,
                            &fl,
                            &join(&join(hf_prefix, hf), name),
                            out,
                            problems,
                        ),
                        None => problems.push(Problem::at_fast_llm(
                            join(&fl, "type"),
                            format!("weights of {} are not declared", dict::show(fl_value(entry, "type"))),
                        )),
                    }
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
                    let path = format!("blocks.{}", names[i % names.len()]);
                    dict::get(sequence, &path)
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
    use crate::config::{DecoderBlockConfig, GptBaseModelConfig};

    /// The planned MTP-style copies of a decoder's last block: `(name, shape)`.
    fn last_block_copies(decoder: &str) -> Result<Vec<(String, Vec<usize>)>, Vec<Problem>> {
        let block = Section::of::<DecoderBlockConfig>("test.block")
            .weight(
                "w",
                WeightDecl::param("w", &["w"], Transform::Copy, |c| vec![c.int("mlp.intermediate_size")]),
            )
            .build();
        let root = Section::of::<GptBaseModelConfig>("test.root").weight(
            "copies",
            WeightDecl::RepeatLastBlock {
                config: "decoder",
                count: Arc::new(|_| 2),
                fast_llm: Arc::new(|k| format!("copy.{k}")),
                hf: Arc::new(|k| format!("hf.{k}")),
                block,
            },
        );
        let config = Value::from_json_str(&format!(r#"{{"decoder": {decoder}}}"#)).unwrap();
        let entries = plan(&root, config.as_map().unwrap())?;
        Ok(entries.into_iter().map(|e| (e.fast_llm, e.fast_llm_shape)).collect())
    }

    #[test]
    fn repeat_last_block_copies_the_expanded_pattern_s_last_block() {
        let block = |width: usize| format!(r#"{{"type": "decoder", "mlp": {{"intermediate_size": {width}}}}}"#);
        let fixed = format!(r#"{{"type": "fixed", "num_blocks": 3, "block": {}}}"#, block(8));
        assert_eq!(
            last_block_copies(&fixed).unwrap(),
            [("copy.0.w".to_string(), vec![8]), ("copy.1.w".to_string(), vec![8])]
        );
        // Pattern a b a: the last block is `a`, not the pattern's last name.
        let pattern = format!(
            r#"{{"type": "pattern", "num_blocks": 3, "pattern": ["a", "b"], "blocks": {{"a": {}, "b": {}}}}}"#,
            block(4),
            block(6)
        );
        assert_eq!(
            last_block_copies(&pattern).unwrap()[0],
            ("copy.0.w".to_string(), vec![4])
        );
        let empty = r#"{"type": "pattern", "num_blocks": 3, "pattern": [], "blocks": {}}"#;
        let problems = last_block_copies(empty).unwrap_err();
        assert!(problems[0].message.contains("no last block"), "{problems:?}");
    }

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
        assert_eq!(Transform::Reshape.hf_shapes(&[4, 8], 1), None, "declared, not derived");
    }
}
