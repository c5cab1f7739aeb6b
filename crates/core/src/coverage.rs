//! Coverage: nothing is dropped silently.
//!
//! * Architecture coverage (per section, on a default instance): every architecture-hint field is
//!   claimed, exactly by a non-recursive declaration or under a recursive one's prefix.
//! * Optional sentinels equal the Fast-LLM field default.
//! * HF coverage (at every import): every key of the input, at any depth, is claimed by a
//!   declaration or is generic metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use fastllm_config::{Map, Value};

use crate::Problem;
use crate::dict::{self, join, show};
use crate::hint::{self, Hint};
use crate::primitives::{Declared, Visitor, visit};
use crate::section::{Covers, Section};

/// An HF path a section consumes. `*` matches any one key (entries of a typed dict).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    pub path: String,
    /// Covers everything below `path`.
    pub recursive: bool,
}

impl Claim {
    /// `path` and nothing below it.
    pub fn exact(path: impl Into<String>) -> Claim {
        Claim {
            path: path.into(),
            recursive: false,
        }
    }

    /// `path` and everything below it.
    pub fn subtree(path: impl Into<String>) -> Claim {
        Claim {
            path: path.into(),
            recursive: true,
        }
    }
}

/// Every HF path `section` consumes, relative to its HF dict.
pub fn hf_claims(section: &Section) -> Vec<Claim> {
    struct Claims(BTreeSet<Claim>);
    impl Visitor for Claims {
        fn section(&mut self, section: &Section, _: &str, hf: &str) {
            // Recognised, not converted: claimed, so a key of the part is never an unknown key.
            for part in &section.unconverted {
                self.0.extend(part.keys.iter().map(|key| Claim::exact(join(hf, key))));
            }
        }
        fn declaration(&mut self, decl: &Declared, _: &str, hf: &str) {
            let claims = decl.shape.hf.iter().map(|claim| Claim {
                path: join(hf, &claim.path),
                recursive: claim.recursive,
            });
            self.0.extend(claims);
        }
    }
    let mut claims = Claims(BTreeSet::new());
    visit(section, &mut claims);
    claims.0.into_iter().collect()
}

/// The HF paths `section`'s declarations read on import (convert or check), relative to its HF
/// dict: its claims but those of keys recognised as carrying nothing and of unconverted parts.
pub(crate) fn read_claims(section: &Section) -> Vec<Claim> {
    struct Read(BTreeSet<Claim>);
    impl Visitor for Read {
        fn declaration(&mut self, decl: &Declared, _: &str, hf: &str) {
            if decl.shape.reads_hf {
                self.0.extend(decl.shape.hf.iter().map(|claim| Claim {
                    path: join(hf, &claim.path),
                    recursive: claim.recursive,
                }));
            }
        }
    }
    let mut read = Read(BTreeSet::new());
    visit(section, &mut read);
    read.0.into_iter().collect()
}

/// How a dotted HF key relates to the claims of a [`ClaimTree`] it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The key is claimed.
    Is,
    /// The key holds this claimed key (dotted; `*` for any entry).
    Holds(String),
    /// The key lies inside this key, claimed whole.
    Inside(String),
}

/// `PretrainedConfig` keys a format maps at its top level but which sub-configs (`vision_config`,
/// `text_config`) carry as unread metadata. Generic only below the top level, so a format that
/// forgets to map one at the top still fails coverage.
pub const GENERIC_IN_SUB_CONFIGS: &[&str] = &["tie_word_embeddings"];

/// Every key of `input` (at any depth) not claimed and not generic metadata, as problems.
pub fn check_hf_coverage(input: &Map, claims: &[Claim], allowlist: &BTreeSet<&str>) -> Vec<Problem> {
    ClaimTree::new(claims).check(input, |key| allowlist.contains(key))
}

/// FNV-1a, for the short keys of config dicts (tens of bytes): the standard `SipHash` costs more
/// than the few comparisons it replaces, and nothing here hashes keys an attacker can choose to
/// collide in bulk (a config's keys are few, and looked up, never inserted, per call).
#[derive(Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from config keys, hashed with [`KeyHasher`].
pub(crate) type KeyMap<V> = HashMap<String, V, BuildHasherDefault<KeyHasher>>;

/// A set of static config keys, hashed with [`KeyHasher`].
pub(crate) type KeySet = HashSet<&'static str, BuildHasherDefault<KeyHasher>>;

/// Claims as a trie over their segments, so the coverage walk looks each HF key up once instead
/// of scanning every claim. Built once per format (see `Handler::check_hf`).
#[derive(Debug, Default)]
pub(crate) struct ClaimTree {
    root: ClaimNode,
}

#[derive(Debug, Default)]
struct ClaimNode {
    /// Hashed: the coverage walk looks every HF key up here at each import, and a `BTreeMap`
    /// search compared it with about ten keys (`memcmp` calls) where a hash compares one.
    /// Whatever reports a claim sorts the keys first.
    children: KeyMap<ClaimNode>,
    /// The `*` child: any one key.
    any: Option<Box<ClaimNode>>,
    /// A claim ends here.
    claimed: bool,
    /// A recursive claim ends here.
    recursive: bool,
}

impl ClaimNode {
    fn has_claims_below(&self) -> bool {
        !self.children.is_empty() || self.any.is_some()
    }

    /// The first claimed path below this node (dotted, relative; `*` for any entry), in order.
    fn first_claim_below(&self) -> Option<String> {
        let sorted: BTreeMap<&str, &ClaimNode> =
            (self.children.iter()).map(|(key, node)| (key.as_str(), node)).collect();
        let children = sorted.into_iter();
        for (key, node) in children.chain(self.any.as_deref().map(|node| ("*", node))) {
            if node.claimed {
                return Some(key.to_string());
            }
            if let Some(below) = node.first_claim_below() {
                return Some(format!("{key}.{below}"));
            }
        }
        None
    }
}

impl ClaimTree {
    pub(crate) fn new(claims: &[Claim]) -> Self {
        let mut tree = ClaimTree::default();
        for claim in claims {
            let mut node = &mut tree.root;
            for segment in claim.path.split('.') {
                node = if segment == "*" {
                    node.any.get_or_insert_with(Default::default)
                } else {
                    node.children.entry(segment.to_string()).or_default()
                };
            }
            node.claimed = true;
            node.recursive |= claim.recursive;
        }
        tree
    }

    /// How the dotted `key` relates to the claims, if it touches any: it is claimed, holds a
    /// claimed key, or lies inside a key claimed whole (recursively, or exactly with nothing
    /// claimed below it, as the coverage walk reads claims).
    pub(crate) fn reach(&self, key: &str) -> Option<Reach> {
        let segments: Vec<&str> = key.split('.').collect();
        let mut nodes: Vec<&ClaimNode> = vec![&self.root];
        for (i, segment) in segments.iter().enumerate() {
            let next: Vec<&ClaimNode> = (nodes.iter())
                .flat_map(|node| node.children.get(*segment).into_iter().chain(node.any.as_deref()))
                .collect();
            if next.is_empty() {
                return None;
            }
            let last = i + 1 == segments.len();
            let whole = next.iter().any(|n| n.recursive || n.claimed && !n.has_claims_below());
            if !last && whole {
                return Some(Reach::Inside(segments[..=i].join(".")));
            }
            nodes = next;
        }
        if nodes.iter().any(|n| n.claimed) {
            return Some(Reach::Is);
        }
        nodes
            .iter()
            .find_map(|node| node.first_claim_below())
            .map(|below| Reach::Holds(format!("{key}.{below}")))
    }

    /// Every key of `input` (at any depth) neither claimed nor `generic`, as problems.
    pub(crate) fn check(&self, input: &Map, generic: impl Fn(&str) -> bool) -> Vec<Problem> {
        let mut unclaimed = Unclaimed {
            generic: &generic,
            problems: Vec::new(),
        };
        walk_hf(input, &[&self.root], &mut Vec::new(), &mut unclaimed);
        unclaimed.problems
    }
}

/// What the coverage walk skips, and what it found.
struct Unclaimed<'g> {
    /// Keys that are generic metadata wherever they appear.
    generic: &'g dyn Fn(&str) -> bool,
    /// The keys neither claimed nor generic, found so far.
    problems: Vec<Problem>,
}

/// Checks the keys of `map`, found at `path` where the claims reaching it end in `nodes`.
fn walk_hf<'a>(map: &'a Map, nodes: &[&ClaimNode], path: &mut Vec<&'a str>, unclaimed: &mut Unclaimed) {
    let mut next: Vec<&ClaimNode> = Vec::new();
    for (key, value) in map {
        next.clear();
        for node in nodes {
            next.extend(node.children.get(key.as_str()));
            next.extend(node.any.as_deref());
        }
        // Ancestors are neither generic nor recursively claimed, or the walk would not be here.
        let covered_recursively = next.iter().any(|n| n.recursive);
        let claimed = next.iter().any(|n| n.claimed);
        let claims_below = next.iter().any(|n| n.has_claims_below());
        if covered_recursively || (claimed && !claims_below) {
            continue;
        }
        let is_generic = (unclaimed.generic)(key) || !path.is_empty() && GENERIC_IN_SUB_CONFIGS.contains(&key.as_str());
        if is_generic || (claims_below && matches!(value, Value::Null)) {
            // Generic metadata at any depth, or a `null` sub-dict: it holds nothing to drop, and
            // the class decides what it means.
        } else if let (Value::Map(inner), true) = (value, claims_below) {
            path.push(key);
            walk_hf(inner, &next, path, unclaimed);
            path.pop();
        } else if !claimed {
            let mut full = path.join(".");
            if !full.is_empty() {
                full.push('.');
            }
            full.push_str(key);
            // The way out names the flag with its argument: the key is the format's to ignore.
            let message = format!(
                "unknown key: not part of this format, nothing would convert it (to convert without it: {})",
                hint::spell(Hint::DropKey(&full))
            );
            unclaimed.problems.push(Problem::at_hf(full, message));
        }
    }
}

/// Architecture fields of the section's default instance that no declaration claims.
pub fn architecture_gaps(section: &Section) -> Vec<String> {
    let mut exact_paths = BTreeSet::new();
    let mut prefixes = Vec::new();
    for (name, decl) in &section.decls {
        let shape = decl.shape(name);
        match shape.covers {
            Covers::Subtree => prefixes.extend(shape.fast_llm),
            Covers::Exact => exact_paths.extend(shape.fast_llm),
        }
    }
    let missing: Vec<String> = (section.class.architecture_paths)()
        .into_iter()
        .map(|p| p.join("."))
        .filter(|path| {
            !exact_paths.contains(path.as_str())
                && !prefixes
                    .iter()
                    .any(|prefix| path == prefix || path.starts_with(&format!("{prefix}.")))
        })
        .collect();
    if missing.is_empty() {
        return missing;
    }
    let tops: BTreeSet<&str> = missing
        .iter()
        .filter_map(|m| m.split('.').next())
        .filter(|t| exact_paths.contains(t))
        .collect();
    let hint = if tops.is_empty() {
        String::new()
    } else {
        format!(
            " (declarations for {tops:?} claim the parent path non-recursively: list every architecture sub-field, \
             use Nested/Dispatch, or make the Custom recursive)"
        )
    };
    vec![format!(
        "{} ({}): unclaimed architecture fields {missing:?}{hint}",
        section.name, section.class.name
    )]
}

/// Declaration bugs of `section` found against its class's default instance (an `Optional`
/// whose sentinel is not the field's default).
pub fn sentinel_errors(section: &Section) -> Vec<String> {
    (section.decls.iter())
        .filter_map(|(name, decl)| decl.primitive().check(name, section))
        .collect()
}

/// The section and every sub-section reachable from it (Nested, Dispatch, TypedDict,
/// ListDispatch, Custom delegates), each once.
pub fn section_tree(root: &Arc<Section>) -> Vec<Arc<Section>> {
    let mut out: Vec<Arc<Section>> = Vec::new();
    let mut queue = vec![root.clone()];
    while let Some(section) = queue.pop() {
        if out.iter().any(|s| Arc::ptr_eq(s, &section)) {
            continue;
        }
        for (name, decl) in &section.decls {
            queue.extend(decl.shape(name).mounts.into_iter().map(|mount| mount.section));
        }
        out.push(section);
    }
    out
}

/// What `cargo xtask coverage` found for one handler.
#[derive(Debug, Clone, Default)]
pub struct HandlerReport {
    pub sections: usize,
    pub samples: usize,
    pub failures: Vec<String>,
}

/// Every coverage check of one handler: architecture coverage and sentinels of every section in
/// its tree, then for each sample config and HF layout: export, HF coverage of the export by the
/// format itself, re-import, and `import(export(c)) == c`.
pub fn check_handler(handler: &crate::Handler) -> HandlerReport {
    use fastllm_config::{Form, load_base_model};

    let converter = handler.converter();
    let tree = section_tree(&converter.base_model);
    let mut report = HandlerReport {
        sections: tree.len(),
        samples: converter.samples.len(),
        failures: Vec::new(),
    };
    report.failures.extend(
        tree.iter()
            .flat_map(|s| architecture_gaps(s).into_iter().chain(sentinel_errors(s))),
    );
    let text_root = converter.hf_class.text_root;
    if !text_root.is_empty() && converter.hf_class.key(text_root).is_none_or(|k| k.class.is_none()) {
        report.failures.push(format!(
            "{}: the text root `{text_root}` is not a sub-config of {}",
            handler.name, converter.hf_class.name
        ));
    }
    if converter.samples.is_empty() {
        report
            .failures
            .push(format!("{}: no sample configs to round-trip", handler.name));
    }
    for (i, sample) in converter.samples.iter().enumerate() {
        let config = match load_base_model(handler.model, sample) {
            Ok(config) => config,
            Err(e) => {
                report
                    .failures
                    .push(format!("{} sample {i}: invalid Fast-LLM config: {e}", handler.name));
                continue;
            }
        };
        // Weight coverage: the plan produces every Fast-LLM parameter exactly once, nothing else.
        if !converter.base_model.weights.is_empty() {
            match crate::weights::plan(&converter.base_model, &config) {
                Ok(entries) => {
                    let planned: Vec<(String, Vec<usize>)> =
                        entries.into_iter().map(|e| (e.fast_llm, e.fast_llm_shape)).collect();
                    for gap in fastllm_layout::coverage_gaps(&fastllm_layout::parameters(&config), &planned) {
                        report
                            .failures
                            .push(format!("{} sample {i}: weights: {gap}", handler.name));
                    }
                }
                Err(problems) => {
                    for problem in problems {
                        report
                            .failures
                            .push(format!("{} sample {i}: weight plan: {problem}", handler.name));
                    }
                }
            }
        }
        for layout in [crate::HfLayout::V4, crate::HfLayout::V5] {
            let label = format!("{} sample {i} ({layout:?})", handler.name);
            let hf = match handler.export(&config, layout) {
                Ok(hf) => hf,
                Err(e) => {
                    report.failures.push(format!("{label}: export failed: {e}"));
                    continue;
                }
            };
            for problem in handler.check_hf(&hf) {
                report.failures.push(format!(
                    "{label}: the export fails the format's own HF checks: {problem}"
                ));
            }
            match handler.import(&hf) {
                Err(e) => report.failures.push(format!("{label}: re-import failed: {e}")),
                Ok(back) if back != config => {
                    let (a, b) = (config.to_form(Form::Full), back.to_form(Form::Full));
                    let mut differences = Vec::new();
                    diff(&Value::Map(a), &Value::Map(b), "", &mut differences);
                    report
                        .failures
                        .push(format!("{label}: import(export(c)) != c at {differences:?}"));
                }
                Ok(_) => {}
            }
        }
    }
    report
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(key), y.get(key)) {
                    (Some(v), Some(w)) => diff(v, w, &join(path, key), out),
                    (v, w) => out.push(format!(
                        "{}: {} vs {}",
                        join(path, key),
                        v.map(show).unwrap_or_default(),
                        w.map(show).unwrap_or_default()
                    )),
                }
            }
        }
        _ if !dict::same(a, b) => out.push(format!("{path}: {} vs {}", show(a), show(b))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coverage rule as stated, claim by claim: the trie must agree with it on every input.
    fn by_definition(input: &Map, claims: &[Claim], allowlist: &BTreeSet<&str>) -> Vec<String> {
        /// Whether `claim`'s segments match the first ones of `path`.
        fn matches_start(claim: &str, path: &[&str]) -> bool {
            let parts: Vec<&str> = claim.split('.').collect();
            parts.len() <= path.len() && parts.iter().zip(path).all(|(c, p)| *c == "*" || c == p)
        }
        /// Whether `claim` names `path` itself.
        fn matches_whole(claim: &str, path: &[&str]) -> bool {
            claim.split('.').count() == path.len() && matches_start(claim, path)
        }
        /// What is claimed and what is generic.
        struct Rule<'r> {
            claims: &'r [Claim],
            allowlist: &'r BTreeSet<&'r str>,
        }
        fn walk<'a>(map: &'a Map, path: &mut Vec<&'a str>, rule: &Rule, out: &mut Vec<String>) {
            let Rule { claims, allowlist } = rule;
            for (key, value) in map {
                path.push(key);
                let recursive = claims.iter().any(|c| c.recursive && matches_start(&c.path, path));
                let claimed = claims.iter().any(|c| matches_whole(&c.path, path));
                let below = claims.iter().any(|c| {
                    c.path.split('.').count() > path.len()
                        && c.path.split('.').zip(path.iter()).all(|(c, p)| c == "*" || c == *p)
                });
                let generic = path.iter().any(|s| allowlist.contains(s))
                    || path.len() > 1 && GENERIC_IN_SUB_CONFIGS.contains(&path[path.len() - 1]);
                if recursive || generic || (below && matches!(value, Value::Null)) {
                } else if let (Value::Map(inner), true) = (value, below) {
                    walk(inner, path, rule, out);
                } else if !claimed {
                    out.push(path.join("."));
                }
                path.pop();
            }
        }
        let mut out = Vec::new();
        walk(input, &mut Vec::new(), &Rule { claims, allowlist }, &mut out);
        out
    }

    /// A pseudo-random nested dict over a small key alphabet (so claims hit often).
    fn random_map(seed: &mut u64, depth: usize) -> Map {
        const KEYS: &[&str] = &["a", "b", "c", "d", "model_type", "tie_word_embeddings", "*"];
        fn next(seed: &mut u64) -> usize {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (*seed >> 33) as usize
        }
        let mut map = Map::new();
        for _ in 0..next(seed) % 5 {
            let key = KEYS[next(seed) % KEYS.len()].to_string();
            let value = match next(seed) % 4 {
                0 => Value::Null,
                1 => Value::Int(1),
                _ if depth < 3 => Value::Map(random_map(seed, depth + 1)),
                _ => Value::Int(2),
            };
            map.insert(key, value);
        }
        map
    }

    #[test]
    fn the_claim_tree_agrees_with_the_definition() {
        let claim = |path: &str, recursive: bool| Claim {
            path: path.into(),
            recursive,
        };
        let claims = vec![
            claim("a", false),
            claim("a.b", false),
            claim("b", true),
            claim("c.*.a", false),
            claim("c.*", false),
            claim("c.d.b", true),
            claim("d.a.b.c", false),
            claim("d.*.c", true),
        ];
        let allowlist: BTreeSet<&str> = ["model_type"].into_iter().collect();
        let tree = ClaimTree::new(&claims);
        let mut seed = 7;
        let mut problems = 0;
        for _ in 0..2000 {
            let input = random_map(&mut seed, 0);
            let expected = by_definition(&input, &claims, &allowlist);
            let found: Vec<String> = tree
                .check(&input, |key| allowlist.contains(key))
                .into_iter()
                .filter_map(|p| p.hf)
                .collect();
            assert_eq!(found, expected, "{}", Value::Map(input).to_json_compact());
            problems += found.len();
        }
        assert!(problems > 100, "the inputs exercise unknown keys ({problems})");
    }

    #[rstest::rstest]
    #[case::claimed("a", Some(Reach::Is))]
    #[case::claimed_below_a_claim("a.b", Some(Reach::Is))]
    #[case::holding_a_claim("d", Some(Reach::Holds("d.a.b.c".into())))]
    // The first in key order, whatever order the lookup structure keeps them in.
    #[case::holding_several_claims("e", Some(Reach::Holds("e.b.c".into())))]
    #[case::holding_an_entry_s_claim("c.x.y", None)]
    #[case::an_entry("c.x", Some(Reach::Is))]
    #[case::inside_a_recursive_claim("b.x.y", Some(Reach::Inside("b".into())))]
    #[case::inside_a_leaf_claim("c.x.a.y", Some(Reach::Inside("c.x.a".into())))]
    #[case::unknown_beside_claims("a.z", None)]
    #[case::unknown("z", None)]
    fn how_a_key_reaches_the_claims(#[case] key: &str, #[case] expected: Option<Reach>) {
        let claims = [
            Claim::exact("a"),
            Claim::exact("a.b"),
            Claim::subtree("b"),
            Claim::exact("c.*"),
            Claim::exact("c.*.a"),
            Claim::exact("d.a.b.c"),
            Claim::exact("e.z"),
            Claim::exact("e.x"),
            Claim::exact("e.q"),
            Claim::exact("e.n"),
            Claim::exact("e.m"),
            Claim::exact("e.k"),
            Claim::exact("e.b.c"),
        ];
        assert_eq!(ClaimTree::new(&claims).reach(key), expected, "{key}");
    }

    #[test]
    fn keys_recognised_as_carrying_nothing_are_not_read() {
        use crate::config::GptBaseModelConfig;
        use crate::section::Decl;
        let section = Section::of::<GptBaseModelConfig>("t.root")
            .rename("hidden_size", "hidden_size")
            .add("unused", Decl::ignored_hf(&["router_jitter_noise"]))
            .add("bias", Decl::const_export("attention_bias", Value::Bool(false)))
            .build();
        let read: Vec<String> = read_claims(&section).into_iter().map(|c| c.path).collect();
        assert_eq!(read, ["attention_bias", "hidden_size"]);
        let claimed: Vec<String> = hf_claims(&section).into_iter().map(|c| c.path).collect();
        assert_eq!(claimed, ["attention_bias", "hidden_size", "router_jitter_noise"]);
    }
}
