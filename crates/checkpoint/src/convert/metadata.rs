//! The documents written beside the tensors: Fast-LLM's `metadata.yaml` and the header metadata
//! of its safetensors files, HF's `config.json` and `model.safetensors.index.json`.

use std::collections::BTreeMap;
use std::ops::Range;

use fastllm_config::{BaseModelConfig, Form, Map, Value};
use fastllm_core::Carried;

use super::plan::OutputTensor;
use crate::CheckpointError;
use crate::writer::OutputDir;

/// The Fast-LLM version written to metadata.
pub const FAST_LLM_VERSION: &str = "0.4.0";

/// A Fast-LLM checkpoint's metadata without `metadata` (the free-form dict): the config of a
/// single-rank run, the format and the one shard, `weights`.
fn fast_llm_metadata(config: &BaseModelConfig) -> Map {
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
    metadata.insert("shards".into(), Value::List(vec![Value::Str("weights".into())]));
    metadata
}

/// Safetensors header metadata of Fast-LLM files: the metadata without `state_index`, each value
/// as a string (YAML for structured ones), as Fast-LLM writes it.
pub(crate) fn fast_llm_file_metadata(config: &BaseModelConfig) -> BTreeMap<String, String> {
    fast_llm_metadata(config)
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Str(s) => s,
                other => other.to_yaml(),
            };
            (k, text)
        })
        .chain([("metadata".to_string(), "{}\n".to_string())])
        .collect()
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

/// Writes `metadata.yaml`: the model config, the `state_index` of `outputs` in `files`, and the
/// carried HF keys.
pub(crate) fn write_fast_llm_metadata(
    out: &OutputDir,
    config: &BaseModelConfig,
    carried: &Carried,
    outputs: &[OutputTensor],
    files: &[(String, Range<usize>)],
) -> Result<(), CheckpointError> {
    let mut metadata = fast_llm_metadata(config);
    let state_index = file_index(outputs, files);
    let mut free_form = Map::from([("state_index".to_string(), Value::Map(state_index))]);
    crate::carry::store(&mut free_form, carried);
    metadata.insert("metadata".into(), Value::Map(free_form));
    out.write_text("metadata.yaml", &Value::Map(metadata).to_yaml())
}

/// Writes `config.json`.
pub(crate) fn write_config_json(out: &OutputDir, hf: Map) -> Result<(), CheckpointError> {
    out.write_text("config.json", &format!("{}\n", Value::Map(hf).to_json_pretty()))
}

/// Writes `model.safetensors.index.json` for `outputs` in `files`.
pub(crate) fn write_hf_index(
    out: &OutputDir,
    outputs: &[OutputTensor],
    files: &[(String, Range<usize>)],
) -> Result<(), CheckpointError> {
    let total: u64 = outputs.iter().map(|o| o.tensor.bytes).sum();
    let index = Map::from([
        (
            "metadata".to_string(),
            Value::Map(Map::from([("total_size".to_string(), Value::Int(total as i128))])),
        ),
        ("weight_map".to_string(), Value::Map(file_index(outputs, files))),
    ]);
    out.write_text(
        "model.safetensors.index.json",
        &format!("{}\n", Value::Map(index).to_json_pretty()),
    )
}
