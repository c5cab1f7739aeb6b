//! Reading JSON as Python's `json` does, straight into [`Value`]s: one pass, no intermediate
//! tree (a `serde_json::Value` first doubled the memory of a parse), every value charged to the
//! document's [`Budget`].

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::budget::{Budget, ITEM, Spent};
use crate::value::parse_number;
use crate::{Map, ParseError, Value};

/// How serde_json with `arbitrary_precision` hands a number to `deserialize_any`: a one-entry
/// map under this key, the number's text its value (as `serde_json::Number` reads it). The
/// version is pinned, and every number test fails if the token changes.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Parses one JSON document; a number or a budget overrun is named by its key path.
pub(crate) fn load(text: &str) -> Result<Value, ParseError> {
    let state = State {
        budget: RefCell::new(Budget::for_text(text.len())),
        failure: Cell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Node(&state)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        let path = crate::json_path::path_at(text, error.line(), error.column());
        let error = state.failure.take().unwrap_or(ParseError::Json(error));
        match path {
            Some(path) => ParseError::At {
                path,
                error: Box::new(error),
            },
            None => error,
        }
    })
}

struct State {
    budget: RefCell<Budget>,
    /// The typed error behind a serde error the visitor raised (serde_json adds the position).
    failure: Cell<Option<ParseError>>,
}

/// The seed and visitor of every value of a document.
#[derive(Clone, Copy)]
struct Node<'s>(&'s State);

impl Node<'_> {
    fn fail<E: de::Error>(self, error: ParseError) -> E {
        let message = error.to_string();
        self.0.failure.set(Some(error));
        E::custom(message)
    }

    fn spend<E: de::Error>(self, bytes: usize) -> Result<(), E> {
        self.0
            .budget
            .borrow_mut()
            .spend(bytes, Spent::Parsed)
            .map_err(|e| self.fail(e))
    }

    fn spend_entry<E: de::Error>(self, index: usize) -> Result<(), E> {
        self.0.budget.borrow_mut().spend_entry(index).map_err(|e| self.fail(e))
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    // Integers that fit 64 bits come as themselves; the others, and every float, as text.
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend(v.len())?;
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            self.spend(ITEM)?;
            items.push(item);
        }
        // Growth leaves up to twice the room; the value is kept for the whole conversion.
        items.shrink_to_fit();
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Value::Map(Map::new()));
        };
        if first == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return parse_number(&text).map_err(|e| self.fail(e));
        }
        let mut entries = Map::new();
        let mut next = Some(first);
        let mut index = 0;
        while let Some(key) = next {
            self.spend(key.len())?;
            self.spend_entry(index)?;
            let value = map.next_value_seed(self)?;
            // A repeated key keeps its last value, as Python's `json` does.
            entries.insert(key, value);
            index += 1;
            next = map.next_key()?;
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let Value::Map(map) = load(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap() else {
            panic!()
        };
        assert_eq!(map["a"], Value::Int(3));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn integers_and_floats_keep_their_identity_at_every_size() {
        let text = r#"[0, -0, 18446744073709551615, -9223372036854775808, 18446744073709551616, 1.0, 1e2]"#;
        let expected = [
            Value::Int(0),
            Value::Int(0),
            Value::Int(u64::MAX.into()),
            Value::Int(i64::MIN.into()),
            Value::Int(1 << 64),
            Value::Float(1.0),
            Value::Float(100.0),
        ];
        assert_eq!(load(text).unwrap(), Value::List(expected.to_vec()));
    }

    #[test]
    fn dense_small_maps_are_refused_by_their_key() {
        // Each `{"":0}` costs a whole B-tree node, about a hundred times its seven bytes.
        let text = format!(r#"{{"a": [{}]}}"#, vec![r#"{"":0}"#; 200_000].join(","));
        let error = load(&text).unwrap_err();
        assert!(
            matches!(&error, ParseError::At { error, .. } if matches!(**error, ParseError::TooLarge { .. })),
            "{error}"
        );
        assert!(error.path().is_some_and(|p| p.starts_with("a.")), "{error}");
    }
}
