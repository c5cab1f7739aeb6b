//! Export rules many formats share (for [`crate::Section::validate`]): a Fast-LLM option the HF
//! format has no place for must be off.

use fastllm_config::{Map, Value};

use crate::Problem;
use crate::dict::show;
use crate::section::fl_value;

/// Each `<path>.enabled` of `paths` (optional parameters) must not be true; `why` completes the
/// message "enabled, but …".
pub fn not_enabled(
    paths: &'static [&'static str],
    why: &'static str,
) -> impl Fn(&Map) -> Vec<Problem> + Send + Sync + 'static {
    move |fl| {
        paths
            .iter()
            .filter_map(|path| enabled(fl, format!("{path}.enabled"), why))
            .collect()
    }
}

/// No layer of `layers` may enable its bias (`<layer>.bias.enabled`); `why` completes the
/// message "enabled, but …".
pub fn no_biases(
    layers: &'static [&'static str],
    why: &'static str,
) -> impl Fn(&Map) -> Vec<Problem> + Send + Sync + 'static {
    move |fl| {
        (layers.iter())
            .filter_map(|layer| enabled(fl, format!("{layer}.bias.enabled"), why))
            .collect()
    }
}

/// `path` must be unset (`null`); `why` completes the message "<value> set, but …".
pub fn unset(path: &'static str, why: &'static str) -> impl Fn(&Map) -> Vec<Problem> + Send + Sync + 'static {
    move |fl| match fl_value(fl, path) {
        Value::Null => vec![],
        found => vec![Problem::at_fast_llm(path, format!("{} set, but {why}", show(found)))],
    }
}

fn enabled(fl: &Map, path: String, why: &str) -> Option<Problem> {
    matches!(fl_value(fl, &path), Value::Bool(true)).then(|| Problem::at_fast_llm(path, format!("enabled, but {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_true_flag_is_refused() {
        let fl = Value::from_json_str(r#"{"a": {"bias": {"enabled": true}}, "b": {"bias": {"enabled": false}}}"#)
            .unwrap()
            .as_map()
            .unwrap()
            .clone();
        let problems = no_biases(&["a", "b", "c"], "the format has none")(&fl);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].fast_llm.as_deref(), Some("a.bias.enabled"));
        assert_eq!(problems[0].message, "enabled, but the format has none");
        assert!(not_enabled(&["b.bias"], "no")(&fl).is_empty());
    }

    #[test]
    fn a_set_value_is_refused_by_its_path() {
        let fl = Value::from_json_str(r#"{"window_size": 512, "other": null}"#)
            .unwrap()
            .as_map()
            .unwrap()
            .clone();
        let problems = unset("window_size", "the format has no window")(&fl);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].fast_llm.as_deref(), Some("window_size"));
        assert_eq!(problems[0].message, "512 set, but the format has no window");
        assert!(unset("other", "no")(&fl).is_empty());
        assert!(unset("absent", "no")(&fl).is_empty());
    }
}
