//! Export rules many formats share (for [`crate::Section::validate`]): a Fast-LLM option the HF
//! format has no place for must be off; and [`token_embeddings`], the table of embeddings
//! such a format holds.

use fastllm_config::{AttentionConfig, LanguageModelEmbeddingsConfig, PatchEmbeddingsConfig, PeftConfig, Value};

use std::fmt::Display;

use fastllm_config::FieldType;

use crate::dict::show;
use crate::field::{ConfigField, FieldPath};
use crate::fl::{Checked, Fl, checked};
use crate::section::{Decl, Section};
use crate::{Problem, field};

/// Each optional parameter of `paths` must not be enabled (`<path>.enabled` true); `why`
/// completes the message "enabled, but …".
pub fn not_enabled(
    paths: &'static [&'static str],
    why: &'static str,
) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| {
        let mut problems = Vec::new();
        for path in paths {
            problems.extend(refused(fl.parameter_enabled(path)?, path, "enabled", why));
        }
        checked(problems)
    }
}

/// No layer of `layers` may enable its bias (`<layer>.bias.enabled`); `why` completes the
/// message "enabled, but …".
pub fn no_biases(layers: &'static [&'static str], why: &'static str) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| {
        let mut problems = Vec::new();
        for layer in layers {
            problems.extend(refused(fl.bias_enabled(layer)?, layer, "bias.enabled", why));
        }
        checked(problems)
    }
}

/// The attention's `window_size` must be unset; `why` completes the message "<size> set, but …".
pub fn no_window(why: &'static str) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| match fl.config::<AttentionConfig>()?.window_size {
        None => Ok(()),
        Some(size) => Err(vec![Problem::at_fast_llm(
            "window_size",
            format!("{} set, but {why}", show(&Value::Int(size.into()))),
        )]),
    }
}

/// The two fields `first` and `second` of the section's config must hold the same value; `why`
/// completes the message "<second's value> differs from <first's path> <first's value>: …",
/// at `second`'s path.
pub fn equal_fields<C: FieldType + 'static, T: Copy + PartialEq + Display + 'static>(
    first: FieldPath<C, T>,
    second: FieldPath<C, T>,
    why: &'static str,
) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| {
        let (expected, found) = (first.read(fl)?, second.read(fl)?);
        if found == expected {
            return Ok(());
        }
        Err(vec![Problem::at_fast_llm(
            second.path(),
            format!("{found} differs from {} {expected}: {why}", first.path()),
        )])
    }
}

/// Patch embeddings whose `patch_width` differs from `patch_height`, for a format whose patches
/// are square (one `patch_size`); `why` completes the message "<width> differs from patch_height
/// <height>: …".
pub fn square_patches(why: &'static str) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    equal_fields(
        field!(PatchEmbeddingsConfig.patch_height),
        field!(PatchEmbeddingsConfig.patch_width),
        why,
    )
}

/// No PEFT on the root (an HF config has no place for adapters).
pub fn no_peft(fl: Fl) -> Checked {
    match fl.text_model()?.peft {
        PeftConfig::None(_) => Ok(()),
        found => Err(vec![Problem::at_fast_llm(
            "peft.type",
            format!(
                "PEFT {} has no HF form (merge adapters first)",
                show(&Value::Str(found.type_name().into()))
            ),
        )]),
    }
}

/// The table `name` of token embeddings that an HF format holds as `vocab_size` alone: no
/// position embeddings (refused when enabled; `why` completes the message "enabled, but …"),
/// nothing of the word embeddings' parameter settings. A format adds its `embedding_scale`.
pub fn token_embeddings(name: &'static str, why: &'static str) -> Section {
    Section::of::<LanguageModelEmbeddingsConfig>(name)
        .same("vocab_size")
        .ignore(&["word_embeddings"])
        .add(
            "position_embeddings",
            Decl::ignored(&["position_embeddings", "num_position_embeddings"]),
        )
        .validate("position_embeddings", not_enabled(&["position_embeddings"], why))
}

/// The problem of a flag `flag` of the config at `path` that is on, if it is.
fn refused(enabled: Option<bool>, path: &str, flag: &str, why: &str) -> Option<Problem> {
    (enabled == Some(true)).then(|| Problem::at_fast_llm(format!("{path}.{flag}"), format!("enabled, but {why}")))
}

#[cfg(test)]
mod tests {
    use fastllm_config::{AttentionConfig, ConfigClass, load};

    use super::*;

    fn config<T: ConfigClass>(json: &str) -> T {
        load(&Value::from_json_str(json).unwrap()).unwrap()
    }

    fn attention(json: &str) -> AttentionConfig {
        config(json)
    }

    /// `problem` is at Fast-LLM path `path` and says `message`.
    fn assert_problem(problem: &Problem, path: &str, message: &str) {
        assert_eq!(
            (problem.fast_llm.as_deref(), problem.message.as_str()),
            (Some(path), message)
        );
    }

    #[test]
    fn only_a_true_flag_is_refused() {
        let config =
            attention(r#"{"query_layer": {"bias": {"enabled": true}}, "key_layer": {"bias": {"enabled": false}}}"#);
        let fl = Fl::new(&config);
        let problems = no_biases(&["query_layer", "key_layer", "value_layer"], "the format has none")(fl).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_problem(
            &problems[0],
            "query_layer.bias.enabled",
            "enabled, but the format has none",
        );
        assert!(not_enabled(&["key_layer.bias"], "no")(fl).is_ok());
    }

    #[test]
    fn peft_is_refused_by_its_type() {
        let root = config::<fastllm_config::GptBaseModelConfig>;
        assert!(no_peft(Fl::new(&root("{}"))).is_ok());
        let problems = no_peft(Fl::new(&root(r#"{"peft": {"type": "lora"}}"#))).unwrap_err();
        assert_problem(
            &problems[0],
            "peft.type",
            r#"PEFT "lora" has no HF form (merge adapters first)"#,
        );
    }

    #[test]
    fn token_embeddings_refuse_position_embeddings() {
        let embeddings = config::<LanguageModelEmbeddingsConfig>;
        let table = token_embeddings("test.embeddings", "no such thing");
        let enabled = embeddings(r#"{"position_embeddings": {"enabled": true}}"#);
        let problems: Vec<Problem> = (table.validators.iter())
            .filter_map(|(_, v)| v(Fl::new(&enabled)).err())
            .flatten()
            .collect();
        assert_eq!(problems.len(), 1);
        assert_problem(
            &problems[0],
            "position_embeddings.enabled",
            "enabled, but no such thing",
        );
    }

    #[test]
    fn patches_must_be_square() {
        let patches = config::<PatchEmbeddingsConfig>;
        let rule = square_patches("they are square");
        assert!(rule(Fl::new(&patches(r#"{"patch_height": 8, "patch_width": 8}"#))).is_ok());
        let problems = rule(Fl::new(&patches(r#"{"patch_height": 8, "patch_width": 4}"#))).unwrap_err();
        assert_problem(
            &problems[0],
            "patch_width",
            "4 differs from patch_height 8: they are square",
        );
    }

    #[test]
    fn unequal_fields_are_refused_at_the_second() {
        let rule = equal_fields(
            field!(AttentionConfig.heads),
            field!(AttentionConfig.head_groups),
            "no grouped heads",
        );
        assert!(rule(Fl::new(&attention(r#"{"heads": 4, "head_groups": 4}"#))).is_ok());
        let problems = rule(Fl::new(&attention(r#"{"heads": 4, "head_groups": 2}"#))).unwrap_err();
        assert_problem(&problems[0], "head_groups", "2 differs from heads 4: no grouped heads");
        let problems = rule(Fl::new(&config::<PatchEmbeddingsConfig>("{}"))).unwrap_err();
        assert_problem(
            &problems[0],
            "",
            "expected a AttentionConfig, found a PatchEmbeddingsConfig",
        );
    }

    #[test]
    fn a_set_value_is_refused_by_its_path() {
        let config = attention(r#"{"window_size": 512}"#);
        let fl = Fl::new(&config);
        let problems = no_window("the format has no window")(fl).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_problem(&problems[0], "window_size", "512 set, but the format has no window");
        assert!(no_window("no")(Fl::new(&attention("{}"))).is_ok());
    }

    #[test]
    fn a_field_the_class_lacks_is_a_problem_naming_it() {
        let config = attention("{}");
        let problems = not_enabled(&["absent"], "no")(Fl::new(&config)).unwrap_err();
        assert_problem(
            &problems[0],
            "absent",
            "AttentionConfig has no field `absent` (a declaration of this format reads it)",
        );
        let problems = no_biases(&["query_layr"], "no")(Fl::new(&config)).unwrap_err();
        assert_eq!(problems[0].fast_llm.as_deref(), Some("query_layr"));
    }

    #[test]
    fn a_config_of_another_class_is_a_problem_naming_its_path() {
        let config = attention("{}");
        let problems = not_enabled(&["query_layer"], "no")(Fl::new(&config)).unwrap_err();
        assert_problem(
            &problems[0],
            "query_layer",
            "expected a OptionalParameterConfig, found a AffineLinearConfig",
        );
        let problems = no_biases(&["rotary"], "no")(Fl::new(&config)).unwrap_err();
        assert_eq!(problems[0].fast_llm.as_deref(), Some("rotary.bias"));
        let problems = no_window("no")(Fl::new(&config.query_layer)).unwrap_err();
        assert_eq!(
            problems[0].message,
            "expected a AttentionConfig, found a AffineLinearConfig"
        );
    }
}
