//! `ConstantExport`: an HF key the format always writes with one value; import checks it when
//! present. No Fast-LLM field.

use fastllm_config::Value;

use super::{Cell, Primitive, Row, Shape};
use crate::Problem;
use crate::coverage::Claim;
use crate::dict::{same, show};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::section::{Covers, Decl};

pub(crate) struct ConstExport {
    pub hf: &'static str,
    pub value: Value,
}

impl Decl {
    /// Export writes `hf = value`; import checks it when present.
    pub fn const_export(hf: &'static str, value: Value) -> Self {
        Decl::new(ConstExport { hf, value })
    }
}

impl Primitive for ConstExport {
    fn kind(&self) -> &'static str {
        "ConstantExport"
    }

    fn export(&self, run: &mut Exporter, _: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let origin = Origin::Constant(hf_at.child(self.hf));
        run.write(Dst::new(hf, hf_at), self.hf, self.value.clone(), origin);
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, _: Dst) {
        if let Some(found) = crate::dict::get(hf, self.hf)
            && !same(found, &self.value)
        {
            run.problems.push(Problem::at_hf(
                hf_at.join(self.hf),
                format!(
                    "not representable: {} only holds {}, found {}",
                    run.format,
                    show(&self.value),
                    show(found)
                ),
            ));
        }
    }

    fn shape(&self, _: &str) -> Shape {
        Shape {
            fast_llm: Vec::new(),
            covers: Covers::Exact,
            hf: vec![Claim::exact(self.hf)],
            reads_hf: true,
            sources: Vec::new(),
            row: Row {
                fast_llm: Cell::None,
                hf: Cell::Path(self.hf.into()),
                note: format!("always {}", show(&self.value)),
            },
            mounts: Vec::new(),
        }
    }
}
