//! `Dispatch`: the sub-section chosen by the config's runtime `type`, with an HF discriminator.

use std::sync::Arc;

use super::{Cell, Mount, Primitive, Row, Shape};
use crate::coverage::Claim;
use crate::dict::join;
use crate::engine::{Dst, Exporter, Importer, Node, Placement, Src};
use crate::section::{Covers, Decl, Section};

pub(crate) struct Dispatch {
    pub fl: &'static str,
    pub hf_path: Option<&'static str>,
    pub key: &'static str,
    pub sections: Vec<Arc<Section>>,
}

impl Decl {
    /// The config at `fl` converted by the section of its runtime `type`; the HF dict (this one,
    /// or the sub-dict `hf_path`) names it under `key`, with each section's HF type name.
    pub fn dispatch(
        fl: &'static str,
        hf_path: Option<&'static str>,
        key: &'static str,
        sections: Vec<Arc<Section>>,
    ) -> Self {
        Decl::new(Dispatch {
            fl,
            hf_path,
            key,
            sections,
        })
    }
}

impl Primitive for Dispatch {
    fn kind(&self) -> &'static str {
        "Dispatch"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let Some(sub) = run.sub_config(fl, self.fl, fl_at) else {
            return;
        };
        let sub_at = fl_at.child(self.fl);
        if let Some(section) = run.by_type(&self.sections, sub, sub_at) {
            run.place(
                section,
                Node::new(sub, sub_at),
                Dst::new(hf, hf_at),
                Placement {
                    hf_path: self.hf_path,
                    discriminator: Some(self.key),
                },
            );
        }
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        let sub_at = hf_at.child(self.hf_path.unwrap_or(""));
        let Some(sub_hf) = run.sub_hf(hf, hf_at, self.hf_path) else {
            return;
        };
        let Some(section) = run.by_discriminator(&self.sections, sub_hf, sub_at, self.key) else {
            return;
        };
        run.mount_section(out, self.fl, section, Src::new(sub_hf, sub_at));
    }

    fn shape(&self, _: &str) -> Shape {
        let hf = self.hf_path.unwrap_or("");
        let key = join(hf, self.key);
        Shape {
            fast_llm: vec![self.fl],
            covers: Covers::Subtree,
            hf: vec![Claim::exact(key.clone())],
            reads_hf: true,
            sources: vec![(join(self.fl, "type"), vec![key.clone()])],
            row: Row {
                fast_llm: Cell::Path(self.fl.into()),
                hf: Cell::Path(key),
                note: "by type".into(),
            },
            mounts: (self.sections.iter())
                .map(|section| Mount::new(self.fl, hf, section))
                .collect(),
        }
    }
}
