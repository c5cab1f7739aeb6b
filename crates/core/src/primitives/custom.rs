//! `Custom`: a shape-changing transform both ways, written as code — the escape hatch for what
//! no declarative primitive expresses. It may run sub-sections of its own (its *delegates*),
//! which coverage, `explain` and provenance then walk like any sub-section.

use std::sync::Arc;

use fastllm_config::Map;

use super::import_only::ImportOnly;
use super::{Mount, Primitive, Shape};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::fl::Fl;
use crate::section::{Covers, Decl, ExportContext, HfWrites, ImportContext, Section, Writes};

/// Custom export: the section's typed Fast-LLM config → HF writes (paths relative to the section).
pub type ExportFn = Arc<dyn Fn(Fl, &ExportContext) -> HfWrites + Send + Sync>;

/// A Custom declaration, still open to [`Custom::delegating`]; it converts into a [`Decl`].
#[derive(Clone)]
pub struct Custom {
    import: Arc<ImportOnly>,
    export: ExportFn,
    /// The sub-sections it runs, with the Fast-LLM path each is mounted at.
    delegates: Vec<(&'static str, Arc<Section>)>,
    /// The HF sub-dict the delegates read and write (empty: this section's own dict).
    hf_mount: &'static str,
}

/// What a [`Custom`] converts: its Fast-LLM paths (relative to its section) and HF keys, and
/// how far the Fast-LLM paths reach for architecture coverage.
#[derive(Debug, Clone, Copy)]
pub struct Claims {
    pub fast_llm: &'static [&'static str],
    pub hf: &'static [&'static str],
    pub covers: Covers,
}

impl Claims {
    /// Exactly the Fast-LLM paths `fast_llm` (each architecture sub-field needs its own
    /// declaration) ↔ the HF keys `hf`.
    pub fn exact(fast_llm: &'static [&'static str], hf: &'static [&'static str]) -> Self {
        Claims {
            fast_llm,
            hf,
            covers: Covers::Exact,
        }
    }

    /// The Fast-LLM paths `fast_llm` and everything below them ↔ the HF keys `hf`.
    pub fn subtree(fast_llm: &'static [&'static str], hf: &'static [&'static str]) -> Self {
        Claims {
            fast_llm,
            hf,
            covers: Covers::Subtree,
        }
    }
}

impl Decl {
    /// A transform of the claimed Fast-LLM paths ↔ HF keys, both ways, as code.
    pub fn custom(
        claims: Claims,
        export: impl Fn(Fl, &ExportContext) -> HfWrites + Send + Sync + 'static,
        import: impl Fn(&Map, &ImportContext) -> Writes + Send + Sync + 'static,
    ) -> Custom {
        let Claims { fast_llm, hf, covers } = claims;
        Custom {
            import: Arc::new(ImportOnly {
                fl: fast_llm,
                hf,
                covers,
                import: Arc::new(import),
            }),
            export: Arc::new(export),
            delegates: Vec::new(),
            hf_mount: "",
        }
    }
}

impl Custom {
    /// Records the sub-sections it runs (and where), so coverage walks them.
    pub fn delegating(self, sections: Vec<(&'static str, Arc<Section>)>) -> Self {
        self.delegating_under("", sections)
    }

    /// Like `delegating`, for sub-sections that live under the HF sub-dict `hf_mount`.
    pub fn delegating_under(self, hf_mount: &'static str, sections: Vec<(&'static str, Arc<Section>)>) -> Self {
        Custom {
            delegates: sections,
            hf_mount,
            ..self
        }
    }
}

impl From<Custom> for Decl {
    fn from(custom: Custom) -> Decl {
        Decl::new(custom)
    }
}

impl Primitive for Custom {
    fn kind(&self) -> &'static str {
        "Custom"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let first = fl_at.child(self.import.fl.first().copied().unwrap_or(""));
        let fl_prefix = fl_at.render();
        let context = ExportContext {
            layout: run.layout,
            format: run.format,
            fast_llm_path: &fl_prefix,
        };
        match (self.export)(fl, &context) {
            Ok(writes) => {
                for write in writes {
                    let source = match &write.source {
                        Some(source) => Origin::Path(fl_at.child(source)),
                        None => Origin::Path(first),
                    };
                    run.write(Dst::new(hf, hf_at), &write.key, write.value, source);
                }
            }
            Err(problems) => run.push_relative(problems, fl_at, hf_at),
        }
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        self.import.import(run, Src::new(hf, hf_at), out);
    }

    fn shape(&self, name: &str) -> Shape {
        let mut shape = self.import.shape(name);
        shape.row.note = format!("`{name}`");
        shape.mounts = (self.delegates.iter())
            .map(|(mount, section)| Mount::new(*mount, self.hf_mount, section))
            .collect();
        shape
    }
}
