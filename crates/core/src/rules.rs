//! Export rules many formats share (for [`crate::Section::validate`]): a Fast-LLM option the HF
//! format has no place for must be off.

use fastllm_config::Value;

use crate::Problem;
use crate::dict::show;
use crate::fl::{Checked, Fl, checked};

/// Each `<path>.enabled` of `paths` (optional parameters) must not be true; `why` completes the
/// message "enabled, but …".
pub fn not_enabled(
    paths: &'static [&'static str],
    why: &'static str,
) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| {
        let mut problems = Vec::new();
        for path in paths {
            problems.extend(enabled(fl, path, "enabled", why)?);
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
            problems.extend(enabled(fl, layer, "bias.enabled", why)?);
        }
        checked(problems)
    }
}

/// `path` must be unset (`null`); `why` completes the message "<value> set, but …".
pub fn unset(path: &'static str, why: &'static str) -> impl Fn(Fl) -> Checked + Send + Sync + 'static {
    move |fl| match fl.value(path)? {
        Value::Null => Ok(()),
        found => Err(vec![Problem::at_fast_llm(
            path,
            format!("{} set, but {why}", show(&found)),
        )]),
    }
}

/// The problem of a true `flag` in the config at `path`, if it is.
fn enabled(fl: Fl, path: &str, flag: &str, why: &str) -> Result<Option<Problem>, Problem> {
    let on = matches!(fl.value_in(path, flag)?, Value::Bool(true));
    Ok(on.then(|| Problem::at_fast_llm(format!("{path}.{flag}"), format!("enabled, but {why}"))))
}

#[cfg(test)]
mod tests {
    use fastllm_config::{AttentionConfig, load};

    use super::*;

    fn attention(json: &str) -> AttentionConfig {
        load(&Value::from_json_str(json).unwrap()).unwrap()
    }

    #[test]
    fn only_a_true_flag_is_refused() {
        let config =
            attention(r#"{"query_layer": {"bias": {"enabled": true}}, "key_layer": {"bias": {"enabled": false}}}"#);
        let fl = Fl::new(&config);
        let problems = no_biases(&["query_layer", "key_layer", "value_layer"], "the format has none")(fl).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].fast_llm.as_deref(), Some("query_layer.bias.enabled"));
        assert_eq!(problems[0].message, "enabled, but the format has none");
        assert!(not_enabled(&["key_layer.bias"], "no")(fl).is_ok());
    }

    #[test]
    fn a_set_value_is_refused_by_its_path() {
        let config = attention(r#"{"window_size": 512}"#);
        let fl = Fl::new(&config);
        let problems = unset("window_size", "the format has no window")(fl).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].fast_llm.as_deref(), Some("window_size"));
        assert_eq!(problems[0].message, "512 set, but the format has no window");
        assert!(unset("query_norm", "no")(fl).is_ok());
    }

    #[test]
    fn a_field_the_class_lacks_is_a_problem_naming_it() {
        let config = attention("{}");
        let problems = unset("absent", "no")(Fl::new(&config)).unwrap_err();
        assert_eq!(problems[0].fast_llm.as_deref(), Some("absent"));
        assert_eq!(
            problems[0].message,
            "AttentionConfig has no field `absent` (a declaration of this format reads it)"
        );
        let problems = no_biases(&["query_layr"], "no")(Fl::new(&config)).unwrap_err();
        assert_eq!(problems[0].fast_llm.as_deref(), Some("query_layr"));
    }
}
