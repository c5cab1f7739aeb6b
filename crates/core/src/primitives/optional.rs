//! `Optional`: written only when the Fast-LLM value is not its sentinel (the field's default);
//! read only when present and not the sentinel.

use fastllm_config::Value;

use super::{Cell, Primitive, Row, Shape};
use crate::dict::{get, same, show};
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src};
use crate::section::{Decl, Section};

pub(crate) struct Optional {
    pub fl: &'static str,
    pub hf: &'static str,
    pub sentinel: Value,
}

impl Decl {
    /// Written only when `fl != sentinel`; read only when present and `!= sentinel`.
    pub fn optional(fl: &'static str, hf: &'static str, sentinel: Value) -> Self {
        Decl::new(Optional { fl, hf, sentinel })
    }
}

impl Primitive for Optional {
    fn kind(&self) -> &'static str {
        "Optional"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        if let Some(value) = run.read(fl, self.fl, fl_at)
            && !same(&value, &self.sentinel)
        {
            run.write(Dst::new(hf, hf_at), self.hf, value, Origin::Path(fl_at.child(self.fl)));
        }
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        if let Some(value) = get(hf, self.hf)
            && !same(value, &self.sentinel)
        {
            run.write(out, self.fl, value.clone(), Origin::Path(hf_at.child(self.hf)));
        }
    }

    fn shape(&self, _: &str) -> Shape {
        let row = Row {
            fast_llm: Cell::Path(self.fl.into()),
            hf: Cell::Path(self.hf.into()),
            note: format!("omitted when {}", show(&self.sentinel)),
        };
        Shape::leaf(&[self.fl], &[self.hf], row)
    }

    /// The sentinel must be the field's default, or a default value would be written.
    fn check(&self, name: &str, section: &Section) -> Option<String> {
        let defaults = (section.class.default_dict)();
        let default = get(&defaults, self.fl).cloned().unwrap_or(Value::Null);
        (!same(&default, &self.sentinel)).then(|| {
            format!(
                "{} ({}): Optional `{name}` sentinel {} differs from the default of `{}`, {}",
                section.name,
                section.class.name,
                show(&self.sentinel),
                self.fl,
                show(&default)
            )
        })
    }
}
