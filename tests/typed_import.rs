//! The typed import against the dict import it replaces on the success path (issue 18): per
//! registered format, every HF config within reach (its samples exported in both layouts, the
//! conformance cases' inputs, the transformers reference configs) and generated mutations of
//! them (values of the wrong type, changed numbers that make declarations disagree, unknown
//! `type`s and layout names, keys removed).
//!
//! Wherever the typed run gives a config, the dict run gives the same one: equal, with the same
//! explicit fields in every config below it, and the same dicts at every verbosity. `import`
//! (typed, else the dict) gives what the dict run gives, the error list included, always. The
//! unmutated configs the dict run accepts are all imported typed (no fall-back on the success
//! path).
//!
//! Every unmutated config is compared. Of the mutations (about 48,000 over the formats, 2-4
//! minutes in a debug build) a default run compares a seeded sample: per format, one of every
//! kind of mutation, then one in [`SAMPLE_ONE_IN`] of the rest. The default seed is fixed, so
//! the run is the same each time; `FASTLLM_TYPED_IMPORT_SEED=<n>` samples with another (a
//! failure names its seed), `FASTLLM_TYPED_IMPORT_ALL=1` compares every mutation.

mod support;

use std::path::Path;

use fastllm_convert::config::{BaseModelConfig, Form, Map, Value};
use fastllm_convert::core::{Handler, handlers};
use rstest::rstest;
use support::random::Random;

/// One mutation in this many (beyond one of each kind per format) is compared by default.
const SAMPLE_ONE_IN: usize = 8;

/// The default run's seed: fixed, so CI compares the same sample every time.
const DEFAULT_SEED: u64 = 0x7e57_1d1c_7a11;

/// Which mutations a run compares: every one, or a sample drawn with the seed.
#[derive(Clone, Copy)]
enum Sweep {
    All,
    Sample(u64),
}

impl Sweep {
    fn from_env() -> Sweep {
        if std::env::var_os("FASTLLM_TYPED_IMPORT_ALL").is_some_and(|all| all == "1") {
            return Sweep::All;
        }
        match std::env::var("FASTLLM_TYPED_IMPORT_SEED") {
            Ok(seed) => Sweep::Sample(
                (seed.parse::<u64>())
                    .unwrap_or_else(|_| panic!("FASTLLM_TYPED_IMPORT_SEED={seed} is not a number"))
                    .max(1),
            ),
            Err(_) => Sweep::Sample(DEFAULT_SEED),
        }
    }

    /// How to rerun what this run compared.
    fn describe(self) -> String {
        match self {
            Sweep::All => "every mutation (FASTLLM_TYPED_IMPORT_ALL=1)".into(),
            Sweep::Sample(seed) => format!("sampled with FASTLLM_TYPED_IMPORT_SEED={seed}"),
        }
    }

    /// The mutations of one format to compare: all, or one of each kind and one in
    /// [`SAMPLE_ONE_IN`] of the rest (`format_index` varies the draw between formats).
    fn select(self, mutations: Vec<Mutation>, format_index: usize) -> Vec<Mutation> {
        let Sweep::Sample(seed) = self else {
            return mutations;
        };
        let mut random = Random((seed ^ (format_index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1));
        let mut kinds: Vec<&'static str> = mutations.iter().map(|m| m.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let mut chosen = vec![false; mutations.len()];
        for kind in kinds {
            let of_kind: Vec<usize> = (0..mutations.len()).filter(|&i| mutations[i].kind == kind).collect();
            chosen[*random.pick(&of_kind)] = true;
        }
        for pick in chosen.iter_mut() {
            *pick |= random.below(SAMPLE_ONE_IN) == 0;
        }
        let picked = mutations.into_iter().zip(chosen).filter(|(_, pick)| *pick);
        picked.map(|(mutation, _)| mutation).collect()
    }
}

/// One mutated HF config: what was changed, its kind, the config.
struct Mutation {
    origin: String,
    what: String,
    kind: &'static str,
    hf: Map,
}

fn read(path: &Path) -> Map {
    let text = std::fs::read_to_string(path).unwrap();
    Value::from_json_str(&text).unwrap().as_map().unwrap().clone()
}

/// The HF configs of `format` within reach, each with where it comes from.
fn inputs(handler: &Handler) -> Vec<(String, Map)> {
    let mut out = Vec::new();
    for (i, sample) in handler.converter().samples.iter().enumerate() {
        let config = fastllm_convert::config::load_base_model(handler.model, sample).unwrap();
        for layout in [fastllm_convert::core::HfLayout::V4, fastllm_convert::core::HfLayout::V5] {
            let hf = handler.export(&config, layout).unwrap();
            out.push((format!("sample {i} ({layout:?})"), hf));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let cases = root.join("conformance/cases");
    let mut names: Vec<_> = std::fs::read_dir(&cases).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for path in names {
        let case = read(&path);
        if case["direction"] != Value::Str("import".into()) || case["format"] != Value::Str(handler.name.into()) {
            continue;
        }
        out.push((format!("{}", path.display()), case["input"].as_map().unwrap().clone()));
    }
    for layout in ["v4", "v5"] {
        let dir = root.join("data/transformers").join(layout);
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for path in names {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.split("__").next() != Some(handler.name) {
                continue;
            }
            if let Some(Value::Map(config)) = read(&path).get("config") {
                out.push((format!("{}", path.display()), config.clone()));
            }
        }
    }
    out
}

/// Mutations of `hf`: per key (top level and one level down), values of other types, a changed
/// number, an unknown name, the key removed; each with what it changed and its kind.
fn mutations(hf: &Map) -> Vec<(String, &'static str, Map)> {
    let mut out = Vec::new();
    let mut keys: Vec<Vec<String>> = Vec::new();
    for (key, value) in hf {
        keys.push(vec![key.clone()]);
        if let Value::Map(inner) = value {
            keys.extend(inner.keys().map(|k| vec![key.clone(), k.clone()]));
        }
    }
    for path in keys {
        let current = get(hf, &path).clone();
        let mut replacements = vec![
            ("a string", Value::Str("bogus".into())),
            ("null", Value::Null),
            ("a float", Value::Float(0.5)),
            ("a list", Value::List(vec![Value::Int(1)])),
        ];
        match &current {
            Value::Int(i) => replacements.push(("one more", Value::Int(i + 1))),
            Value::Str(_) => replacements.push(("an unknown name", Value::Str("mixture_of_nothing".into()))),
            Value::List(items) if !items.is_empty() => {
                let mut items = items.clone();
                items[0] = Value::Str("unknown_layer".into());
                replacements.push(("an unknown entry", Value::List(items)));
            }
            Value::Map(inner) if inner.contains_key("type") => {
                let mut inner = inner.clone();
                inner.insert("type".into(), Value::Str("unknown_type".into()));
                replacements.push(("an unknown type", Value::Map(inner)));
            }
            _ => {}
        }
        for (what, value) in replacements {
            let mut mutated = hf.clone();
            *get_mut(&mut mutated, &path) = value;
            out.push((format!("{} set to {what}", path.join(".")), what, mutated));
        }
        let mut removed = hf.clone();
        remove(&mut removed, &path);
        out.push((format!("{} removed", path.join(".")), "removed", removed));
    }
    out
}

fn get<'m>(map: &'m Map, path: &[String]) -> &'m Value {
    match path {
        [key] => &map[key],
        [key, rest @ ..] => get(map[key].as_map().unwrap(), rest),
        [] => unreachable!(),
    }
}

fn get_mut<'m>(map: &'m mut Map, path: &[String]) -> &'m mut Value {
    match path {
        [key] => map.get_mut(key).unwrap(),
        [key, rest @ ..] => match map.get_mut(key).unwrap() {
            Value::Map(inner) => get_mut(inner, rest),
            _ => unreachable!(),
        },
        [] => unreachable!(),
    }
}

fn remove(map: &mut Map, path: &[String]) {
    match path {
        [key] => {
            map.remove(key);
        }
        [key, rest @ ..] => {
            if let Some(Value::Map(inner)) = map.get_mut(key) {
                remove(inner, rest);
            }
        }
        [] => unreachable!(),
    }
}

/// Everything of a config a difference could show in: its fields and explicit sets at every
/// level (`Debug` prints both), and its dicts at every verbosity.
fn fingerprint(config: &BaseModelConfig) -> Vec<String> {
    let mut out = vec![format!("{config:?}")];
    for form in [Form::Explicit, Form::Architecture, Form::Full] {
        out.push(Value::Map(config.to_form(form)).to_json_compact());
    }
    out
}

/// How the two runs went on one HF config, when they agree.
enum Outcome {
    /// The typed run gave the config, the dict run the same one.
    Typed,
    /// The dict run accepted it, the typed run fell back.
    FellBack,
    /// Both rejected it (`import` with the dict run's errors).
    Rejected,
}

/// What the two runs and `import` gave on `hf`: how they went, or how they differ.
fn compare(handler: &Handler, hf: &Map) -> Result<Outcome, String> {
    let combined = handler.import(hf);
    let (typed, dict) = match handler.import_both_ways(hf) {
        Ok(both) => both,
        Err(error) => {
            // Rejected before either run: `import` must say the same.
            let same = combined.as_ref().err().map(|e| format!("{e:?}")) == Some(format!("{error:?}"));
            return match same {
                true => Ok(Outcome::Rejected),
                false => Err(format!("rejected up front as {error:?}, import gave {combined:?}")),
            };
        }
    };
    let shown = |result: &Result<BaseModelConfig, _>| match result {
        Ok(config) => fingerprint(config),
        Err(error) => vec![format!("{error:?}")],
    };
    if shown(&combined) != shown(&dict) {
        return Err(format!(
            "import gave {:?}\nthe dict run {:?}",
            shown(&combined),
            shown(&dict)
        ));
    }
    match (typed, &dict) {
        (Some(typed), Ok(by_dict)) if fingerprint(&typed) == fingerprint(by_dict) => Ok(Outcome::Typed),
        (Some(typed), _) => Err(format!(
            "typed run gave {:?}\nthe dict run {:?}",
            fingerprint(&typed),
            shown(&dict)
        )),
        (None, Ok(_)) => Ok(Outcome::FellBack),
        (None, Err(_)) => Ok(Outcome::Rejected),
    }
}

#[rstest]
fn typed_import_is_the_dict_import(#[values(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)] index: usize) {
    let all = handlers();
    assert_eq!(
        all.len(),
        14,
        "one case per registered format: add the new ones to #[values]"
    );
    let handler = all[index];
    let sweep = Sweep::from_env();
    let mut failures = Vec::new();
    let mut fell_back = Vec::new();
    let (mut runs, mut typed, mut rejected, mut mutations_fell_back) = (0, 0, 0, 0);
    let bases = inputs(handler);
    assert!(!bases.is_empty(), "{}: no HF config to import", handler.name);
    let mut all_mutations = Vec::new();
    for (origin, hf) in &bases {
        runs += 1;
        match compare(handler, hf) {
            Err(difference) => failures.push(format!("{origin}: {difference}")),
            Ok(Outcome::Typed) => typed += 1,
            Ok(Outcome::Rejected) => rejected += 1,
            Ok(Outcome::FellBack) => fell_back.push(origin.clone()),
        }
        all_mutations.extend(mutations(hf).into_iter().map(|(what, kind, hf)| Mutation {
            origin: origin.clone(),
            what,
            kind,
            hf,
        }));
    }
    let generated = all_mutations.len();
    for Mutation { origin, what, hf, .. } in sweep.select(all_mutations, index) {
        runs += 1;
        match compare(handler, &hf) {
            Err(difference) => failures.push(format!("{origin} {what}: {difference}")),
            Ok(Outcome::Typed) => typed += 1,
            Ok(Outcome::Rejected) => rejected += 1,
            Ok(Outcome::FellBack) => mutations_fell_back += 1,
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {runs} imports differ ({}):\n{}",
        handler.name,
        failures.len(),
        sweep.describe(),
        failures.join("\n\n")
    );
    assert!(
        fell_back.is_empty(),
        "{}: accepted configs imported through the dict, not typed: {fell_back:?}",
        handler.name
    );
    eprintln!(
        "{}: {runs} imports compared ({} of {generated} mutations, {}): {typed} typed, {rejected} rejected by both, \
         {mutations_fell_back} accepted mutations through the dict",
        handler.name,
        runs - bases.len(),
        sweep.describe()
    );
}
