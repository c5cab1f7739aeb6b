//! The dict layer: a JSON/YAML value that keeps Python's int/float distinction and big ints.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A mapping with string keys. Sorted, as PyYAML and `json.dumps(sort_keys=True)` write them.
pub type Map = BTreeMap<String, Value>;

/// A config dict value as Python's `json`/PyYAML would produce it.
///
/// Ints and floats stay distinct (`500000.0` is a float, `8` an int), and ints are 128-bit so
/// Fast-LLM's 30-digit `seed_shift` survives a round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Map),
}

/// Why a document could not be read into a [`Value`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("number `{0}` is out of range (ints must fit in 128 bits, floats must be finite)")]
    Number(String),
    #[error("the document is a {0}, expected a mapping")]
    NotAMapping(&'static str),
    /// The parsed value would outgrow its text's budget ([`crate::budget`]).
    #[error(
        "{} the parsed document past {limit} bytes of memory ({} per byte of its {text} bytes of text, plus {})",
        if *.by_alias { "expanding this alias would take" } else { "this value would take" },
        crate::budget::BYTES_PER_TEXT_BYTE,
        crate::budget::FLOOR_BYTES
    )]
    TooLarge { limit: usize, text: usize, by_alias: bool },
    /// A problem inside the document, at a dotted key path (list items by index).
    #[error("at `{path}`: {error}")]
    At { path: String, error: Box<ParseError> },
}

impl ParseError {
    /// The error, one level deeper: inside the value of `key` (or list index).
    pub fn at(self, key: &str) -> ParseError {
        match self {
            ParseError::At { path, error } => ParseError::At {
                path: format!("{key}.{path}"),
                error,
            },
            error => ParseError::At {
                path: key.to_string(),
                error: Box::new(error),
            },
        }
    }

    /// The dotted key path the error is at, if it is inside the document.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::At { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl Value {
    /// A short description for error messages: the Python type name and, for scalars, the value.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::Float(f) => format!("float {}", FloatRepr(*f)),
            Value::Str(s) => format!("str {s:?}"),
            Value::List(_) => "list".to_string(),
            Value::Map(_) => "dict".to_string(),
        }
    }

    /// The Python type name of this value.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Map(_) => "dict",
        }
    }

    /// The mapping inside, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Parses a JSON document, keeping int/float identity and exact big ints.
    pub fn from_json_str(text: &str) -> Result<Value, ParseError> {
        crate::json::load(text)
    }

    /// Parses a YAML document as PyYAML's `safe_load` resolves it (YAML 1.1 core scalars).
    pub fn from_yaml_str(text: &str) -> Result<Value, ParseError> {
        crate::yaml::load(text)
    }

    /// Pretty JSON with two-space indentation and sorted keys.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Value always serializes to JSON")
    }

    /// Compact one-line JSON.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).expect("a Value always serializes to JSON")
    }

    /// YAML that PyYAML's `safe_load` reads back to the same values: block style, with lists of
    /// scalars (and empty collections) and everything nested deeper than [`BLOCK_DEPTH`] in flow
    /// style (`[1, 2]`, `{a: 1}`), so no line is indented by more than twice that.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&Styled { value: self, depth: 0 }).expect("a Value always serializes to YAML")
    }
}

/// Collections nested deeper than this are written in flow style by [`Value::to_yaml`]: block
/// style indents each line by its depth, which made a deep document many times its JSON size.
pub const BLOCK_DEPTH: usize = 10;

/// A value at `depth`, serialized in the style [`Value::to_yaml`] chooses for it.
struct Styled<'a> {
    value: &'a Value,
    depth: usize,
}

impl Serialize for Styled<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let inner = |value| Styled {
            value,
            depth: self.depth + 1,
        };
        match self.value {
            Value::List(items) if self.depth >= BLOCK_DEPTH || items.iter().all(is_leaf) => {
                serde_saphyr::FlowSeq(items).serialize(serializer)
            }
            Value::Map(map) if self.depth >= BLOCK_DEPTH => serde_saphyr::FlowMap(map).serialize(serializer),
            Value::List(items) => serializer.collect_seq(items.iter().map(inner)),
            Value::Map(map) => serializer.collect_map(map.iter().map(|(key, value)| (key, inner(value)))),
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Whether `value` holds no other value: a scalar or an empty collection.
fn is_leaf(value: &Value) -> bool {
    match value {
        Value::List(items) => items.is_empty(),
        Value::Map(map) => map.is_empty(),
        _ => true,
    }
}

/// Formats a float the way Python's `repr` does closely enough for messages.
struct FloatRepr(f64);

impl fmt::Display for FloatRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Python's `json` rule: a number token without `.`, `e` or `E` is an int.
pub(crate) fn parse_number(text: &str) -> Result<Value, ParseError> {
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(ParseError::Number(text.to_string())),
        }
    } else {
        text.parse::<i128>()
            .map(Value::Int)
            .map_err(|_| ParseError::Number(text.to_string()))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => match i64::try_from(*i) {
                Ok(small) => serializer.serialize_i64(small),
                Err(_) => serializer.serialize_i128(*i),
            },
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(k, v)?;
                }
                out.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a config value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 128 bits")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, value)) = access.next_entry::<Value, Value>()? {
            let key = match key {
                Value::Str(s) => s,
                // Config keys are strings; YAML may spell a key as a number or bool.
                other => {
                    return Err(de::Error::custom(format!(
                        "mapping key must be a string, found {}",
                        other.describe()
                    )));
                }
            };
            if map.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
        }
        Ok(Value::Map(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("8", Value::Int(8))]
    #[case("8.0", Value::Float(8.0))]
    #[case("1e-05", Value::Float(1e-5))]
    #[case("500000.0", Value::Float(500000.0))]
    #[case("501974169931277706872159392843", Value::Int(501974169931277706872159392843))]
    #[case("-3", Value::Int(-3))]
    fn json_numbers_keep_their_identity(#[case] text: &str, #[case] expected: Value) {
        assert_eq!(Value::from_json_str(text).unwrap(), expected);
    }

    #[rstest]
    #[case(Value::Int(8), "8")]
    #[case(Value::Float(8.0), "8.0")]
    #[case(Value::Float(1e-5), "0.00001")]
    #[case(Value::Float(1.5e-300), "1.5e-300")]
    #[case(Value::Int(501974169931277706872159392843), "501974169931277706872159392843")]
    fn json_numbers_are_written_back_exactly(#[case] value: Value, #[case] text: &str) {
        assert_eq!(value.to_json_pretty(), text);
        assert_eq!(Value::from_json_str(text).unwrap(), value);
    }

    #[test]
    fn huge_ints_are_an_error_not_a_float() {
        let text = "1".repeat(60);
        assert!(matches!(Value::from_json_str(&text), Err(ParseError::Number(_))));
    }

    #[test]
    fn duplicate_yaml_keys_are_rejected() {
        assert!(Value::from_yaml_str("a: 1\na: 2\n").is_err());
    }
}
