//! `BaseModelConfig::write` (the typed import's stores) against the dict it stands for: the same
//! writes set into a dict by `dict::try_set` (its conflict and merge rule) and loaded with
//! `load_base_model`. Wherever every typed write is taken and the config validates, the dict is
//! accepted and loads to the same config: equal, with the same explicit fields at every level
//! (`Debug` shows them), and the same dicts at every verbosity.
//!
//! The writes are the leaves of every Fast-LLM dict of the conformance suite, `type`s first (as
//! the import's sections write them) or last (the variant chosen by a later `type`), whole
//! sub-dicts at once, and mutations of them: a value written twice (the same, or another),
//! values of the wrong type, unknown keys, unknown, aliased or `null` `type`s.

use std::path::{Path, PathBuf};

use fastllm_config::{BaseModelConfig, Ctx, Form, Map, ModelKind, Unwritable, Value, WriteSlot, dict, load_base_model};
use rstest::rstest;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

/// Every Fast-LLM dict of the suite, with its model kind.
fn dicts(dir: &str) -> Vec<(String, ModelKind, Map)> {
    let mut files: Vec<_> = std::fs::read_dir(conformance_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = Value::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = file.as_map().unwrap();
        let found: Vec<(&str, &Value)> = match dir {
            "normalize" => vec![("explicit", &file["explicit"]), ("architecture", &file["architecture"])],
            _ => file.get("fast_llm").map(|d| ("fast_llm", d)).into_iter().collect(),
        };
        for (what, dict) in found {
            let dict = dict.as_map().unwrap().clone();
            let kind = match file.get("model") {
                Some(Value::Str(model)) => ModelKind::from_name(model).unwrap(),
                _ if dict.contains_key("vision_encoder") => ModelKind::MultiModal,
                _ => ModelKind::Gpt,
            };
            out.push((format!("{name} {what}"), kind, dict));
        }
    }
    out
}

type Write = (String, Value);

/// The leaves of `map` below `prefix` (a non-dict value or an empty dict each), `type` first
/// or last among its siblings.
fn leaves(map: &Map, prefix: &str, type_first: bool, out: &mut Vec<Write>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|key| (key.as_str() == "type") != type_first);
    for key in keys {
        let path = dict::join(prefix, key);
        match &map[key] {
            Value::Map(inner) if !inner.is_empty() => leaves(inner, &path, type_first, out),
            value => out.push((path, value.clone())),
        }
    }
}

/// Each top-level key of `map` written as one value (whole sub-dicts).
fn whole(map: &Map) -> Vec<Write> {
    map.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

/// The config the writes give, when every write is taken and the config validates.
fn typed(kind: ModelKind, writes: &[Write]) -> Option<BaseModelConfig> {
    let mut config = BaseModelConfig::unwritten(kind);
    let mut ctx = fastllm_config::Ctx::new();
    for (path, value) in writes {
        config.write(path, value, &mut ctx).ok()?;
    }
    assert_eq!(ctx.error_count(), 0, "a taken write recorded an error");
    config.finish_writes().ok()?;
    Some(config)
}

/// What the dict of the writes loads to: `None` when two writes conflict.
fn by_dict(kind: ModelKind, writes: &[Write]) -> Option<Result<BaseModelConfig, String>> {
    let mut map = Map::new();
    for (path, value) in writes {
        dict::try_set(&mut map, path, value.clone()).ok()?;
    }
    Some(load_base_model(kind, &Value::Map(map)).map_err(|e| e.to_string()))
}

fn fingerprint(config: &BaseModelConfig) -> Vec<String> {
    let mut out = vec![format!("{config:?}")];
    for form in [Form::Explicit, Form::Architecture, Form::Full] {
        out.push(Value::Map(config.to_form(form)).to_json_compact());
    }
    out
}

#[derive(Default)]
struct Tally {
    typed: usize,
    fell_back: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Compares the two ways on `writes`; `must_take`: the dict accepting them, the typed
    /// writes must all be taken.
    fn compare(&mut self, what: &str, kind: ModelKind, writes: &[Write], must_take: bool) {
        let dict = by_dict(kind, writes);
        match (typed(kind, writes), dict) {
            (Some(config), Some(Ok(loaded))) => {
                if fingerprint(&config) != fingerprint(&loaded) {
                    self.failures.push(format!(
                        "{what}: typed {:?}\n dict {:?}",
                        fingerprint(&config),
                        fingerprint(&loaded)
                    ));
                }
                self.typed += 1;
            }
            (Some(_), dict) => self
                .failures
                .push(format!("{what}: typed taken, the dict gives {dict:?}")),
            (None, Some(Ok(_))) if must_take => self.failures.push(format!("{what}: the dict loads, typed falls back")),
            (None, _) => self.fell_back += 1,
        }
    }
}

/// Mutations of one write sequence at position `i`.
fn mutations(writes: &[Write], i: usize) -> Vec<(String, Vec<Write>)> {
    let (path, value) = &writes[i];
    let mut out = Vec::new();
    let mut with = |what: String, change: &dyn Fn(&mut Vec<Write>)| {
        let mut mutated = writes.to_vec();
        change(&mut mutated);
        out.push((format!("{path}: {what}"), mutated));
    };
    with("written twice".into(), &|w| w.push((path.clone(), value.clone())));
    let other = match value {
        Value::Int(n) => Value::Int(n + 1),
        Value::Float(f) => Value::Float(f + 1.0),
        Value::Bool(b) => Value::Bool(!b),
        Value::Str(s) => Value::Str(format!("{s}_other")),
        _ => Value::Str("other".into()),
    };
    with(format!("then {}", dict::show(&other)), &|w| {
        w.push((path.clone(), other.clone()))
    });
    if let Value::Int(n) = value {
        with("then as a float".into(), &|w| {
            w.push((path.clone(), Value::Float(*n as f64)))
        });
        with("as a float".into(), &|w| w[i].1 = Value::Float(*n as f64));
    }
    for wrong in [
        Value::Str("bogus".into()),
        Value::Float(0.5),
        Value::Null,
        Value::List(vec![]),
    ] {
        with(format!("as {}", dict::show(&wrong)), &|w| w[i].1 = wrong.clone());
    }
    with("an unknown sibling".into(), &|w| {
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        w.insert(i, (dict::join(parent, "no_such_field"), Value::Int(1)));
    });
    with("below it".into(), &|w| w.push((format!("{path}.below"), Value::Int(1))));
    if path.ends_with("type") {
        for name in ["no_such_type", "mamba_2", "fixed", "pattern", "attention"] {
            with(format!("type {name}"), &|w| w[i].1 = Value::Str(name.into()));
            with(format!("then type {name}"), &|w| {
                w.push((path.clone(), Value::Str(name.into())))
            });
        }
    }
    // Its parent written whole afterwards: a merge of dicts in the dict.
    if let Some((parent, _)) = path.rsplit_once('.') {
        let mut sub = Map::new();
        for (p, v) in writes {
            if let Some(rest) = p.strip_prefix(parent).and_then(|r| r.strip_prefix('.')) {
                let _ = dict::try_set(&mut sub, rest, v.clone());
            }
        }
        with("its parent then written whole".into(), &|w| {
            w.push((parent.to_string(), Value::Map(sub.clone())))
        });
    }
    out
}

#[rstest]
fn typed_writes_are_the_dict(#[values("expected", "normalize")] dir: &str) {
    let mut tally = Tally::default();
    let all = dicts(dir);
    assert!(all.len() > 20, "only {} dicts in {dir}", all.len());
    for (name, kind, map) in &all {
        let accepted = load_base_model(*kind, &Value::Map(map.clone())).is_ok();
        let mut first = Vec::new();
        leaves(map, "", true, &mut first);
        let mut last = Vec::new();
        leaves(map, "", false, &mut last);
        tally.compare(&format!("{name}, types first"), *kind, &first, accepted);
        tally.compare(&format!("{name}, types last"), *kind, &last, false);
        tally.compare(&format!("{name}, whole"), *kind, &whole(map), accepted);
        // A spread of the writes mutated: each of the first 6, then every 7th.
        for i in (0..first.len()).filter(|i| *i < 6 || i % 7 == 0) {
            for (what, writes) in mutations(&first, i) {
                tally.compare(&format!("{name}, {what}"), *kind, &writes, false);
            }
        }
    }
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    eprintln!("{dir}: {} typed and equal, {} fell back", tally.typed, tally.fell_back);
    assert!(
        tally.typed > all.len(),
        "the typed writes were taken too rarely to compare"
    );
}

/// `map` written into `slot` as the typed import's sections write it: each sub-dict claimed
/// first (`{type}`, or `{}` without one) and filled from the slot the claim returns, each leaf
/// written relative to its slot, `type`s first.
fn write_mounted(slot: &mut dyn WriteSlot, map: &Map, ctx: &mut Ctx) -> Result<(), Unwritable> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|key| key.as_str() != "type");
    for key in keys {
        match &map[key] {
            Value::Map(inner) if !inner.is_empty() => {
                let claim = inner.get("type").map(|t| ("type".to_string(), t.clone()));
                slot.write_below(key, &Value::Map(claim.into_iter().collect()), ctx)?;
                write_mounted(slot.slot_below(key).ok_or(Unwritable)?, inner, ctx)?;
            }
            value => slot.write_below(key, value, ctx)?,
        }
    }
    Ok(())
}

/// Writes from the slots their claims return store what the root's writes of the joined paths
/// store: on every conformance dict the load accepts, both take every write and give the
/// config the dict loads to.
#[rstest]
fn writes_from_claimed_slots_are_the_root_s(#[values("expected", "normalize")] dir: &str) {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, kind, map) in &dicts(dir) {
        let Ok(loaded) = load_base_model(*kind, &Value::Map(map.clone())) else {
            continue;
        };
        let mut first = Vec::new();
        leaves(map, "", true, &mut first);
        let from_root = typed(*kind, &first);
        let mut config = BaseModelConfig::unwritten(*kind);
        let mut ctx = Ctx::new();
        let from_slots = write_mounted(config.root_slot(), map, &mut ctx)
            .and_then(|()| config.finish_writes())
            .map(|()| config);
        match (from_slots, from_root) {
            (Ok(slots), Some(root)) if fingerprint(&slots) == fingerprint(&root) => {
                if fingerprint(&slots) != fingerprint(&loaded) {
                    failures.push(format!("{name}: both ways differ from the load"));
                }
                compared += 1;
            }
            (slots, root) => failures.push(format!(
                "{name}: from the slots {:?}\n from the root {:?}",
                slots.as_ref().map(fingerprint),
                root.as_ref().map(fingerprint)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 20, "only {compared} dicts compared");
}
