//! `Nested`: a sub-section at a Fast-LLM path, merged flat into this HF dict or placed under an
//! HF sub-dict.

use std::sync::Arc;

use fastllm_config::Value;

use super::{Cell, Mount, Primitive, Row, Shape};
use crate::Problem;
use crate::coverage::Claim;
use crate::dict::{join, show};
use crate::engine::{Dst, Exporter, Importer, Node, Placement, Src};
use crate::section::{Covers, Decl, Section};

pub(crate) struct Nested {
    pub fl: &'static str,
    pub section: Arc<Section>,
    pub hf_path: Option<&'static str>,
}

impl Decl {
    /// The sub-section at `fl`, flat-merged into this HF dict.
    pub fn nested(fl: &'static str, section: Arc<Section>) -> Self {
        Decl::new(Nested {
            fl,
            section,
            hf_path: None,
        })
    }

    /// The sub-section at `fl`, under the HF sub-dict `hf_path`.
    pub fn nested_under(fl: &'static str, section: Arc<Section>, hf_path: &'static str) -> Self {
        Decl::new(Nested {
            fl,
            section,
            hf_path: Some(hf_path),
        })
    }
}

impl Primitive for Nested {
    fn kind(&self) -> &'static str {
        "Nested"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let Some(sub) = run.sub_config(fl, self.fl, fl_at) else {
            return;
        };
        // A sub-section with an HF type name writes it, flat or under its path.
        let discriminator = self.section.hf_type_name.map(|_| "type");
        run.place(
            &self.section,
            Node::new(sub, fl_at.child(self.fl)),
            Dst::new(hf, hf_at),
            Placement {
                hf_path: self.hf_path,
                discriminator,
            },
        );
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        let sub_at = hf_at.child(self.hf_path.unwrap_or(""));
        let Some(sub_hf) = run.sub_hf(hf, hf_at, self.hf_path) else {
            return;
        };
        if let Some(name) = self.section.hf_type_name
            && let Some(found) = sub_hf.get("type")
            && !matches!(found, Value::Str(f) if f == name)
        {
            run.problems.push(Problem::at_hf(
                sub_at.join("type"),
                format!("expected {name:?}, found {}", show(found)),
            ));
        }
        run.mount_section(out, self.fl, &self.section, Src::new(sub_hf, sub_at));
    }

    fn shape(&self, _: &str) -> Shape {
        let hf = self.hf_path.unwrap_or("");
        Shape {
            fast_llm: vec![self.fl],
            covers: Covers::Subtree,
            hf: (self.section.hf_type_name.iter())
                .map(|_| Claim::exact(join(hf, "type")))
                .collect(),
            reads_hf: true,
            sources: Vec::new(),
            row: Row {
                fast_llm: Cell::Path(self.fl.into()),
                hf: self.hf_path.map_or(Cell::Flat, |path| Cell::Path(path.into())),
                note: format!("section {}", self.section.name),
            },
            mounts: vec![Mount::new(self.fl, hf, &self.section)],
        }
    }
}
