//! What the Fast-LLM model does not hold, carried from the input `config.json` to the output:
//! the context length, special-token ids, dtype and every other generic metadata key, and the
//! keys the input format knows but does not convert (Qwen2's disabled sliding-window settings,
//! Mixtral's router training coefficients, ...).
//!
//! A key is *architectural* when the input format's own export of the imported config writes it
//! (in either rope layout): its value comes back from the Fast-LLM model. Every other key of the
//! input is carried:
//! * generic metadata ([`GENERIC_METADATA`], and `tie_word_embeddings` in sub-configs) must reach
//!   the output: a value the output cannot take is an error naming the key and why;
//! * a *format* key (known to the input format, not converted) is carried when the output class
//!   has the key (always, to the same format), else listed as not carried; a value equal to the
//!   class default is not carried, since completing the output writes the default anyway.
//!
//! Through a Fast-LLM checkpoint the carried keys are stored in `metadata.yaml` under
//! `metadata.`[`METADATA_KEY`] and restored on export, so HF → Fast-LLM → HF gives back the
//! input's `config.json`.

use fastllm_config::{BaseModelConfig, Map, Value};

use crate::complete::{V5_GENERATION_KEYS, base_defaults, complete};
use crate::coverage::GENERIC_IN_SUB_CONFIGS;
use crate::dict::{join, show};
use crate::registry::{GENERIC_METADATA, Handler};
use crate::section::HfLayout;
use crate::{ConvertError, Direction, Fill, Problem};

/// The key of `metadata.yaml`'s free-form `metadata:` dict holding the carried HF keys
/// (`{format: <input format>, generic: {<dotted key>: value}, format_keys: {...}}`). Fast-LLM
/// keeps that dict as it is and reads only its `state_index` from it.
pub const METADATA_KEY: &str = "hf_metadata";

/// Keys never carried: the output format writes its own identity, and where the input was
/// loaded from and which transformers wrote it describe the input file only.
const IDENTITY: &[&str] = &["model_type", "architectures", "auto_map"];
const PROVENANCE: &[&str] = &["transformers_version", "_name_or_path"];

/// The HF keys of an input config that a conversion carries to its output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Carried {
    /// The format they were read from (`fast_llm` when none were stored).
    pub format: String,
    /// Generic metadata, by dotted key.
    pub generic: Map,
    /// Keys of the input format that no declaration converts, by dotted key.
    pub format_keys: Map,
}

/// Where the carried keys went in one output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// The keys the output holds with the input's value.
    pub carried: Vec<String>,
    /// The format keys it does not hold.
    pub not_carried: Vec<NotCarried>,
}

/// A key of the input that is not in the output, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotCarried {
    pub key: String,
    pub value: Value,
    pub reason: String,
}

impl Carried {
    /// Nothing to carry.
    pub fn none(format: &str) -> Self {
        Carried {
            format: format.to_string(),
            ..Carried::default()
        }
    }

    /// Every carried key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.generic.keys().chain(self.format_keys.keys()).map(String::as_str)
    }

    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.generic.is_empty() && self.format_keys.is_empty()
    }

    /// The dict stored under `metadata.`[`METADATA_KEY`].
    pub fn to_value(&self) -> Value {
        Value::Map(Map::from([
            ("format".to_string(), Value::Str(self.format.clone())),
            ("generic".to_string(), Value::Map(self.generic.clone())),
            ("format_keys".to_string(), Value::Map(self.format_keys.clone())),
        ]))
    }

    /// Reads the dict [`Carried::to_value`] writes; `Err` says what is malformed.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let map = value
            .as_map()
            .ok_or_else(|| format!("must be a dict, found {}", show(value)))?;
        let format = match map.get("format") {
            Some(Value::Str(format)) => format.clone(),
            other => {
                return Err(format!(
                    "`format` must be a string, found {}",
                    other.map(show).unwrap_or("nothing".into())
                ));
            }
        };
        let dict = |name: &str| match map.get(name) {
            None => Ok(Map::new()),
            Some(Value::Map(m)) => Ok(m.clone()),
            Some(other) => Err(format!("`{name}` must be a dict, found {}", show(other))),
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["format", "generic", "format_keys"].contains(&k.as_str()))
        {
            return Err(format!("unknown key `{unknown}`"));
        }
        Ok(Carried {
            format,
            generic: dict("generic")?,
            format_keys: dict("format_keys")?,
        })
    }
}

/// Removes each dotted `key` from `hf` (`--drop-key`), returning the removed values in order;
/// a key `hf` does not have is a problem (a typo would otherwise drop nothing, silently).
pub fn drop_keys(hf: &mut Map, keys: &[String]) -> Result<Vec<(String, Value)>, Vec<Problem>> {
    let mut dropped = Vec::new();
    let mut problems = Vec::new();
    for key in keys {
        let (parent, leaf) = match key.rsplit_once('.') {
            Some((parent, leaf)) => (Some(parent), leaf),
            None => (None, key.as_str()),
        };
        let container = match parent {
            None => Some(&mut *hf),
            Some(parent) => get_map_mut(hf, parent),
        };
        match container.and_then(|c| c.remove(leaf)) {
            Some(value) => dropped.push((key.clone(), value)),
            None => problems.push(Problem::at_hf(
                key.clone(),
                "--drop-key names a key the input does not have",
            )),
        }
    }
    if problems.is_empty() {
        Ok(dropped)
    } else {
        Err(problems)
    }
}

fn get_map_mut<'a>(map: &'a mut Map, path: &str) -> Option<&'a mut Map> {
    let mut current = map;
    for part in path.split('.') {
        match current.get_mut(part) {
            Some(Value::Map(inner)) => current = inner,
            _ => return None,
        }
    }
    Some(current)
}

/// Python `==` on JSON values (ints equal floats; dicts equal when their keys and values are).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b)),
        _ => crate::dict::same(a, b),
    }
}

fn collect(input: &Map, exports: &[&Map], prefix: &str, carried: &mut Carried) {
    for (key, value) in input {
        let top = prefix.is_empty();
        if PROVENANCE.contains(&key.as_str()) || top && IDENTITY.contains(&key.as_str()) {
            continue;
        }
        let path = join(prefix, key);
        if GENERIC_METADATA.contains(&key.as_str()) || !top && GENERIC_IN_SUB_CONFIGS.contains(&key.as_str()) {
            carried.generic.insert(path, value.clone());
            continue;
        }
        let exported: Vec<&Value> = exports.iter().filter_map(|e| e.get(key)).collect();
        if exported.is_empty() {
            carried.format_keys.insert(path, value.clone());
        } else if let Value::Map(inner) = value {
            let inner_exports: Vec<&Map> = exported.iter().filter_map(|v| v.as_map()).collect();
            if !inner_exports.is_empty() {
                collect(inner, &inner_exports, &path, carried);
            }
        }
    }
}

/// The parent dict of dotted `path` in `hf`, and the leaf key (`None`: no such dict).
fn parent_of<'a, 'p>(hf: &'a mut Map, path: &'p str) -> Option<(&'a mut Map, &'p str)> {
    match path.rsplit_once('.') {
        None => Some((hf, path)),
        Some((parent, leaf)) => get_map_mut(hf, parent).map(|m| (m, leaf)),
    }
}

/// A key of `class` (a dotted path follows sub-configs) and its written default.
fn class_default(handler: &Handler, path: &str, layout: Option<HfLayout>) -> Option<Option<Value>> {
    let mut class = handler.converter().hf_class.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let key = class.key(part)?.clone();
        if parts.peek().is_none() {
            if layout.is_some_and(|l| !key.in_layout(l)) {
                return None;
            }
            return Some(match key.written_fill() {
                Fill::Value(v) => Some(v.clone()),
                Fill::Keep | Fill::Derive(_) => None,
            });
        }
        class = (key.class?)(None).ok()?;
    }
    None
}

impl Handler {
    /// What of `hf` (this format's config, imported as `config`) an output must carry.
    pub fn carried(&self, hf: &Map, config: &BaseModelConfig) -> Result<Carried, ConvertError> {
        let exports: Vec<Result<Map, ConvertError>> = [HfLayout::V4, HfLayout::V5]
            .into_iter()
            .map(|l| self.export(config, l))
            .collect();
        let ok: Vec<&Map> = exports.iter().filter_map(|e| e.as_ref().ok()).collect();
        if ok.is_empty() {
            // Both layouts refuse the config: report the first refusal.
            return Err(exports.into_iter().find_map(Result::err).expect("two results"));
        }
        let mut carried = Carried::none(self.name);
        collect(hf, &ok, "", &mut carried);
        Ok(carried)
    }

    /// Exports `config` with the `carried` keys placed into it, completed to what transformers'
    /// `save_pretrained` of the format's class writes; also says where the carried keys went.
    pub fn export_carrying(
        &self,
        config: &BaseModelConfig,
        carried: &Carried,
        layout: HfLayout,
    ) -> Result<(Map, Placement), ConvertError> {
        let mut hf = self.export(config, layout)?;
        let mut problems = Vec::new();
        let mut placement = Placement::default();
        let base_v4 = base_defaults(HfLayout::V4);
        for (path, value) in &carried.generic {
            if layout == HfLayout::V5 && V5_GENERATION_KEYS.contains(&path.as_str()) {
                // transformers 5 would drop it on save; its default says nothing anyway.
                if !base_v4.get(path).is_some_and(|d| equal(d, value)) {
                    problems.push(Problem::at_hf(
                        path.clone(),
                        format!(
                            "{}: transformers 5 (--hf-layout v5) keeps generation parameters in \
                             generation_config.json, not config.json; put it there, or --drop-key {path}",
                            show(value)
                        ),
                    ));
                }
                continue;
            }
            match parent_of(&mut hf, path) {
                None => problems.push(Problem::at_hf(
                    path.clone(),
                    format!(
                        "{}: the {} config has no `{}` to hold it; --drop-key {path} converts without it",
                        show(value),
                        self.name,
                        path.rsplit_once('.').map(|(p, _)| p).unwrap_or_default()
                    ),
                )),
                Some((parent, leaf)) => match parent.get(leaf) {
                    Some(existing) if equal(existing, value) => placement.carried.push(path.clone()),
                    Some(existing) => problems.push(Problem::at_hf(
                        path.clone(),
                        format!(
                            "the input says {}, but {} writes {} from the converted model; --drop-key {path} \
                             converts without the input's value",
                            show(value),
                            self.name,
                            show(existing)
                        ),
                    )),
                    None => {
                        parent.insert(leaf.to_string(), value.clone());
                        placement.carried.push(path.clone());
                    }
                },
            }
        }
        let source = crate::find(&carried.format).ok();
        for (path, value) in &carried.format_keys {
            let target_default = class_default(self, path, Some(layout)).flatten();
            if target_default.as_ref().is_some_and(|d| equal(d, value)) {
                // Completing the output writes the class default, the same value.
                placement.carried.push(path.clone());
                continue;
            }
            let source_default = source.and_then(|s| class_default(s, path, None)).flatten();
            if source_default.is_some_and(|d| equal(&d, value)) {
                // The input class's default says nothing the output lacks.
                continue;
            }
            let accepted = carried.format == self.name || class_default(self, path, Some(layout)).is_some();
            let reason = match parent_of(&mut hf, path) {
                _ if !accepted => format!("{}'s {} has no such key", self.name, self.converter().hf_class.name),
                None => format!("the {} config has no dict to hold it", self.name),
                Some((parent, leaf)) => match parent.get(leaf) {
                    Some(existing) if equal(existing, value) => {
                        placement.carried.push(path.clone());
                        continue;
                    }
                    Some(existing) => format!("{} writes {} from the converted model", self.name, show(existing)),
                    None => {
                        parent.insert(leaf.to_string(), value.clone());
                        placement.carried.push(path.clone());
                        continue;
                    }
                },
            };
            placement.not_carried.push(NotCarried {
                key: path.clone(),
                value: value.clone(),
                reason,
            });
        }
        if !problems.is_empty() {
            return Err(ConvertError::Rejected {
                format: self.name.to_string(),
                direction: Direction::Export,
                problems,
            });
        }
        complete(&self.converter().hf_class, &mut hf, layout);
        // A `PretrainedConfig` key at its default is not written, as transformers does.
        placement.carried.retain(|path| crate::dict::get(&hf, path).is_some());
        placement.carried.sort();
        Ok((hf, placement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Map {
        Value::from_json_str(text).unwrap().as_map().unwrap().clone()
    }

    #[test]
    fn dropping_removes_dotted_keys_and_names_absent_ones() {
        let mut hf = json(r#"{"a": 1, "text_config": {"b": 2}}"#);
        let dropped = drop_keys(&mut hf, &["a".into(), "text_config.b".into()]).unwrap();
        assert_eq!(
            dropped,
            [
                ("a".to_string(), Value::Int(1)),
                ("text_config.b".to_string(), Value::Int(2))
            ]
        );
        assert_eq!(hf, json(r#"{"text_config": {}}"#));
        let problems = drop_keys(&mut hf, &["a".into(), "x.y".into()]).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.hf.clone().unwrap()).collect();
        assert_eq!(keys, ["a", "x.y"]);
    }

    #[test]
    fn collects_generic_and_unexported_keys_at_any_depth() {
        let input = json(
            r#"{"model_type": "x", "transformers_version": "4", "hidden_size": 8, "eos_token_id": [1, 2],
                "window_layers": 3, "text_config": {"hidden_size": 8, "bos_token_id": 1, "_name_or_path": "a"}}"#,
        );
        let export = json(r#"{"model_type": "x", "hidden_size": 8, "text_config": {"hidden_size": 8}}"#);
        let mut carried = Carried::none("x");
        collect(&input, &[&export], "", &mut carried);
        assert_eq!(
            carried.generic,
            json(r#"{"eos_token_id": [1, 2], "text_config.bos_token_id": 1}"#)
        );
        assert_eq!(carried.format_keys, json(r#"{"window_layers": 3}"#));
    }

    #[test]
    fn stored_form_round_trips_and_rejects_malformed_dicts() {
        let carried = Carried {
            format: "llama".into(),
            generic: json(r#"{"max_position_embeddings": 131072}"#),
            format_keys: json(r#"{"max_window_layers": 21}"#),
        };
        assert_eq!(Carried::from_value(&carried.to_value()).unwrap(), carried);
        for (bad, message) in [
            (r#"{"generic": {}}"#, "`format` must be a string"),
            (r#"{"format": "x", "generic": 3}"#, "`generic` must be a dict"),
            (r#"{"format": "x", "other": {}}"#, "unknown key `other`"),
        ] {
            let error = Carried::from_value(&Value::from_json_str(bad).unwrap()).unwrap_err();
            assert!(error.contains(message), "{error}");
        }
    }
}
