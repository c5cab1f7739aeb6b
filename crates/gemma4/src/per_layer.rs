//! transformers 5.24's `per_layer_config` (`{"<layer index>": {"head_dim", "num_key_value_heads"}}`),
//! which replaces the 5.5–5.17 keys `global_head_dim` / `num_global_key_value_heads`. Fast-LLM has
//! one full-attention block, so the overrides must be identical on every full-attention layer and
//! absent on sliding ones.

use fastllm_core::config::{Map, Value};
use fastllm_core::dict::show;
use fastllm_core::{ImportContext, Problem, Writes};

use crate::classes::SLIDING;

/// HF keys of the schema (`*` is any layer index).
pub const CLAIMS: &[&str] = &[
    "per_layer_config",
    "per_layer_config.*.head_dim",
    "per_layer_config.*.num_key_value_heads",
];

/// The overrides every full-attention layer shares (`None`: the layer keeps the sliding value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FullOverrides {
    pub head_dim: Option<Value>,
    pub num_key_value_heads: Option<Value>,
}

/// The full-attention overrides of `per_layer_config`: `None` without the key (the older schema).
/// `hf` is the loaded dict (`layer_types` and `num_hidden_layers` resolved).
pub fn full_overrides(hf: &Map) -> Result<Option<FullOverrides>, Vec<Problem>> {
    let entries = match hf.get("per_layer_config") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Map(entries)) => entries,
        Some(other) => {
            return Err(vec![Problem::at_hf(
                "per_layer_config",
                format!("must be a dict, found {}", show(other)),
            )]);
        }
    };
    let layer_types: Vec<Option<&str>> = match hf.get("layer_types") {
        Some(Value::List(types)) => types
            .iter()
            .map(|t| if let Value::Str(s) = t { Some(s.as_str()) } else { None })
            .collect(),
        _ => Vec::new(),
    };
    let mut problems = Vec::new();
    let mut overrides: Vec<(usize, FullOverrides)> = Vec::new();
    for (key, entry) in entries {
        let path = format!("per_layer_config.{key}");
        // Indices may be zero-padded ("05").
        let index = key
            .parse::<usize>()
            .ok()
            .filter(|_| key.bytes().all(|b| b.is_ascii_digit()));
        let Some(index) = index.filter(|i| *i < layer_types.len()) else {
            problems.push(Problem::at_hf(
                path,
                format!("not a layer index (0..{})", layer_types.len()),
            ));
            continue;
        };
        let Value::Map(entry) = entry else {
            problems.push(Problem::at_hf(path, format!("must be a dict, found {}", show(entry))));
            continue;
        };
        if layer_types[index] == Some(SLIDING) {
            problems.push(Problem::at_hf(
                path,
                format!("overrides layer {index}, a {SLIDING} layer; Fast-LLM's sliding block takes head_dim and num_key_value_heads"),
            ));
            continue;
        }
        let mut read = |name: &str| match entry.get(name) {
            None | Some(Value::Null) => None,
            Some(value @ Value::Int(_)) => Some(value.clone()),
            Some(other) => {
                problems.push(Problem::at_hf(
                    format!("{path}.{name}"),
                    format!("must be an int, found {}", show(other)),
                ));
                None
            }
        };
        let layer = FullOverrides {
            head_dim: read("head_dim"),
            num_key_value_heads: read("num_key_value_heads"),
        };
        overrides.push((index, layer));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Every full-attention layer, with or without an entry, must see the same overrides.
    let full_layers = layer_types.iter().enumerate().filter(|(_, t)| **t != Some(SLIDING));
    let mut shared: Option<(usize, FullOverrides)> = None;
    for (index, _) in full_layers {
        let layer = overrides
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        match &shared {
            None => shared = Some((index, layer)),
            Some((first, expected)) if *expected != layer => {
                return Err(vec![Problem::at_hf(
                    "per_layer_config",
                    format!(
                        "full-attention layers {first} and {index} have different overrides ({expected:?} vs {layer:?}); \
                         Fast-LLM has one full_attention block"
                    ),
                )]);
            }
            Some(_) => {}
        }
    }
    Ok(Some(shared.map(|(_, o)| o).unwrap_or_default()))
}

/// The `per_layer_config` declaration's import: the schema is well-formed, and explicit
/// `global_head_dim` / `num_global_key_value_heads` beside it agree with it.
pub fn check(hf: &Map, _: &ImportContext) -> Writes {
    let Some(overrides) = full_overrides(hf)? else {
        return Ok(vec![]);
    };
    let mut problems = Vec::new();
    let head_dim = overrides.head_dim.or_else(|| hf.get("head_dim").cloned());
    if let (Some(expected), Some(found)) = (&head_dim, hf.get("global_head_dim"))
        && expected != found
    {
        problems.push(Problem::at_hf(
            "global_head_dim",
            format!(
                "{} contradicts per_layer_config's full-attention head_dim {}",
                show(found),
                show(expected)
            ),
        ));
    }
    let heads = overrides
        .num_key_value_heads
        .or_else(|| hf.get("num_key_value_heads").cloned());
    match (&heads, hf.get("num_global_key_value_heads")) {
        (_, None | Some(Value::Null)) => {}
        (Some(expected), Some(found)) if expected == found => {}
        (expected, Some(found)) => problems.push(Problem::at_hf(
            "num_global_key_value_heads",
            format!(
                "{} contradicts per_layer_config's full-attention num_key_value_heads {}",
                show(found),
                expected.as_ref().map(show).unwrap_or_else(|| "(none)".into())
            ),
        )),
    }
    if problems.is_empty() { Ok(vec![]) } else { Err(problems) }
}
