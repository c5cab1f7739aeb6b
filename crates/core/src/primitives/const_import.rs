//! `ConstantImport`: a Fast-LLM field the format cannot vary. Export requires its value; import
//! writes it. No HF key.

use fastllm_config::Value;

use super::{Cell, Primitive, Row, Shape};
use crate::Problem;
use crate::dict::{same, show};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::section::Decl;

pub(crate) struct ConstImport {
    pub fl: &'static str,
    pub value: Value,
}

impl Decl {
    /// Export requires `fl == value`; import writes it. No HF key.
    pub fn const_import(fl: &'static str, value: Value) -> Self {
        Decl::new(ConstImport { fl, value })
    }
}

impl Primitive for ConstImport {
    fn kind(&self) -> &'static str {
        "ConstantImport"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, _: Dst) {
        let Some(found) = run.read(fl, self.fl, fl_at) else {
            return;
        };
        if !same(&found, &self.value) {
            run.problems.push(Problem::at_fast_llm(
                fl_at.join(self.fl),
                format!(
                    "not representable in {}: must be {}, found {}",
                    run.format,
                    show(&self.value),
                    show(&found)
                ),
            ));
        }
    }

    fn import(&self, run: &mut Importer, _: Src, out: Dst) {
        run.write(out, self.fl, self.value.clone(), Origin::Text("(constant)"));
    }

    fn shape(&self, _: &str) -> Shape {
        let row = Row {
            fast_llm: Cell::Path(self.fl.into()),
            hf: Cell::None,
            note: format!("must be {}", show(&self.value)),
        };
        // A constant is the source of its path: no HF key sets it.
        Shape::leaf(&[self.fl], &[], row)
    }
}
