//! Running section tables: export (Fast-LLM → HF) and import (HF → Fast-LLM).
//!
//! Every write goes through a safe set: a key written twice must get the same value, else the
//! two writers are named. Problems are collected, never thrown, so one report lists them all.

use std::collections::BTreeMap;

use fastllm_config::{BaseModelConfig, Ctx, Field, Map, Value, WriteSlot};

use crate::HfLayout;
use crate::Problem;
use crate::dict::{self, Conflict, join, show};
use crate::fl::Fl;
use crate::section::{ExportContext, ImportContext, Section};

/// A dotted path as its parent and last part: descending allocates nothing, and the path is
/// joined into a string only where one is needed (a message, provenance, a Custom's context).
/// Empty parts are skipped, as [`join`] does.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Root(&'a str),
    Child(&'a At<'a>, &'a str),
}

impl<'a> At<'a> {
    pub(crate) fn child(&'a self, part: &'a str) -> At<'a> {
        At::Child(self, part)
    }

    /// Appends the path to `out`; `start` is where it begins (a dot goes before each part that
    /// follows another).
    fn write_to(&self, out: &mut String, start: usize) {
        let part = match self {
            At::Root(part) => part,
            At::Child(parent, part) => {
                parent.write_to(out, start);
                part
            }
        };
        if !part.is_empty() {
            if out.len() > start {
                out.push('.');
            }
            out.push_str(part);
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out, 0);
        out
    }

    /// The path joined with `path` (relative to it).
    pub(crate) fn join(&self, path: &str) -> String {
        let mut out = String::new();
        self.child(path).write_to(&mut out, 0);
        out
    }
}

/// A dict a run reads, at its dotted path: the section's HF dict on import.
#[derive(Clone, Copy)]
pub(crate) struct Src<'a> {
    pub(crate) map: &'a Map,
    pub(crate) at: At<'a>,
}

impl<'a> Src<'a> {
    pub(crate) fn new(map: &'a Map, at: At<'a>) -> Self {
        Src { map, at }
    }
}

/// The typed Fast-LLM config an export reads, at its dotted path.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub(crate) fl: Fl<'a>,
    pub(crate) at: At<'a>,
}

impl<'a> Node<'a> {
    pub(crate) fn new(fl: Fl<'a>, at: At<'a>) -> Self {
        Node { fl, at }
    }
}

/// A dict a run writes, at its dotted path: the HF dict on export, the Fast-LLM dict on import.
/// A typed import writes the typed sub-config at that path instead, its `slot`.
pub(crate) struct Dst<'a> {
    pub(crate) map: &'a mut Map,
    pub(crate) at: At<'a>,
    /// On a typed import, the typed config at `at`, claimed by its mount (see
    /// [`Importer::mount`]): writes descend from it, not from the root. `None` elsewhere.
    pub(crate) slot: Option<&'a mut dyn WriteSlot>,
}

impl<'a> Dst<'a> {
    /// A dict to write, no typed slot.
    pub(crate) fn new(map: &'a mut Map, at: At<'a>) -> Self {
        Dst { map, at, slot: None }
    }

    /// The same destination, borrowed for one write or one declaration's run.
    pub(crate) fn reborrow(&mut self) -> Dst<'_> {
        Dst {
            map: self.map,
            at: self.at,
            slot: match &mut self.slot {
                Some(slot) => Some(&mut **slot),
                None => None,
            },
        }
    }
}

/// Where a sub-section's HF keys go: flat in the parent's dict (`hf_path` `None`) or under
/// `hf_path`, with the section's HF type name written at `discriminator` when it has one.
pub(crate) struct Placement<'a> {
    pub(crate) hf_path: Option<&'a str>,
    pub(crate) discriminator: Option<&'a str>,
}

/// Who a write names as its source, joined only when a message or provenance needs it: most
/// writes succeed and are never named.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'p> {
    /// A path.
    Path(At<'p>),
    /// `path (constant)`.
    Constant(At<'p>),
    Text(&'p str),
}

impl Origin<'_> {
    fn write_to(self, out: &mut String) {
        let start = out.len();
        match self {
            Origin::Path(at) => at.write_to(out, start),
            Origin::Constant(at) => {
                at.write_to(out, start);
                out.push_str(" (constant)");
            }
            Origin::Text(text) => out.push_str(text),
        }
    }
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        self.write_to(&mut text);
        f.write_str(&text)
    }
}

/// Who wrote each HF key, in write order, in one buffer (a write costs no allocation of its
/// own). The first writer of a key is the one named when a later write disagrees.
#[derive(Default)]
pub(crate) struct Provenance {
    text: String,
    /// Per write: where its HF key starts, where its writer starts, and where it ends in `text`.
    entries: Vec<(usize, usize, usize)>,
}

impl Provenance {
    fn record(&mut self, key: At, writer: Origin) {
        let start = self.text.len();
        key.write_to(&mut self.text, start);
        let middle = self.text.len();
        writer.write_to(&mut self.text);
        self.entries.push((start, middle, self.text.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|&(start, middle, end)| (&self.text[start..middle], &self.text[middle..end]))
    }

    pub(crate) fn first_writer(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, writer)| writer)
    }

    /// Each key with its first writer.
    fn into_map(self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for (key, writer) in self.iter() {
            if !map.contains_key(key) {
                map.insert(key.to_string(), writer.to_string());
            }
        }
        map
    }
}

/// Export state: the collected problems and who wrote each HF key.
pub struct Exporter<'a> {
    pub format: &'a str,
    pub layout: HfLayout,
    pub problems: Vec<Problem>,
    writers: Provenance,
    /// Whether writers are recorded: a run without them names no first writer in a conflict,
    /// so it is only the first try (see [`Exporter::conflicted`]).
    record: Recording,
    conflicted: bool,
}

/// Whether an export run records who wrote each HF key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Recorded: a conflict names both writers.
    Writers,
    /// Not recorded: most exports have no conflict, and rendering every writer's path costs more
    /// than the rest of the write; a run that finds one is rerun recording.
    Off,
}

impl<'a> Exporter<'a> {
    pub fn new(format: &'a str, layout: HfLayout) -> Self {
        Exporter {
            format,
            layout,
            problems: Vec::new(),
            writers: Provenance::default(),
            record: Recording::Writers,
            conflicted: false,
        }
    }

    /// An exporter that records no writers: run it first, and rerun with [`Exporter::new`] when
    /// it [`conflicted`](Exporter::conflicted), for the messages to name both writers.
    pub(crate) fn unrecorded(format: &'a str, layout: HfLayout) -> Self {
        Exporter {
            record: Recording::Off,
            ..Exporter::new(format, layout)
        }
    }

    /// Whether a key was written twice with different values.
    pub(crate) fn conflicted(&self) -> bool {
        self.conflicted
    }

    pub(crate) fn write(&mut self, Dst { map: hf, at: hf_at, .. }: Dst, key: &str, value: Value, writer: Origin) {
        match dict::try_set(hf, key, value) {
            Ok(()) => {
                if self.record == Recording::Writers {
                    self.writers.record(hf_at.child(key), writer);
                }
            }
            Err(Conflict { existing, refused }) => {
                self.conflicted = true;
                let full = hf_at.join(key);
                let writer = writer.to_string();
                let first = self
                    .writers
                    .first_writer(&full)
                    .unwrap_or("another declaration")
                    .to_string();
                self.problems.push(Problem {
                    message: format!(
                        "not representable in {}: one HF key, two values: `{first}` gives {} and `{writer}` gives {}",
                        self.format,
                        show(&existing),
                        show(&refused)
                    ),
                    fast_llm: Some(writer),
                    hf: Some(full),
                });
            }
        }
    }

    /// Exports `fl` (the section's typed Fast-LLM config) into `hf`, both at the root.
    pub fn section(&mut self, section: &Section, fl: Fl, hf: &mut Map) {
        self.section_at(section, Node::new(fl, At::Root("")), Dst::new(hf, At::Root("")));
    }

    pub(crate) fn section_at(
        &mut self,
        section: &Section,
        Node { fl, at: fl_at }: Node,
        Dst { map: hf, at: hf_at, .. }: Dst,
    ) {
        if let Some(expected) = section.class.type_name
            && fl.type_name() != Some(expected)
        {
            self.problems.push(Problem::at_fast_llm(
                fl_at.join("type"),
                format!(
                    "not representable in {}: the format holds a `{expected}` here ({}), found {}",
                    self.format,
                    section.class.name,
                    show(&fl.type_value())
                ),
            ));
            return;
        }
        for (_, rule) in &section.validators {
            if let Err(problems) = rule(fl) {
                for mut problem in problems {
                    problem.fast_llm = Some(fl_at.join(problem.fast_llm.as_deref().unwrap_or("")));
                    problem.message = format!("not representable in {}: {}", self.format, problem.message);
                    self.problems.push(problem);
                }
            }
        }
        for (_, decl) in &section.decls {
            decl.primitive().export(self, Node::new(fl, fl_at), Dst::new(hf, hf_at));
        }
    }

    /// Exports the sub-section `section` of `sub` where `placement` says.
    pub(crate) fn place(&mut self, section: &Section, sub: Node, hf: Dst, placement: Placement) {
        let (Node { fl: sub, at: fl_at }, Dst { map: hf, at: hf_at, .. }) = (sub, hf);
        let Placement { hf_path, discriminator } = placement;
        match hf_path {
            None => {
                if let (Some(key), Some(name)) = (discriminator, section.hf_type_name) {
                    self.write(Dst::new(hf, hf_at), key, Value::Str(name.into()), Origin::Path(fl_at));
                }
                self.section_at(section, Node::new(sub, fl_at), Dst::new(hf, hf_at));
            }
            Some(hf_path) => {
                let mut out = Map::new();
                if let (Some(key), Some(name)) = (discriminator.or(Some("type")), section.hf_type_name) {
                    out.insert(key.to_string(), Value::Str(name.into()));
                }
                self.section_at(section, Node::new(sub, fl_at), Dst::new(&mut out, hf_at.child(hf_path)));
                self.write(Dst::new(hf, hf_at), hf_path, Value::Map(out), Origin::Path(fl_at));
            }
        }
    }

    /// The value at `path` of `fl` (at `fl_at`), or `None` with the problem recorded.
    pub(crate) fn read(&mut self, fl: Fl, path: &str, fl_at: At) -> Option<Value> {
        self.recorded(fl.value(path), fl_at)
    }

    /// The field at `path` of `fl` (at `fl_at`), or `None` with the problem recorded.
    pub(crate) fn field<'m>(&mut self, fl: Fl<'m>, path: &str, fl_at: At) -> Option<Field<'m>> {
        self.recorded(fl.field(path), fl_at)
    }

    /// `result`'s value, or `None` with its problem recorded at `fl_at`.
    fn recorded<T>(&mut self, result: Result<T, Problem>, fl_at: At) -> Option<T> {
        result.map_err(|problem| self.push_at(problem, fl_at)).ok()
    }

    /// The sub-config at `path` of `fl`, or `None` with the problem recorded.
    pub(crate) fn sub_config<'m>(&mut self, fl: Fl<'m>, path: &str, fl_at: At) -> Option<Fl<'m>> {
        match self.field(fl, path, fl_at)? {
            Field::Config(config) => Some(Fl::new(config)),
            Field::Value(Value::Null) => {
                self.problems.push(Problem::at_fast_llm(
                    fl_at.join(path),
                    format!("not representable in {}: this format needs a config here", self.format),
                ));
                None
            }
            other => {
                self.problems.push(Problem::at_fast_llm(
                    fl_at.join(path),
                    format!("expected a config, found {}", show(&other.into_value())),
                ));
                None
            }
        }
    }

    pub(crate) fn by_type<'s>(
        &mut self,
        sections: &'s [std::sync::Arc<Section>],
        sub: Fl,
        fl_at: At,
    ) -> Option<&'s Section> {
        if let [only] = sections
            && only.hf_type_name.is_none()
        {
            return Some(only);
        }
        let found = sub.type_name();
        let section = sections
            .iter()
            .find(|s| s.class.type_name.is_some_and(|t| found == Some(t)));
        if section.is_none() {
            let supported: Vec<&str> = sections.iter().filter_map(|s| s.class.type_name).collect();
            self.problems.push(Problem::at_fast_llm(
                fl_at.join("type"),
                format!(
                    "not representable in {}: type {} (supported: {})",
                    self.format,
                    show(&sub.type_value()),
                    supported.join(", ")
                ),
            ));
        }
        section.map(|s| &**s)
    }

    /// Runs `section` on `fl` apart from this run (problem paths relative to `fl`): the HF dict
    /// it writes and who wrote each key.
    pub(crate) fn export_apart(&mut self, section: &Section, fl: Fl) -> Result<(Map, Provenance), Vec<Problem>> {
        let mut exporter = Exporter {
            record: self.record,
            ..Exporter::new(self.format, self.layout)
        };
        let mut out = Map::new();
        exporter.section(section, fl, &mut out);
        self.conflicted |= exporter.conflicted;
        if exporter.problems.is_empty() {
            Ok((out, exporter.writers))
        } else {
            Err(exporter.problems)
        }
    }

    /// Records `problem`, its Fast-LLM path relative to `fl_at`.
    pub(crate) fn push_at(&mut self, mut problem: Problem, fl_at: At) {
        problem.fast_llm = problem.fast_llm.map(|p| fl_at.join(&p));
        self.problems.push(problem);
    }

    pub(crate) fn push_relative(&mut self, problems: Vec<Problem>, fl_at: At, hf_at: At) {
        for problem in problems {
            let mut problem = relocated(problem, fl_at, hf_at);
            if !problem.message.starts_with("not representable") {
                problem.message = format!("not representable in {}: {}", self.format, problem.message);
            }
            self.problems.push(problem);
        }
    }
}

/// A sub-config an import fills: its path below the parent's, and the `type` its section's
/// class writes, if any.
#[derive(Clone, Copy)]
pub(crate) struct Mounted<'s> {
    pub(crate) fl: &'s str,
    pub(crate) type_name: Option<&'s str>,
}

impl Mounted<'_> {
    /// The dict a mount starts from, before its section fills it: `{type}`, or `{}` for a
    /// class without a type name. A dict run fills it; a typed run writes it as its claim.
    fn type_only(&self) -> Map {
        let mut dict = Map::new();
        if let Some(name) = self.type_name {
            dict.insert("type".into(), Value::Str(name.into()));
        }
        dict
    }
}

/// Import state: the collected problems.
pub struct Importer<'a> {
    pub format: &'a str,
    /// The whole HF dict, as the config class loaded it.
    pub root: &'a Map,
    pub problems: Vec<Problem>,
    /// A typed run's state (`None`: a dict run, writing each [`Dst`]'s dict).
    typed: Option<TypedOut>,
}

/// A typed run's state. Its writes land in the [`Dst`]s' typed slots, the root's being the
/// caller's config (a GPT root is 9 kB: moved in and out, it was a tenth of an import).
struct TypedOut {
    /// What the field parses of the run report (nothing, while the run stays writable).
    ctx: Ctx,
    /// A write the config does not take as the dict would: the run's config is dropped.
    unwritable: bool,
}

impl<'a> Importer<'a> {
    /// A run writing a Fast-LLM dict, by the paths relative to each [`Dst`]'s dict.
    pub fn new(format: &'a str, root: &'a Map) -> Self {
        Importer {
            format,
            root,
            problems: Vec::new(),
            typed: None,
        }
    }

    /// A run writing a typed config directly ([`Importer::section_typed`]), no dict built:
    /// each write is stored in the typed slot of its [`Dst`] (whose dict it leaves empty). What
    /// the typed config does not take as the dict would (see [`BaseModelConfig::write`]) makes
    /// [`Importer::finish_typed`] fail, for a dict run to report it.
    pub fn typed(format: &'a str, root: &'a Map) -> Self {
        Importer {
            typed: Some(TypedOut {
                ctx: Ctx::new(),
                unwritable: false,
            }),
            ..Importer::new(format, root)
        }
    }

    /// Imports the section's HF dict `hf` into `config` (a default one,
    /// [`BaseModelConfig::unwritten`]) on a run made by [`Importer::typed`].
    pub fn section_typed(&mut self, section: &Section, hf: &Map, config: &mut BaseModelConfig) {
        let out = Dst {
            map: &mut Map::new(),
            at: At::Root(""),
            slot: Some(config.root_slot()),
        };
        self.section_at(section, Src::new(hf, At::Root("")), out);
    }

    /// Validates the config a typed run wrote: `true` when the run wrote every value as its
    /// dict would have held it, found no problem, and the config passed validation (a dict run:
    /// `false`).
    pub fn finish_typed(self, config: &mut BaseModelConfig) -> bool {
        let Some(TypedOut { ctx, unwritable }) = self.typed else {
            return false;
        };
        !unwritable && ctx.error_count() == 0 && self.problems.is_empty() && config.finish_writes().is_ok()
    }

    /// Runs `fill` on the sub-config `mounted` below `out`. A dict
    /// run builds its dict apart and writes it at `fl` as one value (a second write there is one
    /// conflict, dicts written in parts merge); a typed run claims the config at `fl` (which
    /// must not have been written before) with its `type` first, and `fill` writes into it
    /// from its slot.
    pub(crate) fn mount(&mut self, out: Dst, mounted: Mounted, source: Origin, fill: impl FnOnce(&mut Self, Dst)) {
        let Dst {
            map: out,
            at: fl_at,
            slot,
        } = out;
        let sub_at = fl_at.child(mounted.fl);
        if self.typed.is_some() {
            // A run already unwritable stores nothing more: its config is dropped.
            if let Some(claimed) = self.claim(slot, mounted) {
                fill(
                    self,
                    Dst {
                        map: &mut Map::new(),
                        at: sub_at,
                        slot: Some(claimed),
                    },
                );
            }
            return;
        }
        let mut sub = mounted.type_only();
        fill(self, Dst::new(&mut sub, sub_at));
        self.write(Dst::new(out, fl_at), mounted.fl, Value::Map(sub), source);
    }

    /// Imports `section` from the HF dict `hf` into the sub-config `fl` it mounts below `out`,
    /// with its class's `type` (see [`Importer::mount`]); a dict run names `hf` as the source.
    pub(crate) fn mount_section(&mut self, out: Dst, fl: &str, section: &Section, hf: Src) {
        let mounted = Mounted {
            fl,
            type_name: section.class.type_name,
        };
        self.mount(out, mounted, Origin::Path(hf.at), |run, sub_out| {
            run.section_at(section, hf, sub_out)
        });
    }

    /// A typed run's claim of the sub-config `fl` below `slot`: written as the dict `{type}`
    /// (or `{}`) first, so its `type` chooses its variant, and its slot returned. `None` once
    /// the run is unwritable (which a claim not taken makes it).
    fn claim<'s>(&mut self, slot: Option<&'s mut dyn WriteSlot>, mounted: Mounted) -> Option<&'s mut dyn WriteSlot> {
        let typed = self.typed.as_mut()?;
        if typed.unwritable {
            return None;
        }
        let claimed = slot.and_then(|slot| {
            let claim = Value::Map(mounted.type_only());
            slot.write_below(mounted.fl, &claim, &mut typed.ctx).ok()?;
            slot.slot_below(mounted.fl)
        });
        typed.unwritable = claimed.is_none();
        claimed
    }

    /// Marks a typed run's config as not what the dict would hold (see [`Importer::typed`]).
    pub(crate) fn unwritable(&mut self) {
        if let Some(typed) = &mut self.typed {
            typed.unwritable = true;
        }
    }

    /// Whether the run writes the typed config (not a dict).
    pub(crate) fn is_typed(&self) -> bool {
        self.typed.is_some()
    }

    pub(crate) fn write(
        &mut self,
        Dst {
            map: out,
            at: fl_at,
            slot,
        }: Dst,
        path: &str,
        value: Value,
        source: Origin,
    ) {
        if let Some(typed) = &mut self.typed {
            // After the first unwritable write nothing more is stored: the config is dropped.
            if !typed.unwritable {
                typed.unwritable = match slot {
                    Some(slot) => slot.write_below(path, &value, &mut typed.ctx).is_err(),
                    // A dict outside every mounted slot, which the typed config does not hold.
                    None => true,
                };
            }
            return;
        }
        if let Err(Conflict { existing, refused }) = dict::try_set(out, path, value) {
            self.problems.push(Problem {
                fast_llm: Some(fl_at.join(path)),
                hf: Some(source.to_string()),
                message: format!(
                    "two declarations import different values: {} and {}",
                    show(&existing),
                    show(&refused)
                ),
            });
        }
    }

    /// Imports the section's HF dict `hf` into the Fast-LLM dict `out`, both at the root.
    pub fn section(&mut self, section: &Section, hf: &Map, out: &mut Map) {
        self.section_at(section, Src::new(hf, At::Root("")), Dst::new(out, At::Root("")));
    }

    pub(crate) fn section_at(&mut self, section: &Section, hf: Src, mut out: Dst) {
        if let Some(type_name) = section.class.type_name {
            if self.is_typed() {
                let type_name = Value::Str(type_name.into());
                self.write(out.reborrow(), "type", type_name, Origin::Text("(type)"));
            } else {
                out.map.insert("type".into(), Value::Str(type_name.into()));
            }
        }
        for (_, decl) in &section.decls {
            decl.primitive().import(self, hf, out.reborrow());
        }
    }

    /// The HF sub-dict at `hf_path` (this dict when `None`), or a problem at it.
    pub(crate) fn sub_hf<'m>(&mut self, hf: &'m Map, hf_at: At, hf_path: Option<&str>) -> Option<&'m Map> {
        let Some(path) = hf_path else {
            return Some(hf);
        };
        match dict::get(hf, path) {
            Some(Value::Map(map)) => Some(map),
            found => {
                self.not_as_expected(hf_at.join(path), "a dict", found);
                None
            }
        }
    }

    /// A problem at the HF key `hf_key`: the format needs `expected` there and `found` is
    /// something else, or nothing.
    pub(crate) fn not_as_expected(&mut self, hf_key: String, expected: &str, found: Option<&Value>) {
        match found {
            Some(other) => {
                let message = format!("expected {expected}, found {}", show(other));
                self.problems.push(Problem::at_hf(hf_key, message));
            }
            None => self.missing(hf_key),
        }
    }

    /// A problem at the HF key `hf_key`, which the format requires.
    pub(crate) fn missing(&mut self, hf_key: String) {
        let message = format!("missing (required by {})", self.format);
        self.problems.push(Problem::at_hf(hf_key, message));
    }

    pub(crate) fn by_discriminator<'s>(
        &mut self,
        sections: &'s [std::sync::Arc<Section>],
        hf: &Map,
        hf_at: At,
        key: &str,
    ) -> Option<&'s Section> {
        if let [only] = sections
            && only.hf_type_name.is_none()
        {
            return Some(only);
        }
        let found = hf.get(key);
        let section = sections
            .iter()
            .find(|s| matches!((s.hf_type_name, found), (Some(name), Some(Value::Str(f))) if name == f));
        if section.is_none() {
            let supported: Vec<&str> = sections.iter().filter_map(|s| s.hf_type_name).collect();
            let found = found.map(show).unwrap_or_else(|| "nothing".into());
            self.problems.push(Problem::at_hf(
                hf_at.join(key),
                format!("unsupported type {found} (supported: {})", supported.join(", ")),
            ));
        }
        section.map(|s| &**s)
    }
}

/// Runs a sub-section's export from inside a `Custom` (problem paths relative to `fl`): the HF
/// dict, and for each top-level key the Fast-LLM path that wrote it.
pub fn export_sub(
    section: &Section,
    fl: Fl,
    context: &ExportContext,
) -> Result<(Map, BTreeMap<String, String>), Vec<Problem>> {
    let mut exporter = Exporter::new(context.format, context.layout);
    let mut out = Map::new();
    exporter.section(section, fl, &mut out);
    unless_problems((out, exporter.writers.into_map()), exporter.problems)
}

/// Runs a sub-section's import from inside a `Custom`.
pub fn import_sub(section: &Section, hf: &Map, context: &ImportContext) -> Result<Map, Vec<Problem>> {
    let mut importer = Importer::new(context.format, context.root);
    let mut out = Map::new();
    importer.section_at(
        section,
        Src::new(hf, At::Root(context.hf_path)),
        Dst::new(&mut out, At::Root("")),
    );
    unless_problems(out, importer.problems)
}

/// Runs a sub-section's import on an HF dict of its own (a nested sub-config such as
/// `text_config`), which is also the root its fallbacks read.
pub fn import_rooted(section: &Section, hf: &Map, context: &ImportContext) -> Result<Map, Vec<Problem>> {
    let rooted = ImportContext {
        root: hf,
        format: context.format,
        hf_path: "",
    };
    import_sub(section, hf, &rooted)
}

/// A problem of a sub-run (or a Custom), its paths relative to the run's section made
/// relative to the section's paths `fl_at` and `hf_at`.
pub(crate) fn relocated(mut problem: Problem, fl_at: At, hf_at: At) -> Problem {
    problem.fast_llm = problem.fast_llm.map(|path| fl_at.join(&path));
    problem.hf = problem.hf.map(|path| hf_at.join(&path));
    problem
}

/// A sub-run's result: `value` when the run found no problem.
fn unless_problems<T>(value: T, problems: Vec<Problem>) -> Result<T, Vec<Problem>> {
    if problems.is_empty() { Ok(value) } else { Err(problems) }
}

/// Prefixes the HF keys of `problems` with `prefix`.
pub fn under_hf(prefix: &str, problems: Vec<Problem>) -> Vec<Problem> {
    prefix_paths(problems, prefix, |problem| &mut problem.hf)
}

/// Prefixes the Fast-LLM paths of `problems` with `prefix`.
pub fn under(prefix: &str, problems: Vec<Problem>) -> Vec<Problem> {
    prefix_paths(problems, prefix, |problem| &mut problem.fast_llm)
}

/// Prefixes with `prefix` the path `side` picks (Fast-LLM or HF) of each of `problems`.
fn prefix_paths(
    mut problems: Vec<Problem>,
    prefix: &str,
    side: fn(&mut Problem) -> &mut Option<String>,
) -> Vec<Problem> {
    for problem in &mut problems {
        let path = side(problem);
        *path = path.take().map(|path| join(prefix, &path));
    }
    problems
}
