//! The summary of a conversion as data: what `convert --json` prints and what the Python
//! package's `convert` returns, one type for both.
//!
//! Fields are declared in alphabetical order, at every level: serialized, they come out in the
//! order the JSON output has always had (sorted keys).

use serde::Serialize;

use fastllm_checkpoint::convert;
use fastllm_config::{Map, Value};

/// What a conversion did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct JsonSummary {
    /// Total bytes of the output tensors.
    pub bytes: u64,
    /// Input config keys the Fast-LLM model does not hold, carried into the output.
    pub carried_keys: Vec<String>,
    /// Companion files (tokenizer, generation config, ...) copied byte for byte.
    pub copied_files: Vec<String>,
    /// Input config keys dropped, with their values and the option that dropped them.
    pub dropped_keys: Vec<JsonDroppedKey>,
    /// Input tensors dropped because the format does not convert them (`--text-only`).
    pub dropped_tensors: Vec<String>,
    /// Whether nothing was written (the plan only).
    pub dry_run: bool,
    /// The dtype every float tensor was cast to (`--dtype`), if any.
    pub dtype: Option<String>,
    /// The tensor files written.
    pub files: Vec<String>,
    /// The input format.
    pub from: String,
    /// Files the output format's checkpoints usually carry that the input does not have.
    pub missing_extra_files: Vec<String>,
    /// Input config keys the output format has no place for, with why.
    pub not_carried_keys: Vec<JsonNotCarried>,
    /// Entries of the input directory not copied, with why.
    pub not_copied_files: Vec<JsonNotCopied>,
    /// The output directory.
    pub output: String,
    /// Tensors whose cast wrote finite values as infinities (`--allow-overflow`).
    pub overflows: Vec<JsonOverflow>,
    /// This process's peak resident memory (Linux), when known.
    pub peak_rss_bytes: Option<u64>,
    /// A training checkpoint's shards not converted (its optimizer state).
    pub skipped_shards: Vec<String>,
    /// The number of output tensors.
    pub tensor_count: usize,
    /// Every output tensor with where it comes from.
    pub tensors: Vec<JsonTensor>,
    /// The output format.
    pub to: String,
    /// What a training checkpoint saved besides the model (dotted key → value), not converted.
    pub training_state: Map,
}

/// One dropped input config key.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDroppedKey {
    /// The option that dropped it: `--drop-key` or `--text-only`.
    pub by: String,
    pub key: String,
    pub value: Value,
}

/// One input config key not carried into the output.
#[derive(Debug, Clone, Serialize)]
pub struct JsonNotCarried {
    pub key: String,
    pub reason: String,
    pub value: Value,
}

/// One input directory entry not copied.
#[derive(Debug, Clone, Serialize)]
pub struct JsonNotCopied {
    pub file: String,
    pub reason: String,
}

/// One tensor whose cast overflowed.
#[derive(Debug, Clone, Serialize)]
pub struct JsonOverflow {
    /// How many finite values became infinities.
    pub count: u64,
    /// The input dtype.
    pub from: String,
    /// The largest magnitude among them.
    pub largest: f64,
    pub tensor: String,
    /// The output dtype.
    pub to: String,
}

/// One output tensor.
#[derive(Debug, Clone, Serialize)]
pub struct JsonTensor {
    pub bytes: u64,
    /// The input's dtype, when `--dtype` casts the tensor from it to `dtype`.
    pub cast_from: Option<String>,
    pub dtype: String,
    /// The input tensors it is made of.
    pub from: Vec<String>,
    pub name: String,
    pub shape: Vec<u64>,
    /// `copy`, `concat`, `transpose`, ... (lower case).
    pub transform: String,
}

impl JsonSummary {
    /// The summary of a conversion run with `options`, and this process's peak memory so far.
    pub fn new(summary: &convert::Summary, options: &convert::Options) -> Self {
        let dry_run = options.dry_run;
        let strings = |items: &[String]| items.to_vec();
        JsonSummary {
            bytes: summary.bytes(),
            carried_keys: strings(&summary.carried_keys),
            copied_files: strings(&summary.companions.copied),
            dropped_keys: summary
                .dropped_keys
                .iter()
                .map(|dropped| JsonDroppedKey {
                    by: dropped.by.option().into(),
                    key: dropped.key.clone(),
                    value: dropped.value.clone(),
                })
                .collect(),
            dropped_tensors: strings(&summary.dropped_tensors),
            dry_run,
            dtype: options.dtype.map(|d| d.safetensors().to_string()),
            files: strings(&summary.files),
            from: summary.from.into(),
            missing_extra_files: strings(&summary.missing_extra_files),
            not_carried_keys: summary
                .not_carried_keys
                .iter()
                .map(|n| JsonNotCarried {
                    key: n.key.clone(),
                    reason: n.reason.clone(),
                    value: n.value.clone(),
                })
                .collect(),
            not_copied_files: summary
                .companions
                .not_copied
                .iter()
                .map(|(file, reason)| JsonNotCopied {
                    file: file.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            output: summary.output.display().to_string(),
            overflows: summary
                .overflows
                .iter()
                .map(|o| JsonOverflow {
                    count: o.count,
                    from: o.from.clone(),
                    largest: o.largest,
                    tensor: o.tensor.clone(),
                    to: o.to.into(),
                })
                .collect(),
            peak_rss_bytes: peak_rss(),
            skipped_shards: strings(&summary.skipped_shards),
            tensor_count: summary.tensors.len(),
            tensors: summary
                .tensors
                .iter()
                .map(|t| JsonTensor {
                    bytes: t.bytes,
                    cast_from: t.cast_from.clone(),
                    dtype: t.dtype.clone(),
                    from: t.from.clone(),
                    name: t.name.clone(),
                    shape: t.shape.iter().map(|&d| d as u64).collect(),
                    transform: format!("{:?}", t.transform).to_lowercase(),
                })
                .collect(),
            to: summary.to.into(),
            training_state: summary.training_state.iter().cloned().collect(),
        }
    }

    /// Pretty-printed JSON, as `convert --json` prints it.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serializes to JSON")
    }
}

/// This process's peak resident memory (Linux `VmHWM`), for benchmarks.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON output has always had sorted keys: the field order keeps them sorted.
    #[test]
    fn keys_come_out_sorted() {
        let summary = JsonSummary {
            bytes: 0,
            carried_keys: vec![],
            copied_files: vec![],
            dropped_keys: vec![JsonDroppedKey {
                by: "--drop-key".into(),
                key: "k".into(),
                value: Value::Null,
            }],
            dropped_tensors: vec![],
            dry_run: false,
            dtype: None,
            files: vec![],
            from: "llama".into(),
            missing_extra_files: vec![],
            not_carried_keys: vec![JsonNotCarried {
                key: "k".into(),
                reason: "r".into(),
                value: Value::Null,
            }],
            not_copied_files: vec![JsonNotCopied {
                file: "f".into(),
                reason: "r".into(),
            }],
            output: "out".into(),
            overflows: vec![JsonOverflow {
                count: 1,
                from: "F32".into(),
                largest: 1e5,
                tensor: "t".into(),
                to: "F16".into(),
            }],
            peak_rss_bytes: None,
            skipped_shards: vec![],
            tensor_count: 1,
            tensors: vec![JsonTensor {
                bytes: 4,
                cast_from: None,
                dtype: "F32".into(),
                from: vec![],
                name: "t".into(),
                shape: vec![1],
                transform: "copy".into(),
            }],
            to: "fast_llm".into(),
            training_state: Map::new(),
        };
        let json = summary.to_json_pretty();
        // Keys at each indentation level, in order of appearance within each object.
        for indent in ["  \"", "      \""] {
            let mut keys: Vec<&str> = Vec::new();
            for line in json.lines() {
                if let Some(rest) = line.strip_prefix(indent) {
                    keys.push(rest.split('"').next().unwrap());
                } else if line.trim_start().starts_with('}') && line.len() - line.trim_start().len() < indent.len() - 1
                {
                    let mut sorted = keys.clone();
                    sorted.sort();
                    assert_eq!(keys, sorted, "{json}");
                    keys.clear();
                }
            }
        }
    }
}
