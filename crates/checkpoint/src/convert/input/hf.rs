//! A registered HF format: `config.json` and `model.safetensors` (or an index and its shards),
//! read through the format's weight plan, which names the HF tensors behind each Fast-LLM
//! parameter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fastllm_config::BaseModelConfig;
use fastllm_core::Handler;
use fastllm_core::weights::{BoundedPlan, PlanEntry};

use super::{Input, InputLayout, Source, Storage};
use crate::FileSet;
use crate::carry::InputConfig;
use crate::convert::plan::{PlanFor, beyond_the_checkpoint, weight_plan};
use crate::convert::{ConversionError, Options};
use crate::naming::limits;
use crate::policy::InputDir;
use crate::read::open_hf_with;

/// The layout of HF format `.0`.
pub(super) struct HfInput(pub &'static Handler);

impl InputLayout for HfInput {
    fn config_file(&self) -> &'static str {
        "config.json"
    }

    fn read_config(&self, dir: &Path, options: &Options) -> Result<InputConfig, ConversionError> {
        crate::carry::read_hf(&dir.join("config.json"), self.0, options)
    }

    fn open(&self, dir: &Path, config: BaseModelConfig, options: &Options) -> Result<Input, ConversionError> {
        let handler = self.0;
        let checkpoint = open_hf_with(dir, options.remote_input.as_ref())?;
        let limits = limits(&checkpoint.files);
        let BoundedPlan {
            mut entries,
            oversized,
            beyond_tensor_limit,
            ..
        } = weight_plan(
            handler,
            &PlanFor {
                config: &config,
                limits: &limits,
                source: &dir.join(self.config_file()),
                name_hf_keys: true,
            },
        )?;
        respell(
            &mut entries,
            handler.converter().base_model.hf_prefix_aliases(),
            &checkpoint.files,
        );
        let mut problems = Vec::new();
        let mut sources = BTreeMap::new();
        let mut consumed = BTreeSet::new();
        let listing = tensor_listing(dir);
        for entry in entries {
            let dtype = check_inputs(&checkpoint.files, &entry, listing, &mut problems);
            consumed.extend(entry.hf.iter().cloned());
            sources.insert(
                entry.fast_llm.clone(),
                Source {
                    inputs: entry.hf,
                    transform: entry.transform,
                    shape: entry.fast_llm_shape,
                    dtype,
                },
            );
        }
        beyond_the_checkpoint(oversized, &mut problems);
        if let Some(beyond) = beyond_tensor_limit {
            // Named after the tensors of the plan's first part the checkpoint lacks (there is
            // one at least: the plan names more distinct tensors than it holds). What is left
            // unconsumed was never looked for, so it is not reported as unmapped.
            problems.push(beyond.message);
            return Err(ConversionError::Tensors {
                path: dir.to_path_buf(),
                problems,
            });
        }
        let (unconverted, leftovers): (Vec<&str>, Vec<&str>) = checkpoint
            .files
            .names()
            .filter(|n| !consumed.contains(*n))
            .partition(|n| handler.unconverted_tensor(n).is_some());
        let dropped_tensors = if options.text_only {
            unconverted.iter().map(|n| n.to_string()).collect()
        } else {
            problems.extend(unconverted_tensors(handler, &unconverted));
            Vec::new()
        };
        let leftovers: Vec<String> = leftovers
            .into_iter()
            .map(|n| format!("`{n}` in {}", checkpoint.files.tensor(n).map_or("", |t| t.file)))
            .collect();
        if !leftovers.is_empty() {
            problems.push(format!(
                "{} tensor(s) the {} format does not map (nothing would convert them): {}",
                leftovers.len(),
                handler.name,
                leftovers.join(", ")
            ));
        }
        ConversionError::check_tensors(dir, problems)?;
        Ok(Input {
            config,
            sources,
            dropped_tensors,
            skipped_shards: Vec::new(),
            optimizer_shards: Vec::new(),
            training_state: Vec::new(),
            listing,
            limits,
            storage: Storage::Files(checkpoint.files),
            spare: Default::default(),
            read_buffers: Default::default(),
            next: Default::default(),
        })
    }
}

/// The file listing an HF checkpoint's tensors (where a missing tensor is missing from).
fn tensor_listing(dir: &Path) -> &'static str {
    let indexed = InputDir::new(dir).is_ok_and(|input| input.entry("model.safetensors.index.json").exists());
    if indexed {
        "model.safetensors.index.json"
    } else {
        "model.safetensors"
    }
}

/// One problem per unconverted part with tensors in `names`, naming them.
fn unconverted_tensors(handler: &Handler, names: &[&str]) -> Vec<String> {
    handler
        .unconverted()
        .iter()
        .filter_map(|part| {
            let held: Vec<&str> = names.iter().copied().filter(|n| part.holds_tensor(n)).collect();
            (!held.is_empty()).then(|| {
                format!(
                    "{} tensor(s) of the {}, which {} does not convert (pass {} to convert without them, \
                     dropping them): {}",
                    held.len(),
                    part.part,
                    handler.name,
                    fastllm_core::hint::spell(fastllm_core::hint::Hint::TextOnly),
                    held.join(", ")
                )
            })
        })
        .collect()
}

/// Rewrites the planned HF names to a format's alternative prefixes when the checkpoint spells
/// any of its tensors that way (all or nothing: a mixed checkpoint then fails by name).
fn respell(entries: &mut [PlanEntry], aliases: &[(&str, &str)], files: &FileSet) {
    let alternative = aliases
        .iter()
        .any(|(_, alternative)| files.names().any(|n| n.starts_with(alternative)));
    if !alternative {
        return;
    }
    for name in entries.iter_mut().flat_map(|e| e.hf.iter_mut()) {
        if let Some((declared, alternative)) = aliases.iter().find(|(d, _)| name.starts_with(d)) {
            *name = format!("{alternative}{}", &name[declared.len()..]);
        }
    }
}

/// Checks one plan entry's HF tensors: present (in `listing`), with the planned shapes and one
/// dtype. Each problem names the tensor and its file.
fn check_inputs(files: &FileSet, entry: &PlanEntry, listing: &str, problems: &mut Vec<String>) -> String {
    let mut dtype: Option<String> = None;
    for (name, expected) in entry.hf.iter().zip(&entry.hf_shapes) {
        match files.tensor(name) {
            None => problems.push(format!(
                "`{name}` (for Fast-LLM `{}`): missing from {listing}",
                entry.fast_llm
            )),
            Some(tensor) => {
                if tensor.shape != expected.as_slice() {
                    problems.push(format!(
                        "`{name}` in {}: shape {:?}, the config implies {expected:?}",
                        tensor.file, tensor.shape
                    ));
                }
                match &dtype {
                    None => dtype = Some(tensor.dtype.to_string()),
                    Some(d) if d != tensor.dtype => problems.push(format!(
                        "`{name}` in {}: dtype {} differs from {d} of the other parts of `{}`",
                        tensor.file, tensor.dtype, entry.fast_llm
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    dtype.unwrap_or_default()
}
