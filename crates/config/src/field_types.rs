//! `FieldType` for the value types fields hold, with Fast-LLM's strict type rules.

use std::collections::BTreeMap;

use crate::{Ctx, ErrorKind, Field, FieldType, Prior, Serialized, Unwritable, Value, Verbosity, split_path};

/// Reports `found` as not of the kind `expected`: the parse reads nothing.
fn wrong_type<T>(ctx: &mut Ctx, expected: &'static str, found: &Value) -> Option<T> {
    ctx.error(ErrorKind::WrongType {
        expected,
        found: found.describe(),
    });
    None
}

impl FieldType for i64 {
    const KIND: &'static str = "int";
    const SERIALIZES_AS_READ: bool = true;
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Int(i) => match i64::try_from(*i) {
                Ok(v) => Some(v),
                Err(_) => {
                    ctx.rule(format!("int {i} is out of range"));
                    None
                }
            },
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(Value::Int((*self).into()))
    }
}

impl FieldType for i128 {
    const KIND: &'static str = "int";
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i),
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(Value::Int(*self))
    }
}

impl FieldType for f64 {
    const KIND: &'static str = "float";
    const SERIALIZES_AS_READ: bool = true;
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Float(f) => Some(*f),
            // Fast-LLM converts ints to floats for float fields (and only ints: not bools).
            Value::Int(i) => Some(*i as f64),
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(Value::Float(*self))
    }
}

impl FieldType for bool {
    const KIND: &'static str = "bool";
    const SERIALIZES_AS_READ: bool = true;
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(*b),
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(Value::Bool(*self))
    }
}

impl FieldType for String {
    const KIND: &'static str = "str";
    const SERIALIZES_AS_READ: bool = true;
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Str(s) => Some(s.clone()),
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(Value::Str(self.clone()))
    }
}

/// A slot for a config a write makes present, and what it holds: its default, else a
/// placeholder the write replaces ([`FieldType::write_slot`]).
// Inlined, so a block's default (kilobytes) is built where it is moved to, not copied out.
#[inline]
fn unwritten_slot<T: FieldType>() -> Result<(T, Prior), Unwritable> {
    match T::default_slot() {
        Some(default) => Ok((default, Prior::Pristine)),
        None => T::write_slot().map(|slot| (slot, Prior::Fresh)).ok_or(Unwritable),
    }
}

/// `X | None`: `null` is `None`; otherwise `X`, and an empty string that `X` rejects is `None`
/// (Fast-LLM's `NoneType` check accepts `""`).
impl<T: FieldType> FieldType for Option<T> {
    const KIND: &'static str = T::KIND;
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        if matches!(value, Value::Null) {
            return Some(None);
        }
        if matches!(value, Value::Str(s) if s.is_empty()) {
            let mut probe = Ctx::new();
            return Some(T::parse(value, &mut probe).filter(|_| probe.error_count() == 0));
        }
        T::parse(value, ctx).map(Some)
    }
    // A write below an absent config makes it present, from its default, as the dict's parse
    // of the one key below it would.
    fn write(&mut self, path: &str, value: &Value, prior: Prior, ctx: &mut Ctx) -> Result<(), Unwritable> {
        if path.is_empty() {
            return match (prior, self.as_mut()) {
                // A second write of a value held: compared as the value's type compares it.
                (Prior::Written, Some(inner)) if T::SERIALIZES_AS_READ => inner.write("", value, prior, ctx),
                (Prior::Written, _) => Err(Unwritable),
                _ => crate::write_whole(self, value, ctx),
            };
        }
        match (prior, self.as_mut()) {
            (Prior::Written, Some(inner)) => inner.write(path, value, Prior::Written, ctx),
            (Prior::Written, None) => Err(Unwritable),
            (Prior::Pristine | Prior::Fresh, _) => {
                let (slot, prior) = unwritten_slot::<T>()?;
                self.insert(slot).write(path, value, prior, ctx)
            }
        }
    }
    fn lacks_required(&self) -> bool {
        self.as_ref().is_some_and(T::lacks_required)
    }
    fn slot_at(&mut self, path: &str) -> Option<&mut dyn crate::WriteSlot> {
        if path.is_empty() {
            return Some(self);
        }
        self.as_mut()?.slot_at(path)
    }
    fn serialize(&self, verbosity: Verbosity) -> Serialized {
        match self {
            Some(inner) => inner.serialize(verbosity),
            None => Serialized::Scalar(Value::Null),
        }
    }
    fn walk(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let Some(inner) = self {
            inner.walk(path, out);
        }
    }
    fn validate(&mut self, ctx: &mut Ctx) {
        if let Some(inner) = self {
            inner.validate(ctx);
        }
    }
    fn reflect(&self) -> Field<'_> {
        match self {
            Some(inner) => inner.reflect(),
            None => Field::Value(Value::Null),
        }
    }
}

impl<T: FieldType> FieldType for Vec<T> {
    const KIND: &'static str = "list";
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        let Value::List(items) = value else {
            return wrong_type(ctx, Self::KIND, value);
        };
        let errors = ctx.error_count();
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| ctx.at(i.to_string(), |ctx| T::parse(item, ctx)))
            .collect();
        if ctx.error_count() > errors {
            return None;
        }
        parsed.into_iter().collect()
    }
    fn serialize(&self, verbosity: Verbosity) -> Serialized {
        Serialized::Seq(
            self.iter()
                .filter_map(|item| item.serialize(verbosity).into_element())
                .collect(),
        )
    }
    fn walk(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (i, item) in self.iter().enumerate() {
            path.push(i.to_string());
            item.walk(path, out);
            path.pop();
        }
    }
    fn validate(&mut self, ctx: &mut Ctx) {
        for (i, item) in self.iter_mut().enumerate() {
            ctx.at(i.to_string(), |ctx| item.validate(ctx));
        }
    }
}

/// A fixed-length tuple (`tuple[float, float, float]`): a list of exactly `N` entries.
impl<T: FieldType + Copy + Default, const N: usize> FieldType for [T; N] {
    const KIND: &'static str = "tuple";
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        let Value::List(items) = value else {
            return wrong_type(ctx, Self::KIND, value);
        };
        if items.len() != N {
            ctx.rule(format!("invalid length {} (expected {N})", items.len()));
            return None;
        }
        let mut out = [T::default(); N];
        for (i, item) in items.iter().enumerate() {
            out[i] = ctx.at(i.to_string(), |ctx| T::parse(item, ctx))?;
        }
        Some(out)
    }
    fn serialize(&self, verbosity: Verbosity) -> Serialized {
        Serialized::Seq(
            self.iter()
                .filter_map(|item| item.serialize(verbosity).into_element())
                .collect(),
        )
    }
}

/// `dict[str, T]`: kept sorted by key, as Fast-LLM re-orders dicts during validation.
impl<T: FieldType> FieldType for BTreeMap<String, T> {
    const KIND: &'static str = "dict";
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        let Value::Map(map) = value else {
            return wrong_type(ctx, Self::KIND, value);
        };
        let errors = ctx.error_count();
        let mut out = BTreeMap::new();
        for (key, item) in map {
            match T::default_slot() {
                Some(default) => {
                    let slot = out.entry(key.clone()).or_insert(default);
                    if !ctx.at(key.as_str(), |ctx| T::parse_default_into(slot, item, ctx)) {
                        out.remove(key);
                    }
                }
                None => {
                    if let Some(parsed) = ctx.at(key.as_str(), |ctx| T::parse(item, ctx)) {
                        out.insert(key.clone(), parsed);
                    }
                }
            }
        }
        (ctx.error_count() == errors).then_some(out)
    }
    fn write_slot() -> Option<Self> {
        Some(BTreeMap::new())
    }
    const HAS_WRITE_SLOT: bool = true;
    fn slot_at(&mut self, path: &str) -> Option<&mut dyn crate::WriteSlot> {
        if path.is_empty() {
            return Some(self);
        }
        let (key, rest) = split_path(path);
        self.get_mut(key)?.slot_at(rest)
    }
    // A write below an entry adds the entry (from its default) or writes into it.
    fn write(&mut self, path: &str, value: &Value, prior: Prior, ctx: &mut Ctx) -> Result<(), Unwritable> {
        if path.is_empty() {
            if prior == Prior::Written {
                return Err(Unwritable);
            }
            return crate::write_whole(self, value, ctx);
        }
        if prior == Prior::Fresh {
            self.clear();
        }
        let (key, rest) = split_path(path);
        if let Some(entry) = self.get_mut(key) {
            return entry.write(rest, value, Prior::Written, ctx);
        }
        debug_assert_eq!(T::HAS_WRITE_SLOT, T::write_slot().is_some(), "{}", T::KIND);
        if rest.is_empty() && !T::HAS_WRITE_SLOT {
            let parsed = T::parse(value, ctx).ok_or(Unwritable)?;
            self.insert(key.to_string(), parsed);
            return if ctx.error_count() == 0 {
                Ok(())
            } else {
                Err(Unwritable)
            };
        }
        let (slot, prior) = unwritten_slot::<T>()?;
        self.insert(key.to_string(), slot);
        let entry = self.get_mut(key).ok_or(Unwritable)?;
        entry.write(rest, value, prior, ctx)
    }
    fn lacks_required(&self) -> bool {
        self.values().any(T::lacks_required)
    }
    fn serialize(&self, verbosity: Verbosity) -> Serialized {
        Serialized::Dict(
            self.iter()
                .filter_map(|(key, item)| item.serialize(verbosity).into_element().map(|v| (key.clone(), v)))
                .collect(),
        )
    }
    fn walk(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (key, item) in self {
            path.push(key.clone());
            item.walk(path, out);
            path.pop();
        }
    }
    fn validate(&mut self, ctx: &mut Ctx) {
        for (key, item) in self.iter_mut() {
            ctx.at(key.as_str(), |ctx| item.validate(ctx));
        }
    }
    fn reflect(&self) -> Field<'_> {
        if !T::IS_CONFIG {
            return Field::Value(
                self.serialize(Verbosity::EVERYTHING)
                    .into_element()
                    .unwrap_or(Value::Null),
            );
        }
        Field::Configs(
            (self.iter())
                .filter_map(|(key, item)| Some((key.as_str(), item.as_config()?)))
                .collect(),
        )
    }
}

/// `ParameterConfig.weight_decay: float | bool | None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightDecay {
    Float(f64),
    Bool(bool),
}

impl FieldType for WeightDecay {
    const KIND: &'static str = "float | bool";
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self> {
        match value {
            Value::Float(f) => Some(WeightDecay::Float(*f)),
            Value::Int(i) => Some(WeightDecay::Float(*i as f64)),
            Value::Bool(b) => Some(WeightDecay::Bool(*b)),
            other => wrong_type(ctx, Self::KIND, other),
        }
    }
    fn serialize(&self, _: Verbosity) -> Serialized {
        Serialized::Scalar(match self {
            WeightDecay::Float(f) => Value::Float(*f),
            WeightDecay::Bool(b) => Value::Bool(*b),
        })
    }
}

/// Declares a string enum (Fast-LLM `StrEnum`): read from and written as its value strings.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value string, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($value),+];

            /// The serialized value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value),+ }
            }

            /// The member with value `s`.
            pub fn from_value(s: &str) -> Option<Self> {
                match s { $($value => Some(Self::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::FieldType for $name {
            const KIND: &'static str = stringify!($name);
            fn parse(value: &$crate::Value, ctx: &mut $crate::Ctx) -> Option<Self> {
                match value {
                    $crate::Value::Str(s) => match Self::from_value(s) {
                        Some(v) => Some(v),
                        None => {
                            ctx.rule(format!(
                                "`{s}` is not a valid {} (expected one of: {})",
                                stringify!($name),
                                Self::VALUES.join(", ")
                            ));
                            None
                        }
                    },
                    other => {
                        ctx.error($crate::ErrorKind::WrongType { expected: stringify!($name), found: other.describe() });
                        None
                    }
                }
            }
            fn serialize(&self, _: $crate::Verbosity) -> $crate::Serialized {
                $crate::Serialized::Scalar($crate::Value::Str(self.as_str().to_string()))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse<T: FieldType>(value: Value) -> Result<T, String> {
        let mut ctx = Ctx::new();
        let out = T::parse(&value, &mut ctx);
        match (out, ctx.finish(())) {
            (Some(v), Ok(())) => Ok(v),
            (_, Err(e)) => Err(e.to_string()),
            (None, Ok(())) => Err("no value".into()),
        }
    }

    #[rstest]
    #[case(Value::Int(3), Ok(3))]
    #[case(Value::Bool(true), Err(()))]
    #[case(Value::Float(3.0), Err(()))]
    #[case(Value::Str("3".into()), Err(()))]
    fn ints_are_strict(#[case] value: Value, #[case] expected: Result<i64, ()>) {
        assert_eq!(parse::<i64>(value).map_err(|_| ()), expected);
    }

    #[rstest]
    #[case(Value::Int(3), Ok(3.0))]
    #[case(Value::Float(0.5), Ok(0.5))]
    #[case(Value::Bool(false), Err(()))]
    fn floats_accept_ints_only(#[case] value: Value, #[case] expected: Result<f64, ()>) {
        assert_eq!(parse::<f64>(value).map_err(|_| ()), expected);
    }

    #[rstest]
    #[case(Value::Null, Ok(None))]
    #[case(Value::Str(String::new()), Ok(None))]
    #[case(Value::Int(4), Ok(Some(4)))]
    #[case(Value::Str("x".into()), Err(()))]
    fn options_take_null_and_empty_string(#[case] value: Value, #[case] expected: Result<Option<i64>, ()>) {
        assert_eq!(parse::<Option<i64>>(value).map_err(|_| ()), expected);
    }

    #[test]
    fn tuples_need_their_length() {
        assert!(parse::<[f64; 3]>(Value::List(vec![Value::Int(1), Value::Int(2)])).is_err());
        assert_eq!(
            parse::<[f64; 3]>(Value::List(vec![Value::Int(1), Value::Float(2.5), Value::Int(3)])),
            Ok([1.0, 2.5, 3.0])
        );
    }

    #[test]
    fn weight_decay_is_float_or_bool() {
        assert_eq!(parse::<WeightDecay>(Value::Int(1)), Ok(WeightDecay::Float(1.0)));
        assert_eq!(parse::<WeightDecay>(Value::Bool(true)), Ok(WeightDecay::Bool(true)));
        assert!(parse::<WeightDecay>(Value::Str("x".into())).is_err());
    }

    #[test]
    fn list_errors_name_the_index() {
        let err = parse::<Vec<i64>>(Value::List(vec![Value::Int(1), Value::Str("2".into())])).unwrap_err();
        assert!(err.contains("`1`"), "{err}");
    }
}
