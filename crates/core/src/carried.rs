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
//! * a *format* key (known to the input format, not converted, or written by the export as
//!   another value the import reads as the same model) is carried when the output class has the
//!   key (always, to the same format), else listed as not carried; a value equal to the class
//!   default is not carried, since completing the output writes the default anyway. Where the
//!   output's export writes the key itself, the input's value replaces it only when the output
//!   then imports to the same model.
//!
//! Keys are named by their dotted path in the input. A wrapper format keeps its text model's
//! config under a sub-config (its *text root*, [`HfClass::text_root`]: `text_config` of
//! `gemma4_conditional` and Llava, `""` for a causal LM and Apriel2): the keys under it describe
//! the text model and move to the output's text root (`text_config.max_position_embeddings` ↔
//! `max_position_embeddings`); the wrapper's own keys keep their path. Two keys landing on one
//! output key with different values (the wrapper's `eos_token_id` and its text model's) are an
//! error naming both. A sub-config's identity (`text_config.model_type`, `architectures`) is the
//! output format's to write: carried where the output writes the same value, else listed as not
//! carried.
//!
//! Through a Fast-LLM checkpoint the carried keys are stored in `metadata.yaml` under
//! `metadata.`[`METADATA_KEY`] with the input's text root, and restored on export, so HF →
//! Fast-LLM → HF gives back the input's `config.json`.
//!
//! [`HfClass::text_root`]: crate::HfClass::text_root

use fastllm_config::{BaseModelConfig, Map, Value};

use crate::HfLayout;
use crate::complete::{V5_GENERATION_KEYS, base_defaults, complete};
use crate::coverage::GENERIC_IN_SUB_CONFIGS;
use crate::dict::{join, show};
use crate::hint::{Hint, spell};
use crate::registry::{GENERIC_METADATA, Handler};
use crate::{ConvertError, Direction, Fill, Problem};

/// The key of `metadata.yaml`'s free-form `metadata:` dict holding the carried HF keys
/// (`{format: <input format>, text_root: <its text root, when not the root>, generic: {<dotted
/// key>: value}, format_keys: {...}}`). Fast-LLM keeps that dict as it is and reads only its
/// `state_index` from it.
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
    /// Where that format keeps its text model's config (`""`: at the root; see
    /// [`HfClass::text_root`](crate::HfClass::text_root)).
    pub text_root: String,
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

    /// Removes each dotted `key` (`--drop-key` on a Fast-LLM checkpoint, whose HF keys are the
    /// stored ones), returning the removed values in order; a key it does not hold is a problem.
    pub fn drop_keys(&mut self, keys: &[String]) -> Result<Vec<(String, Value)>, Vec<Problem>> {
        let mut dropped = Vec::new();
        let mut problems = Vec::new();
        for key in keys {
            match self.generic.remove(key).or_else(|| self.format_keys.remove(key)) {
                Some(value) => dropped.push((key.clone(), value)),
                None => problems.push(Problem::at_hf(
                    key.clone(),
                    format!(
                        "{} names a key the checkpoint's stored {} metadata does not have",
                        spell(Hint::DropKeys),
                        self.format
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(dropped)
        } else {
            Err(problems)
        }
    }

    /// The dict stored under `metadata.`[`METADATA_KEY`].
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// [`Carried::to_value`], without copying the keys (they may be megabytes).
    pub fn into_value(self) -> Value {
        let mut map = Map::from([
            ("format".to_string(), Value::Str(self.format)),
            ("generic".to_string(), Value::Map(self.generic)),
            ("format_keys".to_string(), Value::Map(self.format_keys)),
        ]);
        if !self.text_root.is_empty() {
            map.insert("text_root".to_string(), Value::Str(self.text_root));
        }
        Value::Map(map)
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
        let text_root = match map.get("text_root") {
            None => String::new(),
            Some(Value::Str(root)) => root.clone(),
            Some(other) => return Err(format!("`text_root` must be a string, found {}", show(other))),
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["format", "text_root", "generic", "format_keys"].contains(&k.as_str()))
        {
            return Err(format!("unknown key `{unknown}`"));
        }
        Ok(Carried {
            format,
            text_root,
            generic: dict("generic")?,
            format_keys: dict("format_keys")?,
        })
    }
}

/// Removes each dotted `key` from `hf`, returning the removed values in order; a key `hf` does
/// not have is a problem (a typo would otherwise drop nothing, silently). `--drop-key` goes
/// through [`Handler::drop_keys`], which first refuses the keys the format reads.
pub(crate) fn drop_keys(hf: &mut Map, keys: &[String]) -> Result<Vec<(String, Value)>, Vec<Problem>> {
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
                format!("{} names a key the input does not have", spell(Hint::DropKeys)),
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
        let inner_exports: Vec<&Map> = exported.iter().filter_map(|v| v.as_map()).collect();
        match value {
            Value::Map(inner) if !inner_exports.is_empty() => collect(inner, &inner_exports, &path, carried),
            _ if exported.iter().any(|e| equal(e, value)) => {}
            // Not written, or written as another value the import reads as the same model
            // (`null` for `0`, `"vision"` for `null`): the input's spelling is carried.
            _ => {
                carried.format_keys.insert(path, value.clone());
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

/// The part of `path` below the text root `root` (`None`: a key of the wrapper around it).
fn below_root<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if root.is_empty() {
        return Some(path);
    }
    path.strip_prefix(root)?.strip_prefix('.')
}

/// One carried key on its way into an output.
struct Entry<'a> {
    /// Its dotted path in the input (what the summary and `--drop-key` name).
    key: &'a str,
    /// Its dotted path in the output.
    target: String,
    value: &'a Value,
    generic: bool,
    /// A sub-config's identity (`text_config.model_type`): the output writes its own.
    identity: bool,
}

/// Which of the carried key sets an entry comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeySet {
    /// Generic metadata every format carries.
    Generic,
    /// Keys of the input's format that the Fast-LLM model does not hold.
    Format,
}

/// The text roots of the input (where carried keys were found) and of the output.
#[derive(Clone, Copy)]
struct TextRoots<'r> {
    source: &'r str,
    target: &'r str,
}

impl<'a> Entry<'a> {
    fn new(key: &'a str, value: &'a Value, set: KeySet, roots: TextRoots) -> Self {
        let TextRoots {
            source: source_root,
            target: target_root,
        } = roots;
        let below = (source_root != target_root)
            .then(|| below_root(key, source_root))
            .flatten();
        Entry {
            key,
            target: below.map_or_else(|| key.to_string(), |rest| join(target_root, rest)),
            value,
            generic: set == KeySet::Generic,
            identity: key.rsplit_once('.').is_some_and(|(_, leaf)| IDENTITY.contains(&leaf)),
        }
    }
}

/// Problems for carried keys landing on one output key with different values (a wrapper's key
/// and its text model's), and those output keys.
fn conflicts(entries: &[Entry], name: &str) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut targets = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if targets.contains(&entry.target) {
            continue;
        }
        let Some(other) = entries[i + 1..]
            .iter()
            .find(|o| o.target == entry.target && !equal(o.value, entry.value))
        else {
            continue;
        };
        targets.push(entry.target.clone());
        problems.push(Problem::at_hf(
            entry.key,
            format!(
                "{} and `{}` {} both become {name}'s `{}`, which holds one value; {} or {} converts with the other",
                show(entry.value),
                other.key,
                show(other.value),
                entry.target,
                spell(Hint::DropKey(entry.key)),
                spell(Hint::DropKey(other.key))
            ),
        ));
    }
    (problems, targets)
}

/// Whether `target` is a generation parameter of the output's text model (at its root or its
/// text root), which transformers 5 no longer keeps in a config.
fn generation_key<'t>(target: &'t str, text_root: &str) -> Option<&'t str> {
    [Some(target), below_root(target, text_root)]
        .into_iter()
        .flatten()
        .find(|leaf| V5_GENERATION_KEYS.contains(leaf))
}

impl Handler {
    /// Whether `exported` (this format's export of `config`) with `value` at dotted `path`
    /// imports to `config` again: another spelling of the same model.
    fn imports_the_same(&self, config: &BaseModelConfig, exported: &Map, path: &str, value: &Value) -> bool {
        let mut trial = exported.clone();
        match parent_of(&mut trial, path) {
            Some((parent, leaf)) => parent.insert(leaf.to_string(), value.clone()),
            None => return false,
        };
        self.import(&trial).is_ok_and(|back| back == *config)
    }

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
        carried.text_root = self.converter().hf_class.text_root.to_string();
        collect(hf, &ok, "", &mut carried);
        Ok(carried)
    }

    /// Exports `config` with the `carried` keys placed into it, completed to what transformers'
    /// `save_pretrained` of the format's class writes; also says where the carried keys went.
    /// Keys of the input's text model move to this format's text root.
    pub fn export_carrying(
        &self,
        config: &BaseModelConfig,
        carried: &Carried,
        layout: HfLayout,
    ) -> Result<(Map, Placement), ConvertError> {
        let mut hf = self.export(config, layout)?;
        let exported = hf.clone();
        let mut placement = Placement::default();
        let text_root = self.converter().hf_class.text_root;
        let roots = TextRoots {
            source: &carried.text_root,
            target: text_root,
        };
        let entries: Vec<Entry> = (carried.generic.iter().map(|(k, v)| (k, v, KeySet::Generic)))
            .chain(carried.format_keys.iter().map(|(k, v)| (k, v, KeySet::Format)))
            .map(|(key, value, set)| Entry::new(key, value, set, roots))
            .collect();
        let (mut problems, conflicting) = conflicts(&entries, self.name);
        let base_v4 = base_defaults(HfLayout::V4);
        let source = crate::find(&carried.format).ok();
        let mut placed = Vec::new();
        for entry in entries.iter().filter(|e| !conflicting.contains(&e.target)) {
            let (key, target, value) = (entry.key, entry.target.as_str(), entry.value);
            if entry.identity {
                match crate::dict::get(&hf, target) {
                    Some(existing) if equal(existing, value) => placed.push(entry),
                    existing => placement.not_carried.push(NotCarried {
                        key: key.to_string(),
                        value: value.clone(),
                        reason: format!(
                            "names the class of the input's `{}`; {} writes {} for `{target}`",
                            key.rsplit_once('.').map(|(parent, _)| parent).unwrap_or_default(),
                            self.name,
                            existing.map(show).unwrap_or_else(|| "nothing".into())
                        ),
                    }),
                }
                continue;
            }
            if entry.generic {
                if layout == HfLayout::V5
                    && let Some(leaf) = generation_key(target, text_root)
                {
                    // transformers 5 would drop it on save; its default says nothing anyway.
                    if !base_v4.get(leaf).is_some_and(|d| equal(d, value)) {
                        problems.push(Problem::at_hf(
                            key,
                            format!(
                                "{}: transformers 5 ({}) keeps generation parameters in \
                                 generation_config.json, not config.json; put it there, or {}",
                                show(value),
                                spell(Hint::HfLayoutV5),
                                spell(Hint::DropKey(key))
                            ),
                        ));
                    }
                    continue;
                }
                match parent_of(&mut hf, target) {
                    None => problems.push(Problem::at_hf(
                        key,
                        format!(
                            "{}: the {} config has no `{}` to hold it; {} converts without it",
                            show(value),
                            self.name,
                            target.rsplit_once('.').map(|(p, _)| p).unwrap_or_default(),
                            spell(Hint::DropKey(key))
                        ),
                    )),
                    Some((parent, leaf)) => match parent.get(leaf) {
                        Some(existing) if equal(existing, value) => placed.push(entry),
                        Some(existing) => problems.push(Problem::at_hf(
                            key,
                            format!(
                                "the input says {}, but {} writes {} {}from the converted model; {} converts \
                                 without the input's value",
                                show(value),
                                self.name,
                                show(existing),
                                if target == key {
                                    String::new()
                                } else {
                                    format!("for `{target}` ")
                                },
                                spell(Hint::DropKey(key))
                            ),
                        )),
                        None => {
                            parent.insert(leaf.to_string(), value.clone());
                            placed.push(entry);
                        }
                    },
                }
                continue;
            }
            let target_default = class_default(self, target, Some(layout)).flatten();
            if target_default.as_ref().is_some_and(|d| equal(d, value)) {
                // Completing the output writes the class default, the same value.
                placed.push(entry);
                continue;
            }
            let source_default = source.and_then(|s| class_default(s, key, None)).flatten();
            if source_default.is_some_and(|d| equal(&d, value)) {
                // The input class's default says nothing the output lacks.
                continue;
            }
            let accepted = carried.format == self.name || class_default(self, target, Some(layout)).is_some();
            let reason = match parent_of(&mut hf, target) {
                _ if !accepted => format!(
                    "{}'s {} has no such key{}",
                    self.name,
                    self.converter().hf_class.name,
                    if target == key {
                        String::new()
                    } else {
                        format!(" (`{target}`)")
                    }
                ),
                None => format!("the {} config has no dict to hold it", self.name),
                Some((parent, leaf)) => match parent.get(leaf) {
                    Some(existing) if equal(existing, value) => {
                        placed.push(entry);
                        continue;
                    }
                    Some(_) if self.imports_the_same(config, &exported, target, value) => {
                        parent.insert(leaf.to_string(), value.clone());
                        placed.push(entry);
                        continue;
                    }
                    Some(existing) => format!("{} writes {} from the converted model", self.name, show(existing)),
                    None => {
                        parent.insert(leaf.to_string(), value.clone());
                        placed.push(entry);
                        continue;
                    }
                },
            };
            placement.not_carried.push(NotCarried {
                key: key.to_string(),
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
        placement.carried = placed
            .into_iter()
            .filter(|entry| crate::dict::get(&hf, &entry.target).is_some())
            .map(|entry| entry.key.to_string())
            .collect();
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
                "window_layers": 3, "text_config": {"hidden_size": 8, "bos_token_id": 1, "_name_or_path": "a",
                "mode": "vision", "width": 0}}"#,
        );
        // The export writes `mode` as null (what the import reads "vision" as) and `width` as null
        // in one layout.
        let v4 = json(r#"{"model_type": "x", "hidden_size": 8, "text_config": {"hidden_size": 8, "mode": null}}"#);
        let v5 = json(r#"{"hidden_size": 8, "text_config": {"hidden_size": 8.0, "mode": null, "width": 0}}"#);
        let mut carried = Carried::none("x");
        collect(&input, &[&v4, &v5], "", &mut carried);
        assert_eq!(
            carried.generic,
            json(r#"{"eos_token_id": [1, 2], "text_config.bos_token_id": 1}"#)
        );
        assert_eq!(
            carried.format_keys,
            json(r#"{"window_layers": 3, "text_config.mode": "vision"}"#)
        );
    }

    #[test]
    fn stored_form_round_trips_and_rejects_malformed_dicts() {
        let carried = Carried {
            format: "llama".into(),
            text_root: String::new(),
            generic: json(r#"{"max_position_embeddings": 131072}"#),
            format_keys: json(r#"{"max_window_layers": 21}"#),
        };
        assert_eq!(Carried::from_value(&carried.to_value()).unwrap(), carried);
        // A causal LM's stored form has no `text_root`; a wrapper's names it.
        assert!(!carried.to_value().as_map().unwrap().contains_key("text_root"));
        let wrapper = Carried {
            format: "gemma4_conditional".into(),
            text_root: "text_config".into(),
            ..carried
        };
        assert_eq!(Carried::from_value(&wrapper.to_value()).unwrap(), wrapper);
        for (bad, message) in [
            (r#"{"generic": {}}"#, "`format` must be a string"),
            (r#"{"format": "x", "generic": 3}"#, "`generic` must be a dict"),
            (r#"{"format": "x", "other": {}}"#, "unknown key `other`"),
            (r#"{"format": "x", "text_root": 1}"#, "`text_root` must be a string"),
        ] {
            let error = Carried::from_value(&Value::from_json_str(bad).unwrap()).unwrap_err();
            assert!(error.contains(message), "{error}");
        }
    }

    fn targets(keys: &[&str], source_root: &str, target_root: &str) -> Vec<(String, bool)> {
        keys.iter()
            .map(|key| {
                let roots = TextRoots {
                    source: source_root,
                    target: target_root,
                };
                let entry = Entry::new(key, &Value::Null, KeySet::Generic, roots);
                (entry.target, entry.identity)
            })
            .collect()
    }

    #[test]
    fn text_model_keys_move_between_text_roots_and_wrapper_keys_stay() {
        let keys = [
            "text_config.max_position_embeddings",
            "text_config.rope_parameters.rope_theta",
            "text_config.model_type",
            "eos_token_id",
            "vision_config.initializer_range",
            "vision_config.model_type",
            "text_configs.x",
        ];
        let moved = |key: &str, identity: bool| (key.to_string(), identity);
        assert_eq!(
            targets(&keys, "text_config", ""),
            [
                moved("max_position_embeddings", false),
                moved("rope_parameters.rope_theta", false),
                moved("model_type", true),
                moved("eos_token_id", false),
                moved("vision_config.initializer_range", false),
                moved("vision_config.model_type", true),
                moved("text_configs.x", false),
            ]
        );
        // The same text root: nothing moves.
        assert_eq!(
            targets(&keys, "text_config", "text_config"),
            keys.iter()
                .map(|k| moved(k, k.ends_with("model_type")))
                .collect::<Vec<_>>()
        );
        // From a causal LM every key is the text model's.
        assert_eq!(
            targets(&["bos_token_id", "rope_scaling.factor"], "", "text_config"),
            [
                moved("text_config.bos_token_id", false),
                moved("text_config.rope_scaling.factor", false)
            ]
        );
    }

    #[test]
    fn keys_landing_on_one_output_key_conflict_only_when_they_differ() {
        let (one, list, same) = (Value::Int(1), json(r#"{"v": [1, 106]}"#)["v"].clone(), Value::Int(1));
        let roots = TextRoots {
            source: "text_config",
            target: "",
        };
        let entry = |key, value| Entry::new(key, value, KeySet::Generic, roots);
        let entries = [
            entry("eos_token_id", &list),
            entry("text_config.eos_token_id", &one),
            entry("bos_token_id", &same),
            entry("text_config.bos_token_id", &one),
        ];
        let (problems, targets) = conflicts(&entries, "gemma4");
        assert_eq!(targets, ["eos_token_id"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].hf.as_deref(), Some("eos_token_id"));
        assert!(
            problems[0]
                .message
                .contains("[1,106] and `text_config.eos_token_id` 1 both become gemma4's `eos_token_id`")
                && problems[0]
                    .message
                    .contains("dropping key eos_token_id or dropping key text_config.eos_token_id"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn generation_parameters_are_found_at_the_root_and_the_text_root() {
        assert_eq!(generation_key("temperature", ""), Some("temperature"));
        assert_eq!(generation_key("text_config.top_k", "text_config"), Some("top_k"));
        assert_eq!(generation_key("vision_config.top_k", "text_config"), None);
        assert_eq!(generation_key("max_position_embeddings", "text_config"), None);
    }

    #[test]
    fn dropping_stored_keys_names_absent_ones() {
        let mut carried = Carried {
            format: "llama".into(),
            text_root: String::new(),
            generic: json(r#"{"eos_token_id": 2}"#),
            format_keys: json(r#"{"max_window_layers": 21}"#),
        };
        let dropped = carried
            .drop_keys(&["max_window_layers".into(), "eos_token_id".into()])
            .unwrap();
        assert_eq!(
            dropped,
            [
                ("max_window_layers".to_string(), Value::Int(21)),
                ("eos_token_id".to_string(), Value::Int(2))
            ]
        );
        assert!(carried.is_empty());
        let problems = carried.drop_keys(&["eos_token_id".into()]).unwrap_err();
        assert!(problems[0].message.contains("stored llama metadata"), "{problems:?}");
    }
}
