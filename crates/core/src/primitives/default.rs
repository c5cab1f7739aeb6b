//! `Default`: like `Rename`, but an absent HF key takes a value computed from the HF dict.

use std::sync::Arc;

use fastllm_config::{Map, Value};

use super::rename::Rename;
use super::{Primitive, Row, Shape};
use crate::Problem;
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::section::Decl;

/// HF-side fallback for `Default`, computed from the whole HF dict.
pub type FallbackFn = Arc<dyn Fn(&Map) -> Result<Value, String> + Send + Sync>;

pub(crate) struct Default {
    pub rename: Rename,
    pub fallback: FallbackFn,
}

impl Decl {
    /// Like [`Decl::rename`], but an absent HF key takes `fallback(HF dict)`.
    pub fn default(
        fl: &'static str,
        hf: &'static str,
        fallback: impl Fn(&Map) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        Decl::new(Default {
            rename: Rename { fl, hf },
            fallback: Arc::new(fallback),
        })
    }
}

impl Primitive for Default {
    fn kind(&self) -> &'static str {
        "Default"
    }

    fn export(&self, run: &mut Exporter, fl: Node, hf: Dst) {
        self.rename.export(run, fl, hf);
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        let Rename { fl, hf: key } = self.rename;
        let value = match crate::dict::get(hf, key) {
            Some(value) => Ok(value.clone()),
            None => (self.fallback)(run.root),
        };
        match value {
            Ok(value) => run.write(out, fl, value, Origin::Path(hf_at.child(key))),
            Err(message) => run.problems.push(Problem::at_hf(hf_at.join(key), message)),
        }
    }

    fn shape(&self, name: &str) -> Shape {
        let shape = self.rename.shape(name);
        Shape {
            row: Row {
                note: "derived when absent".into(),
                ..shape.row
            },
            ..shape
        }
    }
}
