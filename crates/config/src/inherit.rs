//! Tests of `#[derive(Config)]`'s inheritance: a class holding its parent in a `#[config(base)]`
//! field reads, writes, reflects, validates and counts the explicit set of the inherited fields
//! as if it declared them, parent's first; a re-declared default or hint is the child's own.

use rstest::rstest;

use crate::checks::positive;
use crate::{ClassRules, ConfigClass, Ctx, FieldHint, FieldSet, Form, Map, Reflect, Value, load};

use fastllm_config_derive::Config;

#[derive(Debug, Clone, Config)]
#[config(class = "ParentConfig", type_name = "parent")]
struct Parent {
    #[field(hint = architecture, default = 4, check = positive)]
    size: i64,
    /// Derived from `size` when unset.
    #[field(hint = feature, default = None)]
    scale: Option<f64>,
    #[field(hint = performance, default = false)]
    fast: bool,
    explicit: FieldSet,
}

impl ClassRules for Parent {
    fn rewrites_input(map: &Map) -> bool {
        map.contains_key("old_size")
    }
    fn rewrite_input(map: &mut Map, _ctx: &mut Ctx) {
        if let Some(size) = map.remove("old_size") {
            map.insert("size".to_string(), size);
        }
    }
    fn derive_defaults(&mut self, _ctx: &mut Ctx) {
        self.scale.get_or_insert(self.size as f64);
    }
    fn check(&mut self, ctx: &mut Ctx) {
        if self.size > 100 {
            ctx.rule_at("size", "parent: at most 100");
        }
    }
}

/// A subclass that makes `size` default to 8 and `scale` architecture.
#[derive(Debug, Clone, Config)]
#[config(class = "ChildConfig", type_name = "child")]
struct Child {
    #[config(base, redeclare(size, default = 8), redeclare(scale, hint = architecture))]
    base: Parent,
    #[field(hint = architecture, default = 1, check = positive)]
    count: i64,
    explicit: FieldSet,
}

impl ClassRules for Child {
    fn check(&mut self, ctx: &mut Ctx) {
        if self.count > self.size {
            ctx.rule_at("count", "child: at most size");
        }
    }
}

/// Two levels down: its fields follow the child's, which follow the parent's.
#[derive(Debug, Clone, Config)]
#[config(class = "GrandchildConfig")]
struct Grandchild {
    #[config(base)]
    base: Child,
    #[field(hint = feature, default = false)]
    flag: bool,
    explicit: FieldSet,
}
impl ClassRules for Grandchild {}

fn dict(json: &str) -> Value {
    Value::from_json_str(json).unwrap()
}

fn map(json: &str) -> Map {
    dict(json).as_map().unwrap().clone()
}

/// Each error as `path (class): message`.
fn errors<T: ConfigClass>(json: &str) -> Vec<String> {
    match load::<T>(&dict(json)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_parent_s_fields_come_first_with_the_child_s_re_declared_hints() {
    let table = |fields: &[crate::FieldInfo]| fields.iter().map(|f| (f.name, f.hint)).collect::<Vec<_>>();
    use FieldHint::*;
    assert_eq!(
        table(Parent::FIELDS),
        [("size", Architecture), ("scale", Feature), ("fast", Performance)]
    );
    assert_eq!(
        table(Child::FIELDS),
        [
            ("size", Architecture),
            ("scale", Architecture),
            ("fast", Performance),
            ("count", Architecture)
        ]
    );
    assert_eq!(table(Grandchild::FIELDS).last(), Some(&("flag", Feature)));
    assert_eq!(Grandchild::FIELDS.len(), 5);
    assert_eq!(
        ["size", "count", "flag", "bogus"].map(Grandchild::field_index),
        [Some(0), Some(3), Some(4), None]
    );
}

#[test]
fn a_re_declared_default_is_the_child_s_only() {
    assert_eq!((Parent::default().size, Child::default().size), (4, 8));
    assert_eq!(Grandchild::default().size, 8);
}

#[rstest]
#[case::inherited(r#"{"size": 3}"#, &["size"])]
#[case::own(r#"{"count": 2}"#, &["count"])]
#[case::both(r#"{"scale": 0.5, "count": 2}"#, &["scale", "count"])]
#[case::rewritten_by_the_parent(r#"{"old_size": 5}"#, &["size"])]
fn a_parsed_field_is_explicit_in_the_child_s_set(#[case] input: &str, #[case] explicit: &[&str]) {
    let child: Child = load(&dict(input)).unwrap();
    for field in Child::FIELDS {
        assert_eq!(
            child.is_explicit(field.name),
            explicit.contains(&field.name),
            "{}",
            field.name
        );
    }
    assert_eq!(child.base.explicit, FieldSet::EMPTY, "the base keeps no set of its own");
}

#[test]
fn inherited_fields_parse_into_the_base_and_read_through_it() {
    let child: Child = load(&dict(r#"{"size": 3, "fast": true, "count": 2}"#)).unwrap();
    assert_eq!((child.size, child.fast, child.count), (3, true, 2));
    assert_eq!(child.base.size, 3);
    let grandchild: Grandchild = load(&dict(r#"{"size": 9, "flag": true}"#)).unwrap();
    assert_eq!((grandchild.size, grandchild.flag), (9, true));
    assert!(grandchild.is_explicit("size") && grandchild.is_explicit("flag") && !grandchild.is_explicit("count"));
}

#[rstest]
#[case::explicit(Form::Explicit, r#"{"type": "child", "size": 3, "count": 2}"#)]
// `scale` is architecture in the child only; the parent's performance `fast` is not shown.
#[case::architecture(Form::Architecture, r#"{"type": "child", "size": 3, "scale": 3.0, "count": 2}"#)]
#[case::full(
    Form::Full,
    r#"{"type": "child", "size": 3, "scale": 3.0, "fast": false, "count": 2}"#
)]
fn inherited_fields_are_written_as_the_child_s(#[case] form: Form, #[case] expected: &str) {
    let child: Child = load(&dict(r#"{"size": 3, "count": 2}"#)).unwrap();
    assert_eq!(child.to_form(form), map(expected));
}

#[test]
fn the_parent_alone_keeps_its_own_hints() {
    let parent: Parent = load(&dict(r#"{"size": 3}"#)).unwrap();
    assert_eq!(
        parent.to_form(Form::Architecture),
        map(r#"{"type": "parent", "size": 3}"#)
    );
}

#[test]
fn inherited_fields_reflect_and_walk_as_the_child_s() {
    let child = Child::default();
    let reflected = |name| (&child as &dyn Reflect).get(name).map(|f| f.into_value());
    assert_eq!(reflected("size"), Ok(Value::Int(8)));
    assert_eq!(reflected("count"), Ok(Value::Int(1)));
    assert!(reflected("base").is_err(), "the base field is no Fast-LLM field");
    let paths: Vec<String> = child.architecture_paths().into_iter().map(|p| p.join(".")).collect();
    assert_eq!(paths, ["size", "scale", "count"]);
}

#[rstest]
// The parent's field check and rule run, under the child's class, before the child's rule.
#[case::inherited_check(r#"{"size": 0}"#, &["`size` (ChildConfig): must be > 0, got 0", "`count` (ChildConfig): child: at most size"])]
#[case::parent_rule_then_child_s(r#"{"size": 200, "count": 300}"#, &["`size` (ChildConfig): parent: at most 100", "`count` (ChildConfig): child: at most size"])]
#[case::own_check(r#"{"count": 0}"#, &["`count` (ChildConfig): must be > 0, got 0"])]
#[case::inherited_wrong_type(r#"{"size": "big"}"#, &["`size` (ChildConfig): expected int, found str \"big\""])]
#[case::unknown_key(r#"{"sizes": 1}"#, &["`sizes` (ChildConfig): unknown field"])]
#[case::valid(r#"{"size": 5, "count": 5}"#, &[])]
fn validation_runs_the_parent_s_rules_as_the_child_s(#[case] input: &str, #[case] expected: &[&str]) {
    assert_eq!(errors::<Child>(input), expected);
}

#[test]
fn the_parent_s_derived_defaults_run_for_the_child() {
    let child: Child = load(&dict(r#"{"size": 6}"#)).unwrap();
    assert_eq!(child.scale, Some(6.0));
    assert!(!child.is_explicit("scale"), "a derived default stays implicit");
    let grandchild: Grandchild = load(&dict("{}")).unwrap();
    assert_eq!(grandchild.scale, Some(8.0));
}

#[test]
fn equality_compares_inherited_fields() {
    let mut other = Child::default();
    assert_eq!(Child::default(), other);
    other.size = 7;
    assert_ne!(Child::default(), other);
}

/// Typed writes into a default `T` (each a dotted path and a JSON value, `""` a whole dict into
/// the fresh config), then validated, as the typed import stores and finishes them; `None` at the
/// first write not taken.
fn written<T: ConfigClass + crate::FieldType + Default>(writes: &[(&str, &str)]) -> Option<T> {
    let mut config = T::default();
    let mut ctx = Ctx::new();
    for (path, value) in writes {
        let prior = if path.is_empty() {
            crate::Prior::Pristine
        } else {
            crate::Prior::Written
        };
        crate::FieldType::write(&mut config, path, &dict(value), prior, &mut ctx).ok()?;
    }
    if crate::FieldType::lacks_required(&config) {
        return None;
    }
    config.validate_in(&mut ctx);
    (ctx.error_count() == 0).then_some(config)
}

/// The dict the writes stand for (a write at `""` is the whole dict).
fn dict_of(writes: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    for (path, value) in writes {
        if path.is_empty() {
            return dict(value);
        }
        crate::dict::set(&mut out, path, dict(value)).unwrap();
    }
    Value::Map(out)
}

#[rstest]
#[case::inherited(&[("size", "3")])]
#[case::inherited_and_own(&[("count", "2"), ("size", "3")])]
#[case::inherited_twice_the_same(&[("size", "3"), ("size", "3")])]
#[case::whole_dict(&[("", r#"{"scale": 0.5, "count": 2}"#)])]
fn typed_writes_of_inherited_fields_are_the_parse_s(#[case] writes: &[(&str, &str)]) {
    let typed: Child = written(writes).expect("every write taken");
    let parsed: Child = load(&dict_of(writes)).unwrap();
    assert_eq!(typed, parsed);
    assert_eq!(typed.explicit, parsed.explicit);
    assert_eq!(typed.base.explicit, FieldSet::EMPTY, "the base keeps no set of its own");
}

#[test]
fn typed_writes_two_levels_down_are_the_parse_s() {
    let writes = [("fast", "true"), ("flag", "true"), ("size", "9"), ("count", "2")];
    let typed: Grandchild = written(&writes).expect("every write taken");
    let parsed: Grandchild = load(&dict_of(&writes)).unwrap();
    assert_eq!((typed == parsed, typed.explicit), (true, parsed.explicit));
    assert_eq!(
        (typed.base.explicit, typed.base.base.explicit),
        (FieldSet::EMPTY, FieldSet::EMPTY)
    );
}

#[rstest]
// The child's set marks `size` written: a second value is a conflict the dict reports.
#[case::inherited_written_twice(&[("size", "3"), ("size", "4")])]
#[case::inherited_wrong_type(&[("size", r#""big""#)])]
fn typed_writes_the_parse_would_treat_otherwise_are_not_taken(#[case] writes: &[(&str, &str)]) {
    assert_eq!(written::<Child>(writes), None);
}
