//! `Ignored`: claims Fast-LLM subtrees and HF keys that carry nothing to convert.

use super::{Cell, Primitive, Row, Shape};
use crate::coverage::Claim;
use crate::engine::{Dst, Exporter, Importer, Node, Src};
use crate::section::{Covers, Decl};

pub(crate) struct Ignored {
    pub fl: &'static [&'static str],
    pub hf: &'static [&'static str],
}

impl Decl {
    /// Fast-LLM subtrees that carry nothing to convert (weights, dropout, ...).
    pub fn ignored(fl: &'static [&'static str]) -> Self {
        Decl::new(Ignored { fl, hf: &[] })
    }

    /// HF keys (and everything below them) that carry nothing to convert.
    pub fn ignored_hf(hf: &'static [&'static str]) -> Self {
        Decl::new(Ignored { fl: &[], hf })
    }
}

impl Primitive for Ignored {
    fn kind(&self) -> &'static str {
        "Ignored"
    }

    fn export(&self, _: &mut Exporter, _: Node, _: Dst) {}

    fn import(&self, _: &mut Importer, _: Src, _: Dst) {}

    fn shape(&self, _: &str) -> Shape {
        Shape {
            fast_llm: self.fl.to_vec(),
            covers: Covers::Subtree,
            hf: self.hf.iter().map(|key| Claim::subtree(*key)).collect(),
            reads_hf: false,
            sources: Vec::new(),
            row: Row {
                fast_llm: Cell::Tops(self.fl),
                hf: Cell::Tops(self.hf),
                note: "nothing to convert".into(),
            },
            mounts: Vec::new(),
        }
    }
}
