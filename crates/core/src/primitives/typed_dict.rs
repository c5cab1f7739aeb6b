//! `TypedDictContainer`: a dict of sub-configs, each converted by the section of its type (or
//! by one section for a homogeneous dict).

use std::sync::Arc;

use fastllm_config::{Field, Map, Value};

use super::{Cell, Mount, Primitive, Row, Shape};
use crate::Problem;
use crate::coverage::Claim;
use crate::dict::{join, show};
use crate::engine::{Dst, Exporter, Importer, Mounted, Node, Origin, Src};
use crate::fl::Fl;
use crate::section::{Covers, Decl, Section};

pub(crate) struct TypedDict {
    pub fl: &'static str,
    pub hf: &'static str,
    /// The HF discriminator key inside each entry.
    pub key: &'static str,
    pub sections: Vec<Arc<Section>>,
}

impl Decl {
    /// The dict at `fl` ↔ the HF dict `hf`, entry by entry, each by the section of its type
    /// (named under `key` in the HF entry).
    pub fn typed_dict(fl: &'static str, hf: &'static str, key: &'static str, sections: Vec<Arc<Section>>) -> Self {
        Decl::new(TypedDict { fl, hf, key, sections })
    }
}

impl TypedDict {
    /// Each entry of the HF dict `entries` by the section of its type, into the Fast-LLM dict
    /// `out` under its name (a dict run inserts it as one key; a typed run writes it in place).
    fn import_entries(
        &self,
        run: &mut Importer,
        Src {
            map: entries,
            at: dict_at,
        }: Src,
        mut out: Dst,
    ) {
        for (name, entry) in entries {
            let entry_at = dict_at.child(name);
            let Some(entry) = entry.as_map() else {
                run.problems.push(Problem::at_hf(
                    entry_at.render(),
                    format!("expected a dict, found {}", show(entry)),
                ));
                continue;
            };
            let Some(section) = run.by_discriminator(&self.sections, entry, entry_at, self.key) else {
                continue;
            };
            let hf = Src::new(entry, entry_at);
            if !run.is_typed() {
                let mut entry_out = Map::new();
                run.section_at(section, hf, Dst::new(&mut entry_out, out.at.child(name)));
                out.map.insert(name.clone(), Value::Map(entry_out));
            } else if name.contains('.') {
                // One key of the dict, where a typed write's path would split at the dot.
                run.unwritable();
            } else {
                run.mount_section(out.reborrow(), name, section, hf);
            }
        }
    }
}

impl Primitive for TypedDict {
    fn kind(&self) -> &'static str {
        "TypedDictContainer"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let dict_at = fl_at.child(self.fl);
        let entries = match run.field(fl, self.fl, fl_at) {
            Some(Field::Configs(entries)) => entries,
            // A dict holding no config (an empty one) converts to an empty HF dict.
            Some(Field::Value(Value::Map(map))) if map.is_empty() => Vec::new(),
            Some(Field::Value(Value::Null)) => {
                let message = format!("not representable in {}: this format needs a config here", run.format);
                run.problems.push(Problem::at_fast_llm(dict_at.render(), message));
                return;
            }
            Some(other) => {
                let message = format!("expected a dict of configs, found {}", show(&other.into_value()));
                run.problems.push(Problem::at_fast_llm(dict_at.render(), message));
                return;
            }
            None => return,
        };
        let hf_dict_at = hf_at.child(self.hf);
        let mut out = Map::new();
        for (name, entry) in entries {
            let entry_at = dict_at.child(name);
            let entry = Fl::new(entry);
            let Some(section) = run.by_type(&self.sections, entry, entry_at) else {
                continue;
            };
            let mut sub_hf = Map::new();
            if let Some(type_name) = section.hf_type_name {
                sub_hf.insert(self.key.to_string(), Value::Str(type_name.into()));
            }
            run.section_at(
                section,
                Node::new(entry, entry_at),
                Dst::new(&mut sub_hf, hf_dict_at.child(name)),
            );
            out.insert(name.to_string(), Value::Map(sub_hf));
        }
        run.write(Dst::new(hf, hf_at), self.hf, Value::Map(out), Origin::Path(dict_at));
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        let dict_at = hf_at.child(self.hf);
        let entries = match crate::dict::get(hf, self.hf) {
            Some(Value::Map(entries)) => entries,
            found => {
                run.not_as_expected(dict_at.render(), "a dict", found);
                return;
            }
        };
        let dict = Mounted {
            fl: self.fl,
            type_name: None,
        };
        run.mount(out, dict, Origin::Path(dict_at), |run, dict_out| {
            self.import_entries(run, Src::new(entries, dict_at), dict_out)
        });
    }

    fn shape(&self, _: &str) -> Shape {
        let entry = join(self.hf, "*");
        let mut hf = vec![Claim::exact(self.hf)];
        if self.sections.iter().any(|s| s.hf_type_name.is_some()) {
            hf.push(Claim::exact(join(&entry, self.key)));
        }
        Shape {
            fast_llm: vec![self.fl],
            covers: Covers::Subtree,
            hf,
            reads_hf: true,
            sources: vec![(self.fl.into(), vec![self.hf.into()])],
            row: Row {
                fast_llm: Cell::Path(self.fl.into()),
                hf: Cell::Path(self.hf.into()),
                note: "dict of sections".into(),
            },
            mounts: (self.sections.iter())
                .map(|section| Mount::new(join(self.fl, "*"), entry.clone(), section))
                .collect(),
        }
    }
}
