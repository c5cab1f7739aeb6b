//! Reflection over config classes: field tables, explicitness, the dict forms and the walker.
//!
//! The traits here are implemented by `#[derive(Config)]`; the helpers are what the generated
//! code calls, so the rules of Fast-LLM's `to_dict` and `from_dict` live in one place.

use std::any::Any;
use std::fmt;

use crate::{Ctx, ErrorKind, Map, Value};

/// Fast-LLM's `FieldHint`: what a field means for the model, and how verbose a dict must be to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldHint {
    Core,
    Architecture,
    Optional,
    Feature,
    Performance,
    Stability,
    Unknown,
    Logging,
    Expert,
    Testing,
    Deprecated,
    Wip,
    Setup,
    Derived,
}

impl FieldHint {
    /// Fast-LLM's `FieldHintImportance`: a field is written at verbosity `v` if `v >= importance`.
    pub const fn importance(self) -> u32 {
        match self {
            FieldHint::Core | FieldHint::Architecture => 0,
            FieldHint::Optional | FieldHint::Feature => 10,
            FieldHint::Performance | FieldHint::Stability | FieldHint::Unknown => 20,
            FieldHint::Logging => 30,
            FieldHint::Expert | FieldHint::Testing => 40,
            FieldHint::Deprecated | FieldHint::Wip => 80,
            FieldHint::Setup => 90,
            FieldHint::Derived => 100,
        }
    }

    /// The lowercase name Fast-LLM uses.
    pub const fn name(self) -> &'static str {
        match self {
            FieldHint::Core => "core",
            FieldHint::Architecture => "architecture",
            FieldHint::Optional => "optional",
            FieldHint::Feature => "feature",
            FieldHint::Performance => "performance",
            FieldHint::Stability => "stability",
            FieldHint::Unknown => "unknown",
            FieldHint::Logging => "logging",
            FieldHint::Expert => "expert",
            FieldHint::Testing => "testing",
            FieldHint::Deprecated => "deprecated",
            FieldHint::Wip => "wip",
            FieldHint::Setup => "setup",
            FieldHint::Derived => "derived",
        }
    }
}

/// The `verbose` argument of Fast-LLM's `to_dict`: `None` writes explicit fields only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verbosity(pub Option<u32>);

impl Verbosity {
    pub const EXPLICIT: Verbosity = Verbosity(None);
    pub const CORE: Verbosity = Verbosity(Some(0));
    pub const EVERYTHING: Verbosity = Verbosity(Some(1 << 31));

    /// Whether a field with `hint` is written even when not explicit.
    pub fn includes(self, hint: FieldHint) -> bool {
        self.0.is_some_and(|level| level >= hint.importance())
    }
}

/// The three dict forms a config is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Only the fields set explicitly (Fast-LLM's default `to_dict()`, what metadata.yaml holds).
    Explicit,
    /// Explicit fields plus every `core`/`architecture` field resolved (`to_dict(verbose=core)`).
    Architecture,
    /// Every field (`to_dict(verbose=everything)`).
    Full,
}

impl Form {
    /// The `to_dict` verbosity of this form.
    pub fn verbosity(self) -> Verbosity {
        match self {
            Form::Explicit => Verbosity::EXPLICIT,
            Form::Architecture => Verbosity::CORE,
            Form::Full => Verbosity::EVERYTHING,
        }
    }
}

/// One declared field of a config class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: &'static str,
    pub hint: FieldHint,
    /// No default: the field must be given.
    pub required: bool,
}

/// Which fields of one instance were set explicitly (from input or by an explicit assignment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet {
    bits: u64,
    type_null: bool,
}

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet {
        bits: 0,
        type_null: false,
    };

    /// Marks field number `index` (position in `FIELDS`) explicit.
    pub fn insert(&mut self, index: usize) {
        self.bits |= 1 << index;
    }

    /// Marks field number `index` implicit again.
    pub fn remove(&mut self, index: usize) {
        self.bits &= !(1 << index);
    }

    /// Whether field number `index` is explicit.
    pub fn contains(&self, index: usize) -> bool {
        self.bits & (1 << index) != 0
    }

    /// Records an explicit `type: null` on a class without a dynamic type name.
    pub fn mark_type_null(&mut self) {
        self.type_null = true;
    }

    /// Whether the input had an explicit `type: null`.
    pub fn type_null(&self) -> bool {
        self.type_null
    }
}

/// Per-class behaviour beyond the field table: input rewrites, derived defaults and rules.
///
/// Every config struct implements it, most with an empty body; the rules of a class are then
/// all in its `impl ClassRules`.
pub trait ClassRules {
    /// Whether `rewrite_input` would change `map`: the input dict is cloned only then (a pattern
    /// decoder's dict holds every block, and cloning it was a tenth of an import).
    fn rewrites_input(_map: &Map) -> bool {
        false
    }
    /// Fast-LLM's `_from_dict` input fix-ups (legacy keys).
    fn rewrite_input(_map: &mut Map, _ctx: &mut Ctx) {}
    /// Implicit defaults derived from other fields, set before nested validation.
    fn derive_defaults(&mut self, _ctx: &mut Ctx) {}
    /// Cross-field rules, run after the fields were validated.
    fn check(&mut self, _ctx: &mut Ctx) {}
}

/// A Fast-LLM config class (a struct deriving `Config`).
pub trait ConfigClass: Sized + Default + Clone + fmt::Debug + PartialEq + ClassRules + FieldType {
    /// The Python class name, used in messages.
    const CLASS_NAME: &'static str;
    /// The dynamic type name written as `type` (polymorphic classes only).
    const TYPE_NAME: Option<&'static str>;
    /// Legacy `type` names read as this class (e.g. `mamba_2`).
    const TYPE_ALIASES: &'static [&'static str];
    /// The declared fields, in Fast-LLM's dataclass order (`type` excluded).
    const FIELDS: &'static [FieldInfo];

    /// Reads a dict: present keys become explicit, absent ones take their defaults.
    fn parse_map(map: &Map, ctx: &mut Ctx) -> Self;
    /// Writes the dict at `verbosity`, following Fast-LLM's `to_dict` rules.
    fn to_dict(&self, verbosity: Verbosity) -> Map;
    /// Appends every architecture-hint path below `path`, in field order.
    fn walk_architecture(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>);
    /// Derives implicit defaults and checks every rule, recursively.
    fn validate_in(&mut self, ctx: &mut Ctx);
    /// The fields set explicitly.
    fn explicit_fields(&self) -> FieldSet;

    /// Position of `name` in `FIELDS`.
    fn field_index(name: &str) -> Option<usize> {
        Self::FIELDS.iter().position(|f| f.name == name)
    }

    /// Whether field `name` was set explicitly.
    fn is_explicit(&self, name: &str) -> bool {
        Self::field_index(name).is_some_and(|i| self.explicit_fields().contains(i))
    }

    /// The dict in `form`.
    fn to_form(&self, form: Form) -> Map {
        self.to_dict(form.verbosity())
    }

    /// Every architecture-hint field path, descending into sub-configs, dict entries (by key)
    /// and list entries (by index), in Fast-LLM's order.
    fn architecture_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.walk_architecture(&mut Vec::new(), &mut out);
        out
    }
}

/// A config class's fields as a part of any class's: what `#[derive(Config)]` generates per
/// struct so that a subclass holding it as its `#[config(base)]` reads, writes, walks and
/// validates the inherited fields in place, as if it declared them (Fast-LLM's dataclass
/// inheritance). The class's own `ConfigClass` methods run on it too, with its own table.
///
/// Field numbers are positions in the table of the class being read or written, whose first
/// entries are its base's: a base numbers its fields as the subclass does.
#[doc(hidden)]
pub trait Fields: ClassRules {
    /// Reads each field whose value `found` holds (by field number), marking it in `explicit`.
    fn parse_fields(&mut self, found: &[Option<&Value>], explicit: &mut FieldSet, ctx: &mut Ctx);
    /// Writes each field into `out`, shown at `verbosity` by its hint in `fields` (the table of
    /// the class being written, which may re-declare it) and kept by `explicit`.
    fn emit_fields(&self, out: &mut Map, verbosity: Verbosity, fields: &[FieldInfo], explicit: FieldSet);
    /// Appends the architecture paths of the fields (hints from `fields`), in field order.
    fn walk_fields(&self, fields: &[FieldInfo], path: &mut Vec<String>, out: &mut Vec<Vec<String>>);
    /// Runs each field's checks and validates its sub-configs.
    fn validate_fields(&mut self, ctx: &mut Ctx);
    /// A typed write of the field numbered `write.index` (a base's field delegated to the
    /// base), marking it in `explicit`, the set of the class that holds it.
    fn write_field_at(
        &mut self,
        write: FieldWrite<'_>,
        explicit: &mut FieldSet,
        ctx: &mut Ctx,
    ) -> Result<(), Unwritable>;
    /// The slot at `rest` below the field numbered `index` (a base's field: the base's), for
    /// [`WriteSlot::slot_below`].
    fn slot_field_at(&mut self, index: usize, rest: &str) -> Option<&mut dyn WriteSlot>;
    /// Whether a field `explicit` marks written holds a config lacking a required field, or a
    /// required field of the class or its bases is unwritten.
    fn lacks_required_fields(&self, explicit: FieldSet) -> bool;
    /// The derived defaults of the class and its bases, base-most first (a Python subclass's
    /// `_validate` runs its parent's).
    fn derive_all_defaults(&mut self, ctx: &mut Ctx) {
        self.derive_defaults(ctx);
    }
    /// The cross-field rules of the class and its bases, base-most first.
    fn check_all(&mut self, ctx: &mut Ctx) {
        self.check(ctx);
    }
    /// Whether the input rewrites of the class or its bases would change `map`.
    fn rewrites_any_input(map: &Map) -> bool {
        Self::rewrites_input(map)
    }
    /// The input rewrites of the class and its bases, base-most first.
    fn rewrite_all_input(map: &mut Map, ctx: &mut Ctx) {
        Self::rewrite_input(map, ctx);
    }
}

/// The field table of a subclass: its base's `base` (the hints of `redeclared` replaced, as a
/// Python subclass re-declaring a field keeps its position), then its `own` fields. `N` is
/// their total; a re-declared name the base lacks fails the build.
#[doc(hidden)]
pub const fn inherited_fields<const N: usize>(
    base: &[FieldInfo],
    redeclared: &[(&str, FieldHint)],
    own: &[FieldInfo],
) -> [FieldInfo; N] {
    assert!(base.len() + own.len() == N, "N counts the base's and the own fields");
    let blank = FieldInfo {
        name: "",
        hint: FieldHint::Unknown,
        required: false,
    };
    let mut out = [blank; N];
    let mut i = 0;
    while i < base.len() {
        out[i] = base[i];
        i += 1;
    }
    let mut r = 0;
    while r < redeclared.len() {
        let (name, hint) = redeclared[r];
        let mut at = 0;
        while at < base.len() && !same_name(base[at].name, name) {
            at += 1;
        }
        assert!(at < base.len(), "a re-declared field must be one of the base's");
        out[at].hint = hint;
        r += 1;
    }
    let mut j = 0;
    while j < own.len() {
        out[base.len() + j] = own[j];
        j += 1;
    }
    out
}

/// `a == b` for `const fn`s.
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// How a field value serializes, which decides whether `to_dict` keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Serialized {
    /// A sub-config: kept only when non-empty.
    Config(Map),
    /// A list or tuple: kept when non-empty or explicit.
    Seq(Vec<Value>),
    /// A dict: kept when non-empty or explicit.
    Dict(Map),
    /// A scalar (or `None`): kept when explicit.
    Scalar(Value),
}

impl Serialized {
    /// The value as an element of a list or dict: empty sub-configs are dropped, as in Fast-LLM.
    pub fn into_element(self) -> Option<Value> {
        match self {
            Serialized::Config(map) if map.is_empty() => None,
            Serialized::Config(map) | Serialized::Dict(map) => Some(Value::Map(map)),
            Serialized::Seq(items) => Some(Value::List(items)),
            Serialized::Scalar(value) => Some(value),
        }
    }
}

/// A field type that holds sub-configs: a config class, a polymorphic config (whose variant the
/// config holds), an optional one (absent: `null`) or a dict of them; never a scalar.
/// `#[derive(Config)]` implements it for every config, so code that mounts a sub-config (the
/// weight planner's mounts) can require one at compile time.
pub trait SubConfig: FieldType {}

impl<T: SubConfig> SubConfig for Option<T> {}
impl<T: SubConfig> SubConfig for std::collections::BTreeMap<String, T> {}

/// What a typed write found at its target before it: whether a parse of the dict the write
/// stands for would have met the slot fresh, and what the slot holds then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Already written by this import: the dict would hold a value here.
    Written,
    /// Not written, holding its type's default (a field without a declared default).
    Pristine,
    /// Not written, holding a declared default, which a parse would not start from.
    Fresh,
}

/// A typed write the typed import does not reproduce exactly as the dict it stands for would
/// parse (a second write of a path, a value its field rejects, an unknown key or variant, a
/// legacy key): the import then runs on the dict, which reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwritable;

/// One typed write of a field: its number in the class's `FIELDS` (base fields first), the
/// dotted path below it (empty: the field itself) and the value.
#[derive(Debug, Clone, Copy)]
pub struct FieldWrite<'a> {
    pub index: usize,
    pub rest: &'a str,
    pub value: &'a Value,
}

/// The first part of a dotted path and the rest (empty when there is none).
pub fn split_path(path: &str) -> (&str, &str) {
    match path.bytes().position(|byte| byte == b'.') {
        Some(dot) => (&path[..dot], &path[dot + 1..]),
        None => (path, ""),
    }
}

/// A typed slot an import writes into after claiming it (its first write, which chose its
/// variant and made it present): the typed import keeps one per mounted sub-config, so a write
/// descends from its section's slot instead of from the root.
///
/// Every step from the root down to a slot was written before, so a write below it is the
/// root's write of the joined path: [`FieldType::write`] with [`Prior::Written`].
pub trait WriteSlot {
    /// Stores `value` at the dotted `path` below this slot (see [`FieldType::write`]).
    fn write_below(&mut self, path: &str, value: &Value, ctx: &mut Ctx) -> Result<(), Unwritable>;
    /// The slot at the dotted `path` below this one (empty: this one), `None` where nothing has
    /// been written at it yet.
    fn slot_below(&mut self, path: &str) -> Option<&mut dyn WriteSlot>;
}

impl<T: FieldType> WriteSlot for T {
    fn write_below(&mut self, path: &str, value: &Value, ctx: &mut Ctx) -> Result<(), Unwritable> {
        self.write(path, value, Prior::Written, ctx)
    }
    fn slot_below(&mut self, path: &str) -> Option<&mut dyn WriteSlot> {
        self.slot_at(path)
    }
}

/// A type a config field can hold: scalars, enums, options, lists, dicts and configs.
pub trait FieldType: Sized {
    /// The type's name in messages (`int`, `float`, `NormalizationConfig`, ...).
    const KIND: &'static str;
    /// Reads and type-checks a value, recording errors at the context's path.
    fn parse(value: &Value, ctx: &mut Ctx) -> Option<Self>;
    /// [`FieldType::parse`] into `slot`, which holds `Self::default()`; false (and `slot`
    /// unchanged) where `parse` gives `None`. Config classes override it to read in place
    /// instead of building a value and moving it in.
    fn parse_default_into(slot: &mut Self, value: &Value, ctx: &mut Ctx) -> bool {
        match Self::parse(value, ctx) {
            Some(parsed) => {
                *slot = parsed;
                true
            }
            None => false,
        }
    }
    /// A slot holding `Self::default()` for [`FieldType::parse_default_into`], where the type
    /// has a default: a `dict[str, Self]` then reads each entry where it stays (a block config
    /// is kilobytes, and each move on its way into the map copied it). `None` (the default):
    /// entries are read apart with [`FieldType::parse`].
    fn default_slot() -> Option<Self> {
        None
    }
    /// Stores `value` at the dotted `path` below this slot (empty: the slot itself) as a parse
    /// of the dict holding it there would, marking what it would mark explicit. Anything the
    /// dict would treat otherwise than a first store of a valid value is [`Unwritable`]. The
    /// default, for values that hold no config: a first write of the whole value.
    fn write(&mut self, path: &str, value: &Value, prior: Prior, ctx: &mut Ctx) -> Result<(), Unwritable> {
        match (path.is_empty(), prior) {
            (false, _) => Err(Unwritable),
            // The dict keeps its first value when a second one is the same, as a scalar's
            // serialized value is the one it was read from (a float read from an int aside).
            (true, Prior::Written) if Self::SERIALIZES_AS_READ => match self.serialize(Verbosity::EVERYTHING) {
                Serialized::Scalar(held) if held == *value => Ok(()),
                _ => Err(Unwritable),
            },
            (true, Prior::Written) => Err(Unwritable),
            (true, _) => write_whole(self, value, ctx),
        }
    }
    /// Whether a value read into this type serializes as the value read, up to an int read as
    /// a float (`int`, `float`, `bool`, `str`; not an enum, which reads its aliases).
    const SERIALIZES_AS_READ: bool = false;
    /// Whether a config below this slot reached by typed writes lacks a required field (which
    /// the dict's parse reports).
    fn lacks_required(&self) -> bool {
        false
    }
    /// A slot for typed writes to fill where the type has no default (a polymorphic config
    /// without a default subclass, whose first write then chooses the variant): written with
    /// [`Prior::Fresh`]. The default: [`FieldType::default_slot`].
    fn write_slot() -> Option<Self> {
        Self::default_slot()
    }
    /// Whether [`FieldType::write_slot`] gives a slot, known without building one.
    const HAS_WRITE_SLOT: bool = false;
    /// The slot a write at `path` below this one descends to ([`FieldType::write`] called
    /// with the rest of its path empty), for [`WriteSlot`]; this one for an empty path, `None`
    /// where nothing is written yet. The default, for values that hold no config: only this one.
    fn slot_at(&mut self, path: &str) -> Option<&mut dyn WriteSlot> {
        if path.is_empty() { Some(self) } else { None }
    }
    /// Serializes at `verbosity`.
    fn serialize(&self, verbosity: Verbosity) -> Serialized;
    /// Walks architecture paths of sub-configs (nothing for scalars).
    fn walk(&self, _path: &mut Vec<String>, _out: &mut Vec<Vec<String>>) {}
    /// Validates sub-configs (nothing for scalars).
    fn validate(&mut self, _ctx: &mut Ctx) {}
    /// Whether the type is a config class (a struct or polymorphic enum deriving `Config`).
    const IS_CONFIG: bool = false;
    /// The value as a config, for a config type.
    fn as_config(&self) -> Option<&dyn Reflect> {
        None
    }
    /// The value as [`Reflect::field`] gives it: a config as itself, anything else as its
    /// full-form value.
    fn reflect(&self) -> Field<'_> {
        Field::Value(match self.serialize(Verbosity::EVERYTHING) {
            Serialized::Config(map) | Serialized::Dict(map) => Value::Map(map),
            Serialized::Seq(items) => Value::List(items),
            Serialized::Scalar(value) => value,
        })
    }
}

/// Parses `value` whole into `slot`, which holds what a parse starts from; an error is
/// [`Unwritable`].
pub fn write_whole<T: FieldType>(slot: &mut T, value: &Value, ctx: &mut Ctx) -> Result<(), Unwritable> {
    if T::parse_default_into(slot, value, ctx) && ctx.error_count() == 0 {
        Ok(())
    } else {
        Err(Unwritable)
    }
}

/// Whether a field counts as set when written: explicit, or shown at the output's verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Set explicitly, or its hint is included at this verbosity: written even when empty.
    Explicit,
    /// Neither: written only when it holds something (a non-empty sub-config, list or dict).
    Implicit,
}

/// Adds one field to a `to_dict` output, applying Fast-LLM's keep rules.
pub fn emit_field(out: &mut Map, key: &str, value: Serialized, presence: Presence) {
    let explicit = presence == Presence::Explicit;
    let keep = match &value {
        Serialized::Config(map) => !map.is_empty(),
        Serialized::Seq(items) => explicit || !items.is_empty(),
        Serialized::Dict(map) => explicit || !map.is_empty(),
        Serialized::Scalar(_) => explicit,
    };
    if keep {
        let value = match value {
            Serialized::Config(map) | Serialized::Dict(map) => Value::Map(map),
            Serialized::Seq(items) => Value::List(items),
            Serialized::Scalar(value) => value,
        };
        out.insert(key.to_string(), value);
    }
}

/// Checks the `type` key of a dict read as class `T`. Returns true for an explicit `type: null`
/// on a class without a dynamic name (Fast-LLM keeps it explicit and writes it back).
pub fn check_type_key<T: ConfigClass>(map: &Map, ctx: &mut Ctx) -> bool {
    let Some(value) = map.get("type") else {
        return false;
    };
    ctx.enter("type");
    let null = match value {
        Value::Null => T::TYPE_NAME.is_none(),
        Value::Str(name) => {
            let known = T::TYPE_NAME == Some(name.as_str()) || T::TYPE_ALIASES.contains(&name.as_str());
            if !known {
                match T::TYPE_NAME {
                    Some(expected) => {
                        ctx.error(ErrorKind::TypeMismatch {
                            name: name.clone(),
                            expected,
                        });
                    }
                    None => ctx.error(ErrorKind::UnknownType {
                        name: name.clone(),
                        base: T::CLASS_NAME,
                        known: &[],
                    }),
                }
            }
            false
        }
        other => {
            ctx.error(ErrorKind::WrongType {
                expected: "str",
                found: other.describe(),
            });
            false
        }
    };
    ctx.leave();
    null
}

/// An input error already recorded in the parse context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

/// The `type` of a polymorphic config's dict: `None` when absent or `null`; a non-string is
/// reported at `type`.
pub fn dynamic_type_name<'m>(map: &'m Map, ctx: &mut Ctx) -> Result<Option<&'m str>, Reported> {
    match map.get("type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(name)) => Ok(Some(name.as_str())),
        Some(other) => {
            ctx.at("type", |ctx| {
                ctx.error(ErrorKind::WrongType {
                    expected: "str",
                    found: other.describe(),
                })
            });
            Err(Reported)
        }
    }
}

/// Reports a `type` that none of the polymorphic class `base`'s subclasses (`known`) has.
pub fn unknown_dynamic_type(ctx: &mut Ctx, name: &str, base: &'static str, known: &'static [&'static str]) {
    ctx.at("type", |ctx| {
        ctx.error(ErrorKind::UnknownType {
            name: name.to_string(),
            base,
            known,
        })
    });
}

/// Reports every key of `map` that `T` does not declare.
pub fn report_unknown_keys<T: ConfigClass>(map: &Map, ctx: &mut Ctx) {
    for key in map.keys() {
        if key != "type" && T::field_index(key).is_none() {
            ctx.at(key.as_str(), |ctx| ctx.error(ErrorKind::UnknownField));
        }
    }
}

/// Reads a sub-config field: a dict is parsed as `T`, anything else is a type error.
pub fn parse_config_value<T: ConfigClass>(value: &Value, ctx: &mut Ctx) -> Option<T> {
    Some(T::parse_map(config_map(value, T::CLASS_NAME, ctx)?, ctx))
}

/// The dict a config of `class` is read from: `value`, when it is one; otherwise a wrong-type
/// error.
pub fn config_map<'v>(value: &'v Value, class: &'static str, ctx: &mut Ctx) -> Option<&'v Map> {
    match value {
        Value::Map(map) => Some(map),
        other => {
            ctx.error(ErrorKind::WrongType {
                expected: class,
                found: other.describe(),
            });
            None
        }
    }
}

/// The dynamic type name of a config instance (empty for classes without one).
pub fn type_name_of<T: ConfigClass>(_: &T) -> &'static str {
    T::TYPE_NAME.unwrap_or("")
}

/// A config read field by field, by its Fast-LLM names: what code that reaches a field by name
/// (the conversion engine's declarations) reads instead of a full-form dict. `#[derive(Config)]`
/// implements it; a polymorphic config reads as the variant it holds.
pub trait Reflect: Any {
    /// The Python class name (of the held variant, for a polymorphic config).
    fn class_name(&self) -> &'static str;
    /// The dynamic `type` name (of the held variant), if its class has one.
    fn dynamic_type(&self) -> Option<&'static str>;
    /// The field `name` as the full form holds it; `None` when the class declares no such field.
    fn field(&self, name: &str) -> Option<Field<'_>>;
    /// The full-form dict (what `to_form(Form::Full)` writes).
    fn full_form(&self) -> Map;
    /// The config itself, for a typed read (`downcast_ref`); a polymorphic config is its enum.
    fn as_any(&self) -> &dyn Any;
    /// The held variant of a polymorphic config (the config itself otherwise).
    fn variant(&self) -> &dyn Reflect;
}

/// One field of a [`Reflect`] config.
pub enum Field<'a> {
    /// A sub-config.
    Config(&'a dyn Reflect),
    /// A dict of sub-configs, in key order.
    Configs(Vec<(&'a str, &'a dyn Reflect)>),
    /// Anything else, as its full-form value (`null` for an absent optional config).
    Value(Value),
}

impl fmt::Debug for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Config(config) => write!(f, "Config({})", config.class_name()),
            Field::Configs(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(name, config)| (name, config.class_name())))
                .finish(),
            Field::Value(value) => write!(f, "Value({value:?})"),
        }
    }
}

impl Field<'_> {
    /// The field as a full-form value: sub-configs as their full-form dicts.
    pub fn into_value(self) -> Value {
        match self {
            Field::Config(config) => Value::Map(config.full_form()),
            Field::Configs(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(name, config)| (name.to_string(), Value::Map(config.full_form())))
                    .collect(),
            ),
            Field::Value(value) => value,
        }
    }
}

/// A dotted path that names a field its class does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {class} has no field `{field}`")]
pub struct NoField {
    /// The whole path read.
    pub path: String,
    /// The class that lacks the field.
    pub class: &'static str,
    /// The missing field's name.
    pub field: String,
}

impl dyn Reflect {
    /// The value at the dotted `path` below this config, as its full form holds it: `type` is
    /// the dynamic type name (`null` without one), a path through an absent optional config or
    /// dict entry is `null`, and a field the class does not declare is an error naming it.
    pub fn get(&self, path: &str) -> Result<Field<'_>, NoField> {
        let mut config: &dyn Reflect = self;
        let mut rest = path;
        // Down through sub-configs, without building a `Field` per step.
        loop {
            let (part, tail) = match rest.split_once('.') {
                Some((part, tail)) => (part, Some(tail)),
                None => (rest, None),
            };
            if part.is_empty() {
                match tail {
                    Some(tail) => rest = tail,
                    None => return Ok(Field::Config(config)),
                }
                continue;
            }
            let field = match config.field(part) {
                Some(field) => field,
                None if part == "type" => Field::Value(
                    config
                        .dynamic_type()
                        .map_or(Value::Null, |name| Value::Str(name.to_string())),
                ),
                None => {
                    return Err(NoField {
                        path: path.to_string(),
                        class: config.class_name(),
                        field: part.to_string(),
                    });
                }
            };
            let Some(tail) = tail else {
                return Ok(field);
            };
            match field {
                Field::Config(sub) => {
                    config = sub;
                    rest = tail;
                }
                // A dict of configs: the entry named next, whose path goes on as a config's.
                Field::Configs(entries) => {
                    let (name, after) = tail.split_once('.').unwrap_or((tail, ""));
                    let Some((_, entry)) = entries.into_iter().find(|(entry, _)| *entry == name) else {
                        return Ok(Field::Value(Value::Null));
                    };
                    config = entry;
                    rest = after;
                }
                Field::Value(Value::Null) => return Ok(Field::Value(Value::Null)),
                Field::Value(Value::Map(map)) => return Ok(Field::Value(Self::below(map, tail))),
                // A path into a scalar names nothing the class declares.
                Field::Value(_) => {
                    return Err(NoField {
                        path: path.to_string(),
                        class: config.class_name(),
                        field: format!("{part}.{tail}"),
                    });
                }
            }
        }
    }

    /// The value at `path` in a dict field (no config): an entry, or `null` when absent.
    fn below(map: Map, path: &str) -> Value {
        let mut current = Value::Map(map);
        for part in path.split('.').filter(|part| !part.is_empty()) {
            current = match current {
                Value::Map(mut map) => map.remove(part).unwrap_or(Value::Null),
                _ => Value::Null,
            };
        }
        current
    }

    /// The config as `T`: the config itself or, for a polymorphic config, the variant it holds.
    pub fn downcast<T: Any>(&self) -> Option<&T> {
        (self.as_any().downcast_ref::<T>()).or_else(|| self.variant().as_any().downcast_ref::<T>())
    }
}
