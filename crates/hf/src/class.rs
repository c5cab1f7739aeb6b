//! Reading an HF `config.json` as transformers' config class would load it: absent keys take the
//! class defaults, `null` means what the class makes of it, and values are type-checked.

use fastllm_config::{Map, Value};

use fastllm_config::dict::{join, show};

use crate::{HfLayout, KeyProblem};

/// The JSON type a key must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfType {
    Int,
    /// An int or a float.
    Float,
    Bool,
    Str,
    List,
    Dict,
    /// Anything (metadata the format does not read).
    Any,
}

impl HfType {
    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (HfType::Any, _)
                | (HfType::Int, Value::Int(_))
                | (HfType::Float, Value::Int(_) | Value::Float(_))
                | (HfType::Bool, Value::Bool(_))
                | (HfType::Str, Value::Str(_))
                | (HfType::List, Value::List(_))
                | (HfType::Dict, Value::Map(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            HfType::Int => "an int",
            HfType::Float => "a number",
            HfType::Bool => "a bool",
            HfType::Str => "a string",
            HfType::List => "a list",
            HfType::Dict => "a dict",
            HfType::Any => "anything",
        }
    }
}

/// What a key becomes when absent or `null`.
#[derive(Clone)]
pub enum Fill {
    /// Left as it is (absent stays absent, `null` stays `null`).
    Keep,
    /// This value.
    Value(Value),
    /// Computed from the (already filled) dict; `Err` is a problem naming the key.
    Derive(fn(&Map) -> Result<Value, String>),
}

/// Picks the class of a sub-config from the sub-dict (`None` when absent); `Err` rejects it.
pub type ChooseClass = fn(Option<&Map>) -> Result<HfClass, String>;

/// One key of an HF config class.
#[derive(Clone)]
pub struct HfKey {
    pub name: &'static str,
    pub ty: HfType,
    pub absent: Fill,
    pub null: Fill,
    /// What an empty dict or list becomes (`Keep` unless the class reads `value or default`,
    /// where Python treats `{}` like `None`).
    pub empty: Fill,
    /// For a sub-config (`text_config`, `vision_config`): the class that loads it, chosen from
    /// the sub-dict (`None` when absent); `Err` rejects it, naming the key.
    pub class: Option<ChooseClass>,
    /// What `save_pretrained` writes when the key is absent, where it differs from `absent`
    /// (e.g. a value the class stores as `None` unless another key enables it).
    pub written: Option<Fill>,
    /// The one rope layout whose transformers class has the key (`None`: both).
    pub layout: Option<HfLayout>,
    /// A dict the class completes entry by entry: a present dict gets the missing entries of
    /// the written default.
    pub fills_entries: bool,
    /// Keys the class folds into this one on save: what `save_pretrained` writes for this key
    /// when absent is derived from them (see [`HfKey::written_as`]), and they are not written
    /// (transformers 5.24's `Gemma4TextConfig` pops `global_head_dim` into `per_layer_config`).
    pub folds: &'static [&'static str],
    /// Entries of a dict the class rewrites on save: `(entry, from, to)` writes `to` where the
    /// entry holds `from` (`PixtralVisionConfig`'s `default_rope_type`: a `default` rope type is
    /// written `axial`).
    pub rewrites: Vec<(&'static str, Value, Value)>,
}

impl HfKey {
    /// A key with a default for absent; `null` stays `null` (and must be allowed by the format).
    pub fn new(name: &'static str, ty: HfType, default: Value) -> Self {
        HfKey {
            name,
            ty,
            absent: Fill::Value(default),
            null: Fill::Keep,
            empty: Fill::Keep,
            class: None,
            written: None,
            layout: None,
            fills_entries: false,
            folds: &[],
            rewrites: Vec::new(),
        }
    }

    /// A key the format does not read (token ids, `use_cache`, ...): any value, `default` when
    /// absent; what `save_pretrained` writes for it.
    pub fn metadata(name: &'static str, default: Value) -> Self {
        HfKey::new(name, HfType::Any, default)
    }

    /// A key derived from others when absent or `null`.
    pub fn derived(name: &'static str, ty: HfType, derive: fn(&Map) -> Result<Value, String>) -> Self {
        HfKey {
            absent: Fill::Derive(derive),
            null: Fill::Derive(derive),
            ..HfKey::new(name, ty, Value::Null)
        }
    }

    /// A sub-config loaded by the class `choose` picks from the sub-dict (`None` when absent).
    pub fn sub_config(name: &'static str, choose: ChooseClass) -> Self {
        HfKey {
            absent: Fill::Keep,
            class: Some(choose),
            ..HfKey::new(name, HfType::Dict, Value::Null)
        }
    }

    /// What `null` becomes.
    pub fn null_means(mut self, fill: Fill) -> Self {
        self.null = fill;
        self
    }

    /// What an empty dict or list becomes.
    pub fn empty_means(mut self, fill: Fill) -> Self {
        self.empty = fill;
        self
    }

    /// What an absent key becomes.
    pub fn absent_means(mut self, fill: Fill) -> Self {
        self.absent = fill;
        self
    }

    /// What `save_pretrained` writes for an absent key (`Fill::Keep`: nothing).
    pub fn written_as(mut self, fill: Fill) -> Self {
        self.written = Some(fill);
        self
    }

    /// A key only the `layout` version of the class has (rope keys).
    pub fn only_in(mut self, layout: HfLayout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// A dict whose missing entries the class fills from the written default.
    pub fn filling_entries(mut self) -> Self {
        self.fills_entries = true;
        self
    }

    /// Keys `save_pretrained` folds into this one and does not write (see [`HfKey::folds`]).
    pub fn folding(mut self, keys: &'static [&'static str]) -> Self {
        self.folds = keys;
        self
    }

    /// An entry of this dict that `save_pretrained` writes as `to` where it holds `from`.
    pub fn rewriting_entry(mut self, entry: &'static str, from: Value, to: Value) -> Self {
        self.rewrites.push((entry, from, to));
        self
    }

    /// What `save_pretrained` writes for this key when the config lacks it.
    pub fn written_fill(&self) -> &Fill {
        self.written.as_ref().unwrap_or(&self.absent)
    }

    /// Whether the `layout` version of the class has this key.
    pub fn in_layout(&self, layout: HfLayout) -> bool {
        self.layout.is_none_or(|only| only == layout)
    }
}

/// An HF config class: its keys in the order their defaults resolve.
#[derive(Clone)]
pub struct HfClass {
    pub name: &'static str,
    pub keys: Vec<HfKey>,
    /// The class's `model_type`, written into a sub-config that lacks it (`None` for classes
    /// only used at the top, where the format writes it).
    pub model_type: Option<&'static str>,
    /// Where the config of the text model lives: `""` when it is the class itself (a causal
    /// LM), else the key of its sub-config (`text_config` of a multimodal wrapper, what
    /// transformers' `get_text_config()` returns). Carried metadata of the text model moves
    /// between formats with different text roots.
    pub text_root: &'static str,
}

impl HfClass {
    /// A class with `keys`.
    pub fn new(name: &'static str, keys: Vec<HfKey>) -> Self {
        HfClass {
            name,
            keys,
            model_type: None,
            text_root: "",
        }
    }

    /// The class with its `model_type` (see [`HfClass::model_type`]).
    pub fn with_model_type(mut self, model_type: &'static str) -> Self {
        self.model_type = Some(model_type);
        self
    }

    /// The class with its text model under the sub-config `key` (see [`HfClass::text_root`]).
    pub fn with_text_root(mut self, key: &'static str) -> Self {
        self.text_root = key;
        self
    }

    /// A child class: `name`, with keys replaced by name (keeping their position) or appended.
    pub fn derive(&self, name: &'static str, changes: Vec<HfKey>) -> Self {
        let mut keys = self.keys.clone();
        for change in changes {
            match keys.iter_mut().find(|k| k.name == change.name) {
                Some(slot) => *slot = change,
                None => keys.push(change),
            }
        }
        HfClass {
            name,
            keys,
            model_type: self.model_type,
            text_root: self.text_root,
        }
    }

    /// A child class without the keys `names` (keys the class does not have).
    pub fn without(mut self, names: &[&str]) -> Self {
        self.keys.retain(|k| !names.contains(&k.name));
        self
    }

    /// The key `name`.
    pub fn key(&self, name: &str) -> Option<&HfKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Loads `input` as the class would: fills absent and `null` keys, checks types.
    pub fn load(&self, input: &Map) -> (Map, Vec<KeyProblem>) {
        let mut out = input.clone();
        let mut problems = Vec::new();
        for key in &self.keys {
            if let Some(choose) = key.class {
                let sub = match out.get(key.name) {
                    Some(Value::Map(sub)) => Some(sub.clone()),
                    None | Some(Value::Null) => None,
                    Some(other) => {
                        problems.push(KeyProblem::new(
                            key.name,
                            format!("must be a dict, found {}", show(other)),
                        ));
                        continue;
                    }
                };
                match choose(sub.as_ref()) {
                    Ok(class) => {
                        let (loaded, sub_problems) = class.load(&sub.unwrap_or_default());
                        problems.extend(
                            sub_problems
                                .into_iter()
                                .map(|p| KeyProblem::new(join(key.name, &p.key), p.message)),
                        );
                        out.insert(key.name.to_string(), Value::Map(loaded));
                    }
                    Err(message) => problems.push(KeyProblem::new(key.name, message)),
                }
                continue;
            }
            let wrong_type = |value: &Value| {
                (!matches!(value, Value::Null) && !key.ty.accepts(value)).then(|| {
                    KeyProblem::new(
                        key.name,
                        format!("must be {} ({}), found {}", key.ty.name(), self.name, show(value)),
                    )
                })
            };
            // One lookup decides the fill and, for a value kept as it is, checks its type.
            let current = out.get(key.name);
            let fill = match current {
                None => &key.absent,
                Some(Value::Null) => &key.null,
                Some(Value::Map(m)) if m.is_empty() => &key.empty,
                Some(Value::List(l)) if l.is_empty() => &key.empty,
                Some(_) => &Fill::Keep,
            };
            let filled = match fill {
                Fill::Keep => None,
                Fill::Value(value) => Some(value.clone()),
                Fill::Derive(derive) => match derive(&out) {
                    Ok(value) => Some(value),
                    Err(message) => {
                        problems.push(KeyProblem::new(key.name, message));
                        None
                    }
                },
            };
            match filled {
                Some(value) => {
                    problems.extend(wrong_type(&value));
                    out.insert(key.name.to_string(), value);
                }
                None => problems.extend(current.and_then(wrong_type)),
            }
        }
        (out, problems)
    }
}

/// `hidden_size / num_attention_heads`, exact (transformers' derived `head_dim`).
pub fn derived_head_dim(hf: &Map) -> Result<Value, String> {
    match (hf.get("hidden_size"), hf.get("num_attention_heads")) {
        (Some(Value::Int(hidden)), Some(Value::Int(heads))) if *heads > 0 && hidden % heads == 0 => {
            Ok(Value::Int(hidden / heads))
        }
        (Some(Value::Int(hidden)), Some(Value::Int(heads))) => Err(format!(
            "absent, and hidden_size {hidden} is not divisible by num_attention_heads {heads} to derive it"
        )),
        _ => Err("absent, and cannot be derived without int hidden_size and num_attention_heads".into()),
    }
}

/// `num_attention_heads` (transformers' multi-head default for `num_key_value_heads`).
pub fn same_as_heads(hf: &Map) -> Result<Value, String> {
    hf.get("num_attention_heads")
        .cloned()
        .ok_or_else(|| "cannot default to num_attention_heads".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class() -> HfClass {
        HfClass::new(
            "TestConfig",
            vec![
                HfKey::new("hidden_size", HfType::Int, Value::Int(64)),
                HfKey::new("num_attention_heads", HfType::Int, Value::Int(4)),
                HfKey::derived("head_dim", HfType::Int, derived_head_dim),
                HfKey::new("num_key_value_heads", HfType::Int, Value::Int(2)).null_means(Fill::Derive(same_as_heads)),
                HfKey::new("flag", HfType::Bool, Value::Bool(false)),
            ],
        )
    }

    fn load(json: &str) -> (Map, Vec<KeyProblem>) {
        class().load(Value::from_json_str(json).unwrap().as_map().unwrap())
    }

    #[test]
    fn absent_and_null_keys_take_the_class_semantics() {
        let (out, problems) = load(r#"{"num_key_value_heads": null, "head_dim": null}"#);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out["head_dim"], Value::Int(16));
        assert_eq!(out["num_key_value_heads"], Value::Int(4));
        let (out, _) = load("{}");
        assert_eq!(out["num_key_value_heads"], Value::Int(2));
    }

    #[test]
    fn empty_means_applies_to_empty_dicts_only() {
        let class = HfClass::new(
            "TestConfig",
            vec![
                HfKey::new("sub", HfType::Dict, Value::Null)
                    .empty_means(Fill::Value(Value::from_json_str(r#"{"a": 1}"#).unwrap())),
            ],
        );
        let load = |json: &str| class.load(Value::from_json_str(json).unwrap().as_map().unwrap()).0;
        assert_eq!(
            load(r#"{"sub": {}}"#)["sub"],
            Value::from_json_str(r#"{"a": 1}"#).unwrap()
        );
        assert_eq!(
            load(r#"{"sub": {"a": 2}}"#)["sub"],
            Value::from_json_str(r#"{"a": 2}"#).unwrap()
        );
        assert_eq!(load(r#"{"sub": null}"#)["sub"], Value::Null);
    }

    #[test]
    fn types_are_strict() {
        let (_, problems) = load(r#"{"flag": "true", "hidden_size": 64.0}"#);
        let keys: Vec<_> = problems.iter().map(|p| p.key.clone()).collect();
        assert_eq!(keys, ["hidden_size", "head_dim", "flag"]);
    }

    #[test]
    fn underivable_head_dim_is_a_problem() {
        let (_, problems) = load(r#"{"hidden_size": 66}"#);
        assert!(problems[0].message.contains("not divisible"), "{problems:?}");
    }
}
