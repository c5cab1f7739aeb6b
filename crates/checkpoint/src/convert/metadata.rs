//! The documents written beside the tensors: Fast-LLM's `metadata.yaml` and the header metadata
//! of its safetensors files, HF's `config.json` and `model.safetensors.index.json`.
//!
//! What a conversion writes, it must read back: each document is rendered and read back with
//! the reader's own limits before anything is written, and refused naming the key that makes
//! it too large or too deep.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use fastllm_config::{BaseModelConfig, Form, Map, Value, parse_document};
use fastllm_core::{Carried, HfLayout};

use super::plan::OutputTensor;
use crate::CheckpointError;
use crate::cast::Dtype;
use crate::policy::DocumentKind;
use crate::writer::OutputDir;

/// The Fast-LLM version written to metadata.
pub const FAST_LLM_VERSION: &str = "0.4.0";

/// The keys of an HF config naming its weights' dtype: `torch_dtype` (transformers 4) and
/// `dtype` (transformers 5).
const DTYPE_KEYS: [&str; 2] = ["torch_dtype", "dtype"];

/// The carried HF keys naming the weights' dtype (at the root or in a sub-config), set to `dtype`
/// (`--dtype`): what a Fast-LLM output stores and an HF output writes describes what was written.
/// Fast-LLM's own `metadata.yaml` names no dtype (its tensors' headers do), so none is added.
pub(crate) fn set_carried_dtype(carried: &mut Carried, dtype: Dtype) {
    for (key, value) in carried.generic.iter_mut() {
        let leaf = key.rsplit_once('.').map_or(key.as_str(), |(_, leaf)| leaf);
        if DTYPE_KEYS.contains(&leaf) {
            *value = Value::Str(dtype.torch().into());
        }
    }
}

/// `config.json`'s dtype keys set to `dtype` (`--dtype`): at the root and in each sub-config
/// (`text_config`, `vision_config`, ...) that has one; at the root, when it has none, the key of
/// `layout`'s transformers version (`torch_dtype` in v4, `dtype` in v5).
pub(crate) fn set_hf_dtype(hf: &mut Map, dtype: Dtype, layout: HfLayout) {
    let name = Value::Str(dtype.torch().into());
    let mut found = false;
    for key in DTYPE_KEYS {
        if let Some(value) = hf.get_mut(key) {
            *value = name.clone();
            found = true;
        }
    }
    if !found {
        let key = match layout {
            HfLayout::V4 => "torch_dtype",
            HfLayout::V5 => "dtype",
        };
        hf.insert(key.into(), name.clone());
    }
    for (key, value) in hf.iter_mut() {
        if let (true, Value::Map(sub)) = (key.ends_with("_config"), value) {
            for key in DTYPE_KEYS {
                if let Some(value) = sub.get_mut(key) {
                    *value = name.clone();
                }
            }
        }
    }
}

/// A Fast-LLM checkpoint's metadata without `metadata` (the free-form dict): the config of a
/// single-rank run, the format and its shards (`weights`, then any optimizer state).
fn fast_llm_metadata(config: &BaseModelConfig, shards: &[String]) -> Map {
    let distributed = Value::from_json_str(r#"{"local_world_size": 1, "rank": 0, "world_size": 1}"#).expect("valid");
    let mut model_config = Map::new();
    model_config.insert("type".into(), Value::Str(config.kind().name().into()));
    model_config.insert("base_model".into(), Value::Map(config.to_form(Form::Explicit)));
    model_config.insert("distributed".into(), distributed);
    let mut metadata = Map::new();
    metadata.insert("config".into(), Value::Map(model_config));
    metadata.insert("fast_llm_version".into(), Value::Str(FAST_LLM_VERSION.into()));
    metadata.insert("format".into(), Value::Str("fast_llm".into()));
    metadata.insert("model".into(), Value::Str(config.kind().name().into()));
    let shards = shards.iter().map(|s| Value::Str(s.clone())).collect();
    metadata.insert("shards".into(), Value::List(shards));
    metadata
}

/// Safetensors header metadata of Fast-LLM files: the metadata without `state_index`, each value
/// as a string (YAML for structured ones), as Fast-LLM writes it.
pub(crate) fn fast_llm_file_metadata(config: &BaseModelConfig, shards: &[String]) -> BTreeMap<String, String> {
    header_strings(fast_llm_metadata(config, shards))
        .chain([("metadata".to_string(), "{}\n".to_string())])
        .collect()
}

/// Metadata entries as a safetensors header holds them, as Fast-LLM's
/// `export_safetensors_metadata` writes them: a string as it is, any other value as YAML.
pub(crate) fn header_strings(metadata: Map) -> impl Iterator<Item = (String, String)> {
    metadata.into_iter().map(|(key, value)| {
        let text = match value {
            Value::Str(text) => text,
            other => other.to_yaml(),
        };
        (key, text)
    })
}

/// Safetensors header metadata of HF files.
pub(crate) fn hf_file_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("format".to_string(), "pt".to_string())])
}

/// Each output tensor's name with the file holding it.
fn file_index(outputs: &[OutputTensor], files: &[(String, Range<usize>)]) -> Map {
    files
        .iter()
        .flat_map(|(file, range)| {
            outputs[range.clone()]
                .iter()
                .map(move |o| (o.tensor.name.clone(), Value::Str(file.clone())))
        })
        .collect()
}

/// A document of the output, rendered and checked to read back.
pub(crate) struct Document {
    name: &'static str,
    text: String,
}

impl Document {
    /// `value` rendered for file `name` of the output at `output` (JSON for a `.json` name, YAML
    /// otherwise): refused when this tool could not read it back (past the limit of its `kind`,
    /// past a bound of the parser, or reading as another value), naming the key that makes it so.
    fn checked(output: &Path, name: &'static str, kind: DocumentKind, value: &Value) -> Result<Self, CheckpointError> {
        let extension = Path::new(name).extension().and_then(|e| e.to_str());
        let text = if extension == Some("json") {
            format!("{}\n", value.to_json_pretty())
        } else {
            value.to_yaml()
        };
        let refuse = |reason: String| CheckpointError::Unreadable {
            path: output.join(name),
            reason,
        };
        if text.len() as u64 > kind.limit() {
            let (_, mut bulk) = bulk_of(value);
            bulk.reverse();
            let reason = kind.too_big(text.len() as u64);
            return Err(refuse(if bulk.is_empty() {
                reason
            } else {
                format!("{reason}; most of it is `{}`", bulk.join("."))
            }));
        }
        match parse_document(&text, extension) {
            Err(error) => Err(refuse(error.to_string())),
            Ok(back) => match difference(value, &back) {
                Some(mut path) => {
                    path.reverse();
                    Err(refuse(format!("`{}` would read back as another value", path.join("."))))
                }
                None => Ok(Document { name, text }),
            },
        }
    }

    /// The document's text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Writes the document into the output.
    pub(crate) fn write(&self, out: &OutputDir) -> Result<(), CheckpointError> {
        out.write_text(self.name, &self.text)
    }
}

/// The approximate text size of `value` and the key path (innermost first) of the part holding
/// most of it: descending while one entry holds at least half of its container.
fn bulk_of(value: &Value) -> (usize, Vec<String>) {
    let mut total = 2;
    let mut biggest: Option<(usize, String, Vec<String>)> = None;
    let mut weigh = |name: &dyn Fn() -> String, key: usize, child: &Value| {
        let (size, path) = bulk_of(child);
        total += key + size + 2;
        if biggest.as_ref().is_none_or(|(most, ..)| size > *most) {
            biggest = Some((size, name(), path));
        }
    };
    match value {
        Value::Map(map) => map.iter().for_each(|(k, v)| weigh(&|| k.clone(), k.len() + 2, v)),
        Value::List(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| weigh(&|| i.to_string(), 0, v)),
        scalar => return (scalar.to_json_compact().len(), Vec::new()),
    }
    match biggest {
        Some((size, name, mut path)) if 2 * size >= total => {
            path.push(name);
            (total, path)
        }
        _ => (total, Vec::new()),
    }
}

/// The key path (innermost first) of the first place `back` differs from `written`.
fn difference(written: &Value, back: &Value) -> Option<Vec<String>> {
    let inside = |key: String, path: Option<Vec<String>>| {
        path.map(|mut path| {
            path.push(key);
            path
        })
    };
    match (written, back) {
        (Value::Map(a), Value::Map(b)) => a
            .iter()
            .find_map(|(k, v)| match b.get(k) {
                Some(w) => inside(k.clone(), difference(v, w)),
                None => Some(vec![k.clone()]),
            })
            .or_else(|| b.keys().find(|k| !a.contains_key(*k)).map(|k| vec![k.clone()])),
        (Value::List(a), Value::List(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| inside(i.to_string(), difference(v, w)))
            .or_else(|| (a.len() != b.len()).then(|| vec![a.len().min(b.len()).to_string()])),
        (a, b) => (a != b).then(Vec::new),
    }
}

/// The state a `metadata.yaml` indexes.
pub(crate) struct State<'a> {
    /// The tensors written.
    pub outputs: &'a [OutputTensor],
    /// Each file's name and the range of `outputs` it holds.
    pub files: &'a [(String, Range<usize>)],
    /// The shard names (`weights`, then any optimizer state).
    pub shards: &'a [String],
}

/// `metadata.yaml`: the model config, the `state_index` of `state`, and the carried HF keys
/// (taken, not copied: they may be megabytes).
pub(crate) fn fast_llm_metadata_document(
    output: &Path,
    config: &BaseModelConfig,
    carried: Carried,
    state: &State,
) -> Result<Document, CheckpointError> {
    let mut metadata = fast_llm_metadata(config, state.shards);
    let state_index = file_index(state.outputs, state.files);
    let mut free_form = Map::from([("state_index".to_string(), Value::Map(state_index))]);
    crate::carry::store(&mut free_form, carried);
    metadata.insert("metadata".into(), Value::Map(free_form));
    Document::checked(output, "metadata.yaml", DocumentKind::Config, &Value::Map(metadata))
}

/// A distributed checkpoint's `metadata.yaml`: `metadata`, the whole of it.
pub(crate) fn distributed_metadata_document(output: &Path, metadata: &Map) -> Result<Document, CheckpointError> {
    Document::checked(
        output,
        "metadata.yaml",
        DocumentKind::Config,
        &Value::Map(metadata.clone()),
    )
}

/// `config.json`.
pub(crate) fn config_json_document(output: &Path, hf: Map) -> Result<Document, CheckpointError> {
    Document::checked(output, "config.json", DocumentKind::Config, &Value::Map(hf))
}

/// `model.safetensors.index.json` for `outputs` in `files`.
pub(crate) fn hf_index_document(
    output: &Path,
    outputs: &[OutputTensor],
    files: &[(String, Range<usize>)],
) -> Result<Document, CheckpointError> {
    let total: u64 = outputs.iter().map(|o| o.tensor.bytes).sum();
    let index = Value::Map(Map::from([
        (
            "metadata".to_string(),
            Value::Map(Map::from([("total_size".to_string(), Value::Int(total as i128))])),
        ),
        ("weight_map".to_string(), Value::Map(file_index(outputs, files))),
    ]));
    Document::checked(output, "model.safetensors.index.json", DocumentKind::Index, &index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Fast-LLM's `export_safetensors_metadata` writes: strings as they are (a reader
    /// comparing `format` to `"distributed"` must find exactly that), structures as YAML.
    #[test]
    fn header_metadata_keeps_strings_and_writes_structures_as_yaml() {
        let mut metadata = Map::new();
        metadata.insert("format".into(), Value::Str("distributed".into()));
        metadata.insert("shards".into(), Value::List(vec![Value::Str("weights".into())]));
        let header: BTreeMap<String, String> = header_strings(metadata).collect();
        assert_eq!(header["format"], "distributed");
        assert_eq!(
            header["shards"],
            Value::List(vec![Value::Str("weights".into())]).to_yaml()
        );
        assert_ne!(
            header["shards"], "weights",
            "a list is written as YAML, not as its item"
        );
    }
}
