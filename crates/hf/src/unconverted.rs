//! Parts of an HF checkpoint that a format recognises but whose Fast-LLM model has no place for
//! (a multimodal wrapper's vision or audio tower).
//!
//! A format declares each such part on its root section (`fastllm_core::Section::unconverted`): its top-level
//! config keys and its tensor-name prefixes. Nothing of it is dropped silently: importing a config
//! that holds anything of the part fails, naming every such key, and a checkpoint carrying its
//! tensors fails, naming them, unless the user accepts the loss (the command line's `--text-only`); then the
//! conversion drops them and reports every dropped key and tensor by name.
//!
//! A key holds nothing to lose when its value is what the HF class gives an absent key (a `null`
//! `vision_config`, a default token id): the format's export writes exactly that, so a checkpoint
//! without the part round-trips with no opt-in.

use fastllm_config::{Map, Value};

use crate::class::{Fill, HfClass};
use fastllm_config::dict;

/// One part of an HF checkpoint a format does not convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unconverted {
    /// What it is, for messages (`vision tower`).
    pub part: &'static str,
    /// Its top-level HF config keys (sub-configs, token ids, ...).
    pub keys: &'static [&'static str],
    /// The prefixes of its HF tensor names (`model.vision_tower.`).
    pub tensor_prefixes: &'static [&'static str],
}

impl Unconverted {
    /// Whether the HF tensor `name` belongs to the part.
    pub fn holds_tensor(&self, name: &str) -> bool {
        self.tensor_prefixes.iter().any(|prefix| name.starts_with(prefix))
    }

    /// The part's keys of `hf` that hold something: present, and not what `class` gives an
    /// absent key (for a key outside the class: not `null`). `loaded` is `hf` as `class` loaded it.
    pub fn held_keys(&self, class: &HfClass, hf: &Map, loaded: &Map) -> Vec<&'static str> {
        self.keys
            .iter()
            .copied()
            .filter(|key| hf.contains_key(*key))
            .filter(|key| {
                let found = loaded.get(*key).unwrap_or(&Value::Null);
                let absent = match class.key(key).map(|k| &k.absent) {
                    Some(Fill::Value(value)) => value,
                    _ => &Value::Null,
                };
                !(dict::same(found, absent) && dict::same(absent, found))
            })
            .collect()
    }

    /// The value the export writes for `key`: what `class` gives an absent key, if it has one.
    pub fn exported(class: &HfClass, key: &str) -> Option<Value> {
        match class.key(key).map(|k| &k.absent) {
            Some(Fill::Value(value)) => Some(value.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::{HfKey, HfType};

    const VISION: Unconverted = Unconverted {
        part: "vision tower",
        keys: &["vision_config", "image_token_id", "soft_tokens"],
        tensor_prefixes: &["model.vision_tower.", "model.embed_vision."],
    };

    fn class() -> HfClass {
        HfClass::new(
            "TestConfig",
            vec![
                HfKey::new("vision_config", HfType::Dict, Value::Null),
                HfKey::new("image_token_id", HfType::Int, Value::Int(7)),
            ],
        )
    }

    fn held(json: &str) -> Vec<&'static str> {
        let hf = Value::from_json_str(json).unwrap().as_map().unwrap().clone();
        let (loaded, _) = class().load(&hf);
        VISION.held_keys(&class(), &hf, &loaded)
    }

    #[test]
    fn keys_hold_something_unless_they_are_what_absence_means() {
        assert_eq!(held("{}"), Vec::<&str>::new());
        assert_eq!(
            held(r#"{"vision_config": null, "image_token_id": 7, "soft_tokens": null}"#),
            Vec::<&str>::new()
        );
        assert_eq!(
            held(r#"{"vision_config": {"hidden_size": 8}, "image_token_id": 8, "soft_tokens": 280}"#),
            ["vision_config", "image_token_id", "soft_tokens"]
        );
        // The class keeps `null` for a token id whose absence means 7: that differs.
        assert_eq!(held(r#"{"image_token_id": null}"#), ["image_token_id"]);
        assert_eq!(held(r#"{"vision_config": {}}"#), ["vision_config"]);
    }

    #[test]
    fn tensors_by_prefix() {
        assert!(VISION.holds_tensor("model.vision_tower.encoder.layers.0.mlp.up_proj.linear.weight"));
        assert!(VISION.holds_tensor("model.embed_vision.embedding_projection.weight"));
        assert!(!VISION.holds_tensor("model.language_model.embed_tokens.weight"));
        assert!(!VISION.holds_tensor("model.vision_towers"));
    }

    #[test]
    fn exports_what_absence_means() {
        assert_eq!(Unconverted::exported(&class(), "image_token_id"), Some(Value::Int(7)));
        assert_eq!(Unconverted::exported(&class(), "vision_config"), Some(Value::Null));
        assert_eq!(Unconverted::exported(&class(), "soft_tokens"), None);
    }
}
