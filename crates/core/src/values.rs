//! Short constructors for the values tables are full of (`int(1)`, `boolean(false)`, ...).

use fastllm_config::Value;

/// An int value.
pub fn int(i: i128) -> Value {
    Value::Int(i)
}

/// A float value.
pub fn float(f: f64) -> Value {
    Value::Float(f)
}

/// A bool value.
pub fn boolean(b: bool) -> Value {
    Value::Bool(b)
}

/// A string value.
pub fn text(s: &str) -> Value {
    Value::Str(s.to_string())
}
