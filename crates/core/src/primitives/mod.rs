//! The config primitives (Fast-LLM's `ConfigConverter`s), one module each.
//!
//! A primitive owns all of its behaviour: how it exports and imports (run by the engine), and
//! its `Shape` — what it claims on either side, which HF keys set which Fast-LLM paths, its row
//! in `explain`, and the sub-sections it runs — from which coverage, `explain` and provenance
//! are derived by one walk (`visit`). Adding a primitive is adding one module here: a type
//! implementing `Primitive` and a `Decl` constructor for it.

mod const_export;
mod const_import;
mod custom;
mod default;
mod dispatch;
mod ignored;
mod import_only;
mod list_dispatch;
mod nested;
mod optional;
mod rename;
mod typed_dict;

use std::sync::Arc;

pub use custom::{Claims, Custom};
pub use list_dispatch::LayoutEntry;

use crate::coverage::Claim;
use crate::dict::join;
use crate::engine::{Dst, Exporter, Importer, Node, Src};
use crate::section::{Covers, Section};

/// What every primitive does. Implementations live one per module beside this trait.
pub(crate) trait Primitive: Send + Sync {
    /// Its name, as in Fast-LLM.
    fn kind(&self) -> &'static str;

    /// Writes the HF keys of the section's typed Fast-LLM config `fl` into `hf`, through the
    /// exporter's safe set.
    fn export(&self, run: &mut Exporter, fl: Node, hf: Dst);

    /// Writes the Fast-LLM fields of the section's HF dict `hf` (at `hf_at`) into `out` (at
    /// `fl_at`).
    fn import(&self, run: &mut Importer, hf: Src, out: Dst);

    /// Its static shape; `name` is its name in the section.
    fn shape(&self, name: &str) -> Shape;

    /// A declaration bug found against the section's class (its default instance), if any.
    fn check(&self, _name: &str, _section: &Section) -> Option<String> {
        None
    }
}

/// What a declaration claims and runs, relative to its section's Fast-LLM path and HF dict.
pub(crate) struct Shape {
    /// The Fast-LLM paths it converts (architecture coverage), and how far they reach.
    pub fast_llm: Vec<&'static str>,
    pub covers: Covers,
    /// The HF paths it consumes (HF coverage).
    pub hf: Vec<Claim>,
    /// Whether its import reads the values at those paths (converts or checks them); `false`
    /// for keys recognised as carrying nothing, which `--drop-key` may drop.
    pub reads_hf: bool,
    /// Which HF keys set which Fast-LLM path on import (provenance); an empty list marks a
    /// constant.
    pub sources: Vec<(String, Vec<String>)>,
    /// Its row in `explain`.
    pub row: Row,
    /// The sub-sections it runs.
    pub mounts: Vec<Mount>,
}

impl Shape {
    /// A leaf converting `fast_llm` (exactly) ↔ HF keys `hf`, each the source of every path.
    pub fn leaf(fast_llm: &[&'static str], hf: &[&str], row: Row) -> Shape {
        Shape {
            fast_llm: fast_llm.to_vec(),
            covers: Covers::Exact,
            hf: hf.iter().map(|key| Claim::exact(*key)).collect(),
            reads_hf: true,
            sources: fast_llm
                .iter()
                .map(|fl| (fl.to_string(), hf.iter().map(|k| k.to_string()).collect()))
                .collect(),
            row,
            mounts: Vec::new(),
        }
    }
}

/// An `explain` row, relative to the section's paths.
pub(crate) struct Row {
    pub fast_llm: Cell,
    pub hf: Cell,
    pub note: String,
}

/// One cell of an `explain` row.
pub(crate) enum Cell {
    /// Nothing on this side (`—`).
    None,
    /// A sub-section merged into this HF dict (`(flat)`).
    Flat,
    /// One path.
    Path(String),
    /// Several paths, each shown by its top-level part (`layer_1.*`).
    Tops(&'static [&'static str]),
    /// Several paths, each in full.
    Paths(Vec<String>),
}

impl Cell {
    /// The cell's text under `prefix`.
    pub fn render(&self, prefix: &str) -> String {
        match self {
            Cell::None => "—".into(),
            Cell::Flat => "(flat)".into(),
            Cell::Path(path) => join(prefix, path),
            Cell::Tops(paths) => tops(prefix, paths),
            Cell::Paths(paths) => paths.iter().map(|p| join(prefix, p)).collect::<Vec<_>>().join(", "),
        }
    }
}

/// `paths` under `prefix`, each shown by its top-level part, once.
fn tops(prefix: &str, paths: &[&str]) -> String {
    let mut cells: Vec<String> = Vec::new();
    for path in paths {
        let cell = match path.split_once('.') {
            Some((head, _)) => format!("{}.*", join(prefix, head)),
            None => join(prefix, path),
        };
        if let Some(whole) = cell.strip_suffix(".*") {
            cells.retain(|c| c != whole);
        }
        if !cells.contains(&cell) && !cells.contains(&format!("{cell}.*")) {
            cells.push(cell);
        }
    }
    if cells.is_empty() {
        "—".into()
    } else {
        cells.join(", ")
    }
}

/// Where a declaration runs a sub-section: its Fast-LLM and HF paths below the declaring
/// section's (`*`: any one entry name).
pub(crate) struct Mount {
    pub fast_llm: String,
    pub hf: String,
    pub section: Arc<Section>,
    /// The Fast-LLM path `explain` shows it under; `None`: another mount of the same section
    /// already shows it.
    pub shown_as: Option<String>,
}

impl Mount {
    pub fn new(fast_llm: impl Into<String>, hf: impl Into<String>, section: &Arc<Section>) -> Mount {
        let fast_llm = fast_llm.into();
        Mount {
            shown_as: Some(fast_llm.clone()),
            fast_llm,
            hf: hf.into(),
            section: section.clone(),
        }
    }
}

/// A declaration as [`visit`] reports it.
pub(crate) struct Declared {
    pub kind: &'static str,
    pub shape: Shape,
}

/// What [`visit`] reports.
pub(crate) trait Visitor {
    /// A section entered at these prefixes (before its declarations).
    fn section(&mut self, _section: &Section, _fast_llm: &str, _hf: &str) {}
    /// A declaration of the current section, at its section's prefixes.
    fn declaration(&mut self, decl: &Declared, fast_llm: &str, hf: &str);
    /// The prefixes to walk `mount` at, or `None` to skip it.
    fn enter(&mut self, mount: &Mount, fast_llm: &str, hf: &str) -> Option<(String, String)> {
        Some((join(fast_llm, &mount.fast_llm), join(hf, &mount.hf)))
    }
}

/// Walks `root` and every sub-section it mounts, depth first in declaration order. A section
/// that (indirectly) contains itself is not entered again on that branch.
pub(crate) fn visit(root: &Section, visitor: &mut dyn Visitor) {
    walk(root, Paths { fast_llm: "", hf: "" }, visitor, &mut Vec::new());
}

/// Where a walk is: the section's Fast-LLM path and HF path.
#[derive(Clone, Copy)]
struct Paths<'a> {
    fast_llm: &'a str,
    hf: &'a str,
}

fn walk(section: &Section, paths: Paths, visitor: &mut dyn Visitor, stack: &mut Vec<*const Section>) {
    let Paths { fast_llm, hf } = paths;
    let id = section as *const Section;
    if stack.contains(&id) {
        return;
    }
    stack.push(id);
    visitor.section(section, fast_llm, hf);
    for (name, decl) in &section.decls {
        let declared = Declared {
            kind: decl.kind(),
            shape: decl.shape(name),
        };
        visitor.declaration(&declared, fast_llm, hf);
        for mount in &declared.shape.mounts {
            if let Some((sub_fast_llm, sub_hf)) = visitor.enter(mount, fast_llm, hf) {
                let sub = Paths {
                    fast_llm: &sub_fast_llm,
                    hf: &sub_hf,
                };
                walk(&mount.section, sub, visitor, stack);
            }
        }
    }
    stack.pop();
}
