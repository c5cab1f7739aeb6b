//! `ImportOnly`: an import-only transform (HF has no key to export to, or nothing to write).

use std::sync::Arc;

use fastllm_config::Map;

use super::{Cell, Primitive, Row, Shape};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src, relocated};
use crate::section::{Covers, Decl, ImportContext, Writes};

/// Custom import: the section's HF dict → Fast-LLM writes (paths relative to the section).
pub type ImportFn = Arc<dyn Fn(&Map, &ImportContext) -> Writes + Send + Sync>;

pub(crate) struct ImportOnly {
    pub fl: &'static [&'static str],
    pub hf: &'static [&'static str],
    pub covers: Covers,
    pub import: ImportFn,
}

impl Decl {
    /// An import-only transform of the HF keys `hf` into the Fast-LLM paths `fl`.
    pub fn import_only(
        fl: &'static [&'static str],
        hf: &'static [&'static str],
        covers: Covers,
        import: impl Fn(&Map, &ImportContext) -> Writes + Send + Sync + 'static,
    ) -> Self {
        Decl::new(ImportOnly {
            fl,
            hf,
            covers,
            import: Arc::new(import),
        })
    }
}

impl Primitive for ImportOnly {
    fn kind(&self) -> &'static str {
        "ImportOnly"
    }

    fn export(&self, _: &mut Exporter, _: Node, _: Dst) {}

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, mut out: Dst) {
        let hf_path = hf_at.render();
        let context = ImportContext {
            root: run.root,
            format: run.format,
            hf_path: &hf_path,
        };
        match (self.import)(hf, &context) {
            Ok(writes) => {
                for (path, value) in writes {
                    run.write(out.reborrow(), &path, value, Origin::Path(hf_at));
                }
            }
            Err(problems) => {
                let relocated = problems.into_iter().map(|problem| relocated(problem, out.at, hf_at));
                run.problems.extend(relocated);
            }
        }
    }

    fn shape(&self, name: &str) -> Shape {
        let row = Row {
            fast_llm: Cell::Tops(self.fl),
            hf: Cell::Tops(self.hf),
            note: format!("`{name}`, import only"),
        };
        Shape {
            covers: self.covers,
            ..Shape::leaf(self.fl, self.hf, row)
        }
    }
}
