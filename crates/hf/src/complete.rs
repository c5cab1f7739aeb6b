//! The complete `config.json`: what transformers' `save_pretrained` of the format's config class
//! writes, computed from the class as data ([`HfClass`]), with `transformers_version` omitted.
//!
//! `save_pretrained` writes `to_diff_dict()` of the loaded config (transformers 4.57 and 5.24
//! alike):
//! * at the top, a key of the class is always written; a `PretrainedConfig` key only when its
//!   value differs from `PretrainedConfig()`'s or from the class's own default;
//! * in a sub-config (`text_config`), a `PretrainedConfig` key only when it differs from the
//!   sub-config class's default, and `model_type` always.
//!
//! So completion fills every class key the config lacks with the value the class would hold,
//! then removes the `PretrainedConfig` keys transformers would not write. Where the class
//! rewrites a value on save instead, the declaration says so: an entry of a dict rewritten
//! ([`HfKey::rewriting_entry`](crate::HfKey::rewriting_entry), Pixtral's `axial` rope type) or
//! keys folded into another and not written ([`HfKey::folding`](crate::HfKey::folding), Gemma 4's
//! `per_layer_config`). Which keys are
//! `PretrainedConfig`'s differs between the versions ([`base_defaults`]): 5.x moved the token ids
//! and `tie_word_embeddings` into the model classes, and generation parameters out of the config.

use std::sync::OnceLock;

use fastllm_config::{Map, Value};

use crate::HfLayout;
use crate::class::{Fill, HfClass};
use fastllm_config::dict::same;

/// `PretrainedConfig().to_dict()` of transformers 4.57.6 (layout v4), without
/// `transformers_version`.
const BASE_DEFAULTS_V4: &str = r#"{
    "_name_or_path": "", "add_cross_attention": false, "architectures": null, "bad_words_ids": null,
    "begin_suppress_tokens": null, "bos_token_id": null, "chunk_size_feed_forward": 0,
    "cross_attention_hidden_size": null, "decoder_start_token_id": null, "diversity_penalty": 0.0,
    "do_sample": false, "dtype": null, "early_stopping": false, "encoder_no_repeat_ngram_size": 0,
    "eos_token_id": null, "exponential_decay_length_penalty": null, "finetuning_task": null,
    "forced_bos_token_id": null, "forced_eos_token_id": null,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_decoder": false, "is_encoder_decoder": false,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "length_penalty": 1.0, "max_length": 20,
    "min_length": 0, "model_type": "", "no_repeat_ngram_size": 0, "num_beam_groups": 1,
    "num_beams": 1, "num_return_sequences": 1, "output_attentions": false,
    "output_hidden_states": false, "output_scores": false, "pad_token_id": null, "prefix": null,
    "problem_type": null, "pruned_heads": {}, "remove_invalid_values": false,
    "repetition_penalty": 1.0, "return_dict": true, "return_dict_in_generate": false,
    "sep_token_id": null, "suppress_tokens": null, "task_specific_params": null,
    "temperature": 1.0, "tf_legacy_loss": false, "tie_encoder_decoder": false,
    "tie_word_embeddings": true, "tokenizer_class": null, "top_k": 50, "top_p": 1.0,
    "torchscript": false, "typical_p": 1.0, "use_bfloat16": false
}"#;

/// `PretrainedConfig().to_dict()` of transformers 5.24.0 (layout v5), without
/// `transformers_version`.
const BASE_DEFAULTS_V5: &str = r#"{
    "_name_or_path": "", "architectures": null, "chunk_size_feed_forward": 0, "dtype": null,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_encoder_decoder": false,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "model_type": "", "output_attentions": false,
    "output_hidden_states": false, "problem_type": null, "return_dict": true
}"#;

/// Generation parameters transformers 5.x no longer keeps in a model config: `save_pretrained`
/// leaves them out whatever their value (they belong in `generation_config.json`).
pub const V5_GENERATION_KEYS: &[&str] = &[
    "bad_words_ids",
    "begin_suppress_tokens",
    "diversity_penalty",
    "do_sample",
    "early_stopping",
    "encoder_no_repeat_ngram_size",
    "exponential_decay_length_penalty",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "length_penalty",
    "max_length",
    "min_length",
    "no_repeat_ngram_size",
    "num_beam_groups",
    "num_beams",
    "num_return_sequences",
    "output_scores",
    "remove_invalid_values",
    "repetition_penalty",
    "return_dict_in_generate",
    "suppress_tokens",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
];

/// `PretrainedConfig`'s keys and defaults in the transformers version of `layout`.
pub fn base_defaults(layout: HfLayout) -> &'static Map {
    static V4: OnceLock<Map> = OnceLock::new();
    static V5: OnceLock<Map> = OnceLock::new();
    let (cell, text) = match layout {
        HfLayout::V4 => (&V4, BASE_DEFAULTS_V4),
        HfLayout::V5 => (&V5, BASE_DEFAULTS_V5),
    };
    cell.get_or_init(|| {
        Value::from_json_str(text)
            .ok()
            .and_then(|v| v.as_map().cloned())
            .expect("valid JSON dict")
    })
}

/// Completes `hf` (a config of `class`) to what `save_pretrained` writes in `layout`.
pub fn complete(class: &HfClass, hf: &mut Map, layout: HfLayout) {
    complete_level(class, hf, layout, Level::Top);
}

/// Which config a completion level is: `save_pretrained` drops base-class defaults differently
/// at the top and in sub-configs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The config itself.
    Top,
    /// A sub-config (`text_config`, `vision_config`).
    Sub,
}

fn complete_level(class: &HfClass, hf: &mut Map, layout: HfLayout, level: Level) {
    let mut folded = Vec::new();
    for key in class.keys.iter().filter(|k| k.in_layout(layout)) {
        folded.extend_from_slice(key.folds);
        if let Some(choose) = key.class {
            if let Some(Value::Map(sub)) = hf.get_mut(key.name)
                && let Ok(sub_class) = choose(Some(sub))
            {
                complete_level(&sub_class, sub, layout, Level::Sub);
                if let Some(model_type) = sub_class.model_type {
                    sub.entry("model_type".to_string())
                        .or_insert_with(|| Value::Str(model_type.into()));
                }
            }
            continue;
        }
        match (hf.get_mut(key.name), key.written_fill()) {
            (Some(Value::Map(present)), Fill::Value(Value::Map(defaults))) if key.fills_entries => {
                for (name, value) in defaults {
                    present.entry(name.clone()).or_insert_with(|| value.clone());
                }
            }
            (Some(_), _) | (None, Fill::Keep) => {}
            (None, Fill::Value(value)) => {
                hf.insert(key.name.to_string(), value.clone());
            }
            (None, Fill::Derive(derive)) => {
                // An underivable value is left out: the export's own checks name its cause.
                if let Ok(value) = derive(hf) {
                    hf.insert(key.name.to_string(), value);
                }
            }
        }
        if let Some(Value::Map(present)) = hf.get_mut(key.name) {
            for (entry, from, to) in &key.rewrites {
                if let Some(value) = present.get_mut(*entry)
                    && same_value(value, from)
                {
                    *value = to.clone();
                }
            }
        }
    }
    // Folded after every key is complete: a key derived from a folded one has read it.
    for name in folded {
        hf.remove(name);
    }
    let base = base_defaults(layout);
    hf.retain(|name, value| {
        let Some(base_default) = base.get(name) else {
            return true;
        };
        let class_default = class
            .keys
            .iter()
            .find(|k| k.name == name && k.in_layout(layout))
            .and_then(|k| match k.written_fill() {
                Fill::Value(v) => Some(v),
                Fill::Keep | Fill::Derive(_) => None,
            });
        if level == Level::Top {
            !same_value(value, base_default) || class_default.is_some_and(|d| !same_value(value, d))
        } else {
            !same_value(value, class_default.unwrap_or(base_default))
        }
    });
    hf.remove("_name_or_path");
}

/// Python `==` on JSON values (`same` also accepts dicts that agree on common keys).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b)),
        _ => same(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::{HfKey, HfType};

    fn json(text: &str) -> Map {
        Value::from_json_str(text).unwrap().as_map().unwrap().clone()
    }

    fn class() -> HfClass {
        HfClass::new(
            "TestConfig",
            vec![
                HfKey::new("hidden_size", HfType::Int, Value::Int(64)),
                HfKey::new("bos_token_id", HfType::Any, Value::Int(1)),
                HfKey::new("pad_token_id", HfType::Any, Value::Null),
                HfKey::new("tie_word_embeddings", HfType::Bool, Value::Bool(false)),
                HfKey::new("rope_scaling", HfType::Dict, Value::Null).only_in(HfLayout::V4),
                HfKey::new("window", HfType::Int, Value::Int(4096)).written_as(Fill::Value(Value::Null)),
                HfKey::new(
                    "ssm",
                    HfType::Dict,
                    Value::from_json_str(r#"{"a": 1, "b": 2}"#).unwrap(),
                )
                .filling_entries(),
            ],
        )
    }

    #[test]
    fn class_keys_are_filled_and_base_keys_diffed_per_version() {
        let mut v4 = json(r#"{"hidden_size": 8, "output_attentions": false, "dtype": "bfloat16", "ssm": {"a": 5}}"#);
        complete(&class(), &mut v4, HfLayout::V4);
        // pad_token_id and output_attentions are PretrainedConfig keys at their default in 4.57.
        assert_eq!(
            v4,
            json(
                r#"{"hidden_size": 8, "bos_token_id": 1, "tie_word_embeddings": false, "rope_scaling": null,
                    "window": null, "dtype": "bfloat16", "ssm": {"a": 5, "b": 2}}"#
            )
        );
        let mut v5 = json(r#"{"hidden_size": 8, "top_k": 50}"#);
        complete(&class(), &mut v5, HfLayout::V5);
        // In 5.24 the token ids are the class's own keys, always written; top_k is no base key.
        assert_eq!(
            v5,
            json(
                r#"{"hidden_size": 8, "bos_token_id": 1, "pad_token_id": null, "tie_word_embeddings": false,
                    "window": null, "ssm": {"a": 1, "b": 2}, "top_k": 50}"#
            )
        );
    }

    #[test]
    fn a_base_key_differing_from_the_class_default_is_kept() {
        let mut hf = json(r#"{"bos_token_id": null, "tie_word_embeddings": true}"#);
        complete(&class(), &mut hf, HfLayout::V4);
        assert_eq!(hf["bos_token_id"], Value::Null);
        assert_eq!(hf["tie_word_embeddings"], Value::Bool(true));
    }

    #[test]
    fn folded_keys_are_written_into_their_key_and_entries_rewritten() {
        fn fold(hf: &Map) -> Result<Value, String> {
            Ok(Value::Map(json(&format!(
                r#"{{"size": {}}}"#,
                hf.get("flat").map_or("null".into(), |v| v.to_json_compact())
            ))))
        }
        let class = HfClass::new(
            "TestConfig",
            vec![
                HfKey::new("nested", HfType::Dict, Value::Null)
                    .written_as(Fill::Derive(fold))
                    .folding(&["flat"]),
                HfKey::new("flat", HfType::Int, Value::Int(512)),
                HfKey::new("rope", HfType::Dict, Value::Null).rewriting_entry(
                    "type",
                    Value::Str("default".into()),
                    Value::Str("axial".into()),
                ),
            ],
        );
        let mut hf = json(r#"{"flat": 8, "rope": {"type": "default", "theta": 1.0}}"#);
        complete(&class, &mut hf, HfLayout::V5);
        assert_eq!(
            hf,
            json(r#"{"nested": {"size": 8}, "rope": {"type": "axial", "theta": 1.0}}"#)
        );
        // A present key is kept as it is; the folded key is still not written.
        let mut hf = json(r#"{"nested": {"size": 4}, "flat": 8, "rope": {"type": "yarn"}}"#);
        complete(&class, &mut hf, HfLayout::V5);
        assert_eq!(hf, json(r#"{"nested": {"size": 4}, "rope": {"type": "yarn"}}"#));
    }

    #[test]
    fn sub_configs_are_diffed_against_their_class_and_get_a_model_type() {
        fn choose(_: Option<&Map>) -> Result<HfClass, String> {
            Ok(class().with_model_type("test"))
        }
        let outer = HfClass::new("OuterConfig", vec![HfKey::sub_config("text_config", choose)]);
        let mut hf = json(r#"{"text_config": {"hidden_size": 8, "tie_word_embeddings": false, "bos_token_id": 3}}"#);
        complete(&outer, &mut hf, HfLayout::V4);
        assert_eq!(
            hf["text_config"],
            Value::Map(json(
                r#"{"hidden_size": 8, "bos_token_id": 3, "rope_scaling": null, "window": null,
                    "ssm": {"a": 1, "b": 2}, "model_type": "test"}"#
            ))
        );
    }
}
