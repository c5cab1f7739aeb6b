//! `Rename`: a Fast-LLM field ↔ an HF key, the same value; a missing HF key is an error.

use super::{Cell, Primitive, Row, Shape};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::section::Decl;

pub(crate) struct Rename {
    pub fl: &'static str,
    pub hf: &'static str,
}

impl Decl {
    /// `hf ← fl` and back; a missing HF key is an error.
    pub fn rename(fl: &'static str, hf: &'static str) -> Self {
        Decl::new(Rename { fl, hf })
    }

    /// [`Decl::rename`] to the HF key of the same name.
    pub fn same(fl: &'static str) -> Self {
        Decl::rename(fl, fl)
    }
}

impl Primitive for Rename {
    fn kind(&self) -> &'static str {
        "Rename"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        if let Some(value) = run.read(fl, self.fl, fl_at) {
            run.write(Dst::new(hf, hf_at), self.hf, value, Origin::Path(fl_at.child(self.fl)));
        }
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        match crate::dict::get(hf, self.hf) {
            Some(value) => run.write(out, self.fl, value.clone(), Origin::Path(hf_at.child(self.hf))),
            None => run.missing(hf_at.join(self.hf)),
        }
    }

    fn shape(&self, _: &str) -> Shape {
        let row = Row {
            fast_llm: Cell::Path(self.fl.into()),
            hf: Cell::Path(self.hf.into()),
            note: String::new(),
        };
        Shape::leaf(&[self.fl], &[self.hf], row)
    }
}
