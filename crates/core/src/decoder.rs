//! The decoder shape most HF formats share: one block description (the block's keys at the
//! config's root) repeated `num_hidden_layers` times. A fixed sequence is that; a pattern
//! sequence exports only when all its blocks are identical in the format, and imports as fixed.

use std::collections::BTreeMap;
use std::sync::Arc;

use fastllm_config::{BlockSequenceConfig, Map, Value};

use crate::blocks::block_path;
use crate::engine::{export_sub, import_sub, under};
use crate::fl::Fl;
use crate::section::{Decl, HfWrite, Section};
use crate::values::text;
use crate::{Claims, Problem};

/// The root's `decoder` ↔ `block`'s HF keys at the root plus `num_hidden_layers`.
pub fn uniform(block: Arc<Section>) -> Decl {
    let export_block = block.clone();
    let import_block = block.clone();
    Decl::custom(
        Claims::subtree(&["decoder"], &["num_hidden_layers"]),
        move |fl, context| {
            let decoder = match fl.config_at("decoder")? {
                Some(decoder) => decoder
                    .config::<BlockSequenceConfig>()
                    .map_err(|p| under("decoder", vec![p]))?,
                None => return Err(vec![Problem::at_fast_llm("decoder", "no block sequence")]),
            };
            let mut exported: Vec<(String, Map, BTreeMap<String, String>)> = Vec::new();
            let mut problems = Vec::new();
            for (name, block) in decoder.distinct() {
                let path = block_path(name);
                let path = format!("decoder.{path}");
                match export_sub(&export_block, Fl::new(block), context) {
                    Ok((hf, writers)) => exported.push((path, hf, writers)),
                    Err(errors) => problems.extend(under(&path, errors)),
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            let mut exported = exported.into_iter();
            let Some((first_path, first, writers)) = exported.next() else {
                return Err(vec![Problem::at_fast_llm("decoder", "no blocks")]);
            };
            for (path, other, _) in exported {
                if other != first {
                    let message = format!(
                        "differs from `{first_path}`: the format repeats one block description, so pattern blocks \
                         must be identical"
                    );
                    problems.push(Problem::at_fast_llm(path, message));
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            let mut writes: Vec<HfWrite> = first
                .into_iter()
                .map(|(key, value)| {
                    let source = writers.get(&key).map(|s| format!("{first_path}.{s}"));
                    HfWrite { key, value, source }
                })
                .collect();
            writes.push(HfWrite::new(
                "num_hidden_layers",
                Value::Int(decoder.num_blocks().into()),
            ));
            Ok(writes)
        },
        move |hf, context| {
            let block = import_sub(&import_block, hf, context).map_err(|e| under("decoder.block", e))?;
            let count = hf.get("num_hidden_layers").cloned().ok_or_else(|| {
                let message = format!("missing (required by {})", context.format);
                vec![Problem::at_hf("num_hidden_layers", message)]
            })?;
            Ok(vec![
                ("decoder.type".into(), text("fixed")),
                ("decoder.block".into(), Value::Map(block)),
                ("decoder.num_blocks".into(), count),
            ])
        },
    )
    .delegating(vec![("decoder.block", block)])
    .into()
}
