//! Dotted-path access to config dicts, on both the Fast-LLM and the HF side.

use std::collections::btree_map::Entry;

use crate::{Map, Value};

/// Joins path parts with `.`, skipping empty ones.
pub fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{path}"),
    }
}

/// The value at a dotted path, if every step exists.
pub fn get<'a>(map: &'a Map, path: &str) -> Option<&'a Value> {
    let (mut map, mut rest) = (map, path);
    while let Some(dot) = find_dot(rest) {
        map = map.get(&rest[..dot])?.as_map()?;
        rest = &rest[dot + 1..];
    }
    map.get(rest)
}

/// Where the first `.` of `path` is. Config paths are a few tens of bytes: a plain scan costs
/// less than `str::split_once`'s searcher, which every read and write of a dict went through.
fn find_dot(path: &str) -> Option<usize> {
    path.bytes().position(|byte| byte == b'.')
}

/// The mapping at a dotted path (an empty path is `map` itself).
pub fn get_map<'a>(map: &'a Map, path: &str) -> Option<&'a Map> {
    if path.is_empty() {
        Some(map)
    } else {
        get(map, path)?.as_map()
    }
}

/// Sets a dotted path, creating intermediate dicts. If a different value is already there,
/// nothing is written and the old value is returned.
pub fn set(map: &mut Map, path: &str, value: Value) -> Result<(), Value> {
    try_set(map, path, value).map_err(|conflict| conflict.existing)
}

/// A write refused by [`try_set`]: the value in the way, and the one that was not written.
pub struct Conflict {
    /// The value already at the path (or the non-dict in its way).
    pub existing: Value,
    /// The value that was not written.
    pub refused: Value,
}

/// [`set`], handing the refused value back so a message can show both without a clone up front.
pub fn try_set(map: &mut Map, path: &str, value: Value) -> Result<(), Conflict> {
    // A plain scan: most paths have no dot, and `rsplit_once` costs a `memrchr` call each.
    let (parents, leaf) = match path.bytes().rposition(|byte| byte == b'.') {
        Some(dot) => (Some(&path[..dot]), &path[dot + 1..]),
        None => (None, path),
    };
    let mut target = map;
    if let Some(parents) = parents {
        for part in parents.split('.') {
            if !target.contains_key(part) {
                target.insert(part.to_string(), Value::Map(Map::new()));
            }
            match target.get_mut(part) {
                Some(Value::Map(inner)) => target = inner,
                Some(other) => {
                    return Err(Conflict {
                        existing: other.clone(),
                        refused: value,
                    });
                }
                None => unreachable!("inserted above"),
            }
        }
    }
    // Most writes are of new keys: one search, and the key allocated once.
    match target.entry(leaf.to_string()) {
        Entry::Occupied(existing) if !same(existing.get(), &value) => Err(Conflict {
            existing: existing.get().clone(),
            refused: value,
        }),
        Entry::Occupied(mut existing) => {
            // Merge dicts written in parts by several declarations.
            if let (Value::Map(old), Value::Map(new)) = (existing.get_mut(), value) {
                for (k, v) in new {
                    old.entry(k).or_insert(v);
                }
            }
            Ok(())
        }
        Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
    }
}

/// Value equality with Python's number semantics (`1 == 1.0`, but `True != 1`) and dicts that
/// agree on their common keys (partial writes of one sub-dict).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => *i as f64 == *f,
        (Value::Map(x), Value::Map(y)) => x.iter().all(|(k, v)| y.get(k).is_none_or(|w| same(v, w))),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        _ => a == b,
    }
}

/// A short rendering of a value for messages.
pub fn show(value: &Value) -> String {
    match value {
        Value::Map(_) | Value::List(_) => {
            let text = value.to_json_compact();
            match text.char_indices().nth(120) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map {
        Value::from_json_str(json).unwrap().as_map().unwrap().clone()
    }

    #[test]
    fn paths() {
        let m = map(r#"{"a": {"b": {"c": 1}}, "x": 2}"#);
        assert_eq!(get(&m, "a.b.c"), Some(&Value::Int(1)));
        assert_eq!(get(&m, "a.q"), None);
        assert_eq!(get(&m, "x.y"), None);
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("a", "b"), "a.b");
    }

    #[test]
    fn safe_set() {
        let mut m = Map::new();
        assert!(set(&mut m, "a.b", Value::Int(1)).is_ok());
        assert!(set(&mut m, "a.b", Value::Float(1.0)).is_ok(), "1 == 1.0");
        assert_eq!(set(&mut m, "a.b", Value::Int(2)), Err(Value::Int(1)));
        assert_eq!(
            set(&mut m, "a.b.c", Value::Int(2)),
            Err(Value::Int(1)),
            "cannot descend into a scalar"
        );
        assert!(set(&mut m, "a", map(r#"{"c": 3}"#).into_value()).is_ok(), "dicts merge");
        assert_eq!(get(&m, "a.c"), Some(&Value::Int(3)));
        assert!(!same(&Value::Bool(true), &Value::Int(1)));
    }

    trait IntoValue {
        fn into_value(self) -> Value;
    }
    impl IntoValue for Map {
        fn into_value(self) -> Value {
            Value::Map(self)
        }
    }
}
