//! The key path at a position of a JSON text, to name where a syntax error is (serde_json gives
//! a line and column; a user looks for a key). Python's `json` writes `NaN` and `Infinity`,
//! which JSON does not have, so a config.json can fail to parse at a value whose key matters.

/// Deepest path shown: a nesting bomb is named by its first keys, not by thousands of them.
const MAX_SEGMENTS: usize = 16;

enum Frame {
    /// An object: its current key, and whether the next string is a key.
    Object { key: Option<String>, expecting_key: bool },
    /// An array: the index of its current item.
    Array { index: usize },
}

/// The dotted key path (list items by index) of the value open at `line`:`column` (1-based,
/// columns in bytes, as serde_json reports them), if the position is inside an object or array.
pub(crate) fn path_at(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let end = (line_start + column.saturating_sub(1)).min(text.len());
    let bytes = &text.as_bytes()[..end];
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut()
                    && *expecting_key
                {
                    let raw = &bytes[start..i.min(bytes.len())];
                    *key = Some(String::from_utf8_lossy(raw).into_owned());
                    *expecting_key = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut segments: Vec<String> = Vec::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => segments.push(key.clone()),
            Frame::Object { key: None, .. } => break,
            Frame::Array { index } => segments.push(index.to_string()),
        }
    }
    if segments.is_empty() {
        return None;
    }
    let depth = segments.len();
    if depth > MAX_SEGMENTS {
        segments.truncate(MAX_SEGMENTS);
        segments.push(format!("… ({depth} levels)"));
    }
    Some(segments.join("."))
}

#[cfg(test)]
mod tests {
    use crate::{ParseError, Value};
    use rstest::rstest;

    #[rstest]
    #[case::nan("{\n  \"hidden_size\": 8,\n  \"rms_norm_eps\": NaN\n}", Some("rms_norm_eps"))]
    #[case::nested(
        "{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": Infinity}}",
        Some("rope_scaling.factor")
    )]
    #[case::in_list("{\"layer_types\": [\"a\", \"b\", nope]}", Some("layer_types.2"))]
    #[case::escaped_quote_in_key("{\"a\\\"b\": {\"c\": -}}", Some("a\\\"b.c"))]
    #[case::after_a_closed_object("{\"a\": {\"b\": 1}, \"c\": tru}", Some("c"))]
    #[case::top_level("nope", None)]
    #[case::key_itself_broken("{\"a\": 1, x}", None)]
    fn syntax_errors_name_their_key(#[case] text: &str, #[case] expected: Option<&str>) {
        let error = Value::from_json_str(text).unwrap_err();
        assert_eq!(error.path(), expected, "{error}");
        assert!(
            matches!(error, ParseError::Json(_)) || error.to_string().contains("invalid JSON"),
            "{error}"
        );
    }

    #[test]
    fn a_nesting_bomb_is_named_by_its_first_levels() {
        let text = format!("{{\"deep\": {}1{}}}", "[".repeat(1000), "]".repeat(1000));
        let error = Value::from_json_str(&text).unwrap_err();
        let path = error.path().unwrap();
        assert!(path.starts_with("deep.0.0") && path.ends_with("levels)"), "{path}");
    }

    #[test]
    fn out_of_range_numbers_name_their_key() {
        let error = Value::from_json_str(r#"{"a": {"b": [1, 1e999]}}"#).unwrap_err();
        assert_eq!(error.path(), Some("a.b.1"));
        let error =
            Value::from_yaml_str("config:\n  base_model:\n    head:\n      normalization:\n        epsilon: .inf\n")
                .unwrap_err();
        assert_eq!(error.path(), Some("config.base_model.head.normalization.epsilon"));
        assert!(error.to_string().contains(".inf"), "{error}");
    }
}
