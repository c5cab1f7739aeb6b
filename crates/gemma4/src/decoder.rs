//! The decoder: a Fast-LLM pattern of `sliding_attention` / `full_attention` blocks ↔ Gemma 4's
//! flat keys plus `layer_types` and `num_hidden_layers`.
//!
//! A Custom because the shape changes: one HF dict describes two blocks (each read by its own
//! declarative section), and the block section is chosen by two things no primitive dispatches
//! on together: the layer type (the block name, not a `type`) and `enable_moe_block` (a bool).

use std::sync::Arc;

use fastllm_core::blocks::block_path;
use fastllm_core::config::{BlockConfig, BlockSequenceConfig, Map, MlpBaseConfig, Value};
use fastllm_core::dict::show;
use fastllm_core::engine::{export_sub, import_sub, under};
use fastllm_core::{Claims, Decl, ExportContext, Fl, HfWrite, HfWrites, ImportContext, Problem, Section, Writes};

use crate::classes::{FULL, SLIDING};
use crate::sections::{LayerType, MlpKind};
use fastllm_core::values::text;

/// The block sections, by layer type and MLP kind.
#[derive(Clone)]
pub struct Blocks {
    pub sliding: Arc<Section>,
    pub sliding_moe: Arc<Section>,
    pub full: Arc<Section>,
    pub full_moe: Arc<Section>,
}

impl Blocks {
    fn get(&self, layer: LayerType, mlp: MlpKind) -> &Arc<Section> {
        match (layer, mlp) {
            (LayerType::Sliding, MlpKind::Dense) => &self.sliding,
            (LayerType::Sliding, MlpKind::Moe) => &self.sliding_moe,
            (LayerType::Full, MlpKind::Dense) => &self.full,
            (LayerType::Full, MlpKind::Moe) => &self.full_moe,
        }
    }
}

fn layer_type(name: &str) -> Option<LayerType> {
    match name {
        SLIDING => Some(LayerType::Sliding),
        FULL => Some(LayerType::Full),
        _ => None,
    }
}

/// The `decoder` declaration of the root section.
pub fn declaration(blocks: Blocks) -> Decl {
    let (export_blocks, import_blocks) = (blocks.clone(), blocks.clone());
    Decl::custom(
        Claims::subtree(&["decoder"], &["num_hidden_layers", "layer_types"]),
        move |fl, context| export(&export_blocks, fl, context),
        move |hf, context| import(&import_blocks, hf, context),
    )
    .delegating(vec![
        ("decoder.blocks.sliding_attention", blocks.sliding),
        ("decoder.blocks.sliding_attention", blocks.sliding_moe),
        ("decoder.blocks.full_attention", blocks.full),
        ("decoder.blocks.full_attention", blocks.full_moe),
    ])
    .into()
}

fn export(blocks: &Blocks, fl: Fl, context: &ExportContext) -> HfWrites {
    let decoder = fl.text_model()?.decoder;
    let BlockSequenceConfig::Pattern(pattern) = decoder else {
        return Err(vec![Problem::at_fast_llm(
            "decoder.type",
            format!(
                "decoder type {} (Gemma 4 needs a {SLIDING}/{FULL} pattern)",
                show(&Value::Str(decoder.type_name().into()))
            ),
        )]);
    };
    let mut writes: Vec<HfWrite> = Vec::new();
    let mut problems = Vec::new();
    for (name, block) in decoder.distinct() {
        let path = format!("decoder.{}", block_path(name));
        let name = name.unwrap_or_default();
        let Some(layer) = layer_type(name) else {
            problems.push(Problem::at_fast_llm(
                path,
                format!("block {name:?} is not a Gemma 4 layer type (supported: {SLIDING}, {FULL})"),
            ));
            continue;
        };
        let BlockConfig::Decoder(decoder_block) = block;
        let mlp = match &decoder_block.mlp {
            MlpBaseConfig::Mlp(_) => MlpKind::Dense,
            MlpBaseConfig::HybridMoe(_) => MlpKind::Moe,
            other => {
                problems.push(Problem::at_fast_llm(
                    format!("{path}.mlp.type"),
                    format!(
                        "MLP {} (supported: mlp, hybrid_moe)",
                        show(&Value::Str(other.type_name().into()))
                    ),
                ));
                continue;
            }
        };
        let block = Fl::new(block);
        match export_sub(blocks.get(layer, mlp), block, context) {
            // The engine's safe set merges the blocks' writes: shared keys must agree.
            Ok((hf, writers)) => writes.extend(hf.into_iter().map(|(key, value)| {
                let source = match writers.get(&key) {
                    Some(writer) => format!("{path}.{writer}"),
                    None => path.clone(),
                };
                HfWrite {
                    key,
                    value,
                    source: Some(source),
                }
            })),
            Err(errors) => problems.extend(under(&path, errors)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Every position's block name: the expanded pattern.
    let layer_types = (pattern.expanded_pattern().into_iter())
        .map(|name| Value::Str(name.into()))
        .collect();
    writes.push(HfWrite {
        key: "layer_types".into(),
        value: Value::List(layer_types),
        source: Some("decoder.pattern".into()),
    });
    writes.push(HfWrite {
        key: "num_hidden_layers".into(),
        value: Value::Int(pattern.num_blocks.into()),
        source: Some("decoder.num_blocks".into()),
    });
    Ok(writes)
}

fn import(blocks: &Blocks, hf: &Map, context: &ImportContext) -> Writes {
    let count = match hf.get("num_hidden_layers") {
        Some(Value::Int(n)) => *n,
        other => {
            return Err(vec![Problem::at_hf(
                "num_hidden_layers",
                format!(
                    "must be an int, found {}",
                    other.map(show).unwrap_or_else(|| "nothing".into())
                ),
            )]);
        }
    };
    let Some(Value::List(types)) = hf.get("layer_types") else {
        return Err(vec![Problem::at_hf("layer_types", "must be a list")]);
    };
    let mut problems = Vec::new();
    if types.len() as i128 != count {
        problems.push(Problem::at_hf(
            "layer_types",
            format!("{} entries for num_hidden_layers {count}", types.len()),
        ));
    }
    // Distinct layer types in first-seen order, one block each.
    let mut distinct: Vec<LayerType> = Vec::new();
    for (i, entry) in types.iter().enumerate() {
        match entry {
            Value::Str(name) if layer_type(name).is_some() => {
                let layer = layer_type(name).expect("checked");
                if !distinct.contains(&layer) {
                    distinct.push(layer);
                }
            }
            other => problems.push(Problem::at_hf(
                format!("layer_types.{i}"),
                format!("unsupported layer type {} (supported: {SLIDING}, {FULL})", show(other)),
            )),
        }
    }
    let mlp = if hf.get("enable_moe_block") == Some(&Value::Bool(true)) {
        MlpKind::Moe
    } else {
        MlpKind::Dense
    };
    let mut writes = vec![("decoder.type".to_string(), text("pattern"))];
    for layer in distinct {
        let path = format!("decoder.blocks.{}", layer.name());
        match import_sub(blocks.get(layer, mlp), hf, context) {
            Ok(block) => writes.push((path, Value::Map(block))),
            Err(errors) => problems.extend(under(&path, errors)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    writes.push(("decoder.pattern".into(), Value::List(types.clone())));
    writes.push(("decoder.num_blocks".into(), Value::Int(count)));
    Ok(writes)
}
