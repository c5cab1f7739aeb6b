//! `ListDispatch`: a block sequence ↔ a positional HF layout list (one name per pattern entry,
//! each standing for a mixer type) plus a block count. All blocks merge flat into the HF dict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fastllm_config::{BlockSequenceConfig, Map, Value};

use super::{Cell, Mount, Primitive, Row, Shape};
use crate::Problem;
use crate::blocks::block_path;
use crate::coverage::Claim;
use crate::dict::{self, join, show};
use crate::engine::{At, Dst, Exporter, Importer, Mounted, Node, Origin, Src};
use crate::fl::Fl;
use crate::section::{Covers, Decl, Section};

/// One block section of a `ListDispatch`, chosen by the block's mixer type.
#[derive(Clone)]
pub struct LayoutEntry {
    /// The HF layout string (`t`, `m2`, ...).
    pub layout_name: &'static str,
    /// The mixer `type` it stands for.
    pub mixer_type: &'static str,
    pub section: Arc<Section>,
}

pub(crate) struct ListDispatch {
    pub fl: &'static str,
    pub hf_layout: &'static str,
    pub hf_count: &'static str,
    pub entries: Vec<LayoutEntry>,
}

impl Decl {
    /// The block sequence at `fl` ↔ the HF layout list `hf_layout` and block count `hf_count`.
    pub fn list_dispatch(
        fl: &'static str,
        hf_layout: &'static str,
        hf_count: &'static str,
        entries: Vec<LayoutEntry>,
    ) -> Self {
        Decl::new(ListDispatch {
            fl,
            hf_layout,
            hf_count,
            entries,
        })
    }
}

impl ListDispatch {
    fn supported(&self, name: impl Fn(&LayoutEntry) -> &'static str) -> String {
        self.entries.iter().map(name).collect::<Vec<_>>().join(", ")
    }
}

impl ListDispatch {
    /// The import's typed run: the sequence claimed with its `type`, then each block section
    /// writing in place, then the pattern and the count (the dict run builds the same values).
    fn import_typed(&self, run: &mut Importer, hf: Src, out: Dst, (layout, count): (&[&String], Value)) {
        let distinct: BTreeSet<&String> = layout.iter().copied().collect();
        let kind = if distinct.len() == 1 { "fixed" } else { "pattern" };
        let sequence = Mounted {
            fl: self.fl,
            type_name: Some(kind),
        };
        let layout_at = hf.at.child(self.hf_layout);
        let origin = Origin::Path(layout_at);
        run.mount(out, sequence, origin, |run, mut sequence| {
            if let [name] = Vec::from_iter(&distinct)[..] {
                self.import_block(run, (hf, sequence.reborrow()), name, "block");
            } else {
                let blocks = Mounted {
                    fl: "blocks",
                    type_name: None,
                };
                run.mount(sequence.reborrow(), blocks, origin, |run, mut blocks| {
                    for name in &distinct {
                        self.import_block(run, (hf, blocks.reborrow()), name, name);
                    }
                });
                let pattern = layout.iter().map(|n| Value::Str((*n).clone())).collect();
                run.write(sequence.reborrow(), "pattern", Value::List(pattern), origin);
            }
            run.write(sequence, "num_blocks", count, origin);
        });
    }

    /// The block of layout name `name`, its section writing at `fl` below `out`.
    fn import_block(&self, run: &mut Importer, (hf, out): (Src, Dst), name: &str, fl: &str) {
        if fl.contains('.') {
            // One key of the sequence's `blocks`, where a typed write's path would split.
            run.unwritable();
            return;
        }
        let entry = self.entries.iter().find(|e| e.layout_name == name);
        let section = &entry.expect("checked by the import").section;
        run.mount_section(out, fl, section, hf);
    }
}

impl Primitive for ListDispatch {
    fn kind(&self) -> &'static str {
        "ListDispatch"
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        let Some(sequence) = run.sub_config(fl, self.fl, fl_at) else {
            return;
        };
        let fl_at = fl_at.child(self.fl);
        let sequence = match sequence.config::<BlockSequenceConfig>() {
            Ok(sequence) => sequence,
            Err(problem) => return run.push_at(problem, fl_at),
        };
        // The layout name of each distinct block, by its name in the sequence.
        let mut names = BTreeMap::new();
        for (name, block) in sequence.distinct() {
            let path = block_path(name);
            let block_at = fl_at.child(&path);
            let block = Fl::new(block);
            let Some(mixer_type) = run.read(block, "mixer.type", block_at) else {
                continue;
            };
            match (self.entries.iter()).find(|e| matches!(&mixer_type, Value::Str(t) if t == e.mixer_type)) {
                Some(entry) => {
                    names.insert(name, entry.layout_name);
                    run.section_at(&entry.section, Node::new(block, block_at), Dst::new(hf, hf_at));
                }
                None => run.problems.push(Problem::at_fast_llm(
                    block_at.join("mixer.type"),
                    format!(
                        "not representable in {}: mixer {} (supported: {})",
                        run.format,
                        show(&mixer_type),
                        self.supported(|e| e.mixer_type)
                    ),
                )),
            }
        }
        let unit = sequence.unit();
        let layout: Vec<Value> = (unit.iter())
            .filter_map(|(name, _)| names.get(name))
            .map(|n| Value::Str(n.to_string()))
            .collect();
        if layout.len() == unit.len() {
            run.write(
                Dst::new(hf, hf_at),
                self.hf_layout,
                Value::List(layout),
                Origin::Path(fl_at),
            );
        }
        run.write(
            Dst::new(hf, hf_at),
            self.hf_count,
            Value::Int(sequence.num_blocks().into()),
            Origin::Path(fl_at.child("num_blocks")),
        );
    }

    fn import(&self, run: &mut Importer, Src { map: hf, at: hf_at }: Src, out: Dst) {
        let layout_at = hf_at.child(self.hf_layout);
        let layout: Vec<&String> = match dict::get(hf, self.hf_layout) {
            Some(Value::List(items)) if !items.is_empty() => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Str(name) if self.entries.iter().any(|e| e.layout_name == name) => names.push(name),
                        other => run.problems.push(Problem::at_hf(
                            format!("{}.{i}", layout_at.render()),
                            format!(
                                "unsupported layout entry {} (supported: {})",
                                show(other),
                                self.supported(|e| e.layout_name)
                            ),
                        )),
                    }
                }
                names
            }
            found => {
                run.not_as_expected(layout_at.render(), "a non-empty list", found);
                return;
            }
        };
        let Some(count) = dict::get(hf, self.hf_count).cloned() else {
            run.missing(hf_at.join(self.hf_count));
            return;
        };
        if run.is_typed() {
            self.import_typed(run, Src::new(hf, hf_at), out, (&layout, count));
            return;
        }
        let Dst {
            map: out, at: fl_at, ..
        } = out;
        let sequence_at = fl_at.child(self.fl);
        let import_block = |run: &mut Importer, name: &str, block_at: At| {
            let entry = self
                .entries
                .iter()
                .find(|e| e.layout_name == name)
                .expect("checked above");
            let mut block = Map::new();
            run.section_at(&entry.section, Src::new(hf, hf_at), Dst::new(&mut block, block_at));
            Value::Map(block)
        };
        // One distinct block is a fixed sequence; more are a pattern of the layout's names.
        let distinct: BTreeSet<&String> = layout.iter().copied().collect();
        let mut sequence = Map::new();
        if distinct.len() == 1 {
            let block = import_block(run, layout[0], sequence_at.child("block"));
            sequence.insert("type".into(), Value::Str("fixed".into()));
            sequence.insert("block".into(), block);
        } else {
            let mut blocks = Map::new();
            let blocks_at = sequence_at.child("blocks");
            for name in distinct {
                blocks.insert(name.clone(), import_block(run, name, blocks_at.child(name)));
            }
            let pattern = layout.iter().map(|n| Value::Str((*n).clone())).collect();
            sequence.insert("type".into(), Value::Str("pattern".into()));
            sequence.insert("blocks".into(), Value::Map(blocks));
            sequence.insert("pattern".into(), Value::List(pattern));
        }
        sequence.insert("num_blocks".into(), count);
        run.write(
            Dst::new(out, fl_at),
            self.fl,
            Value::Map(sequence),
            Origin::Path(layout_at),
        );
    }

    fn shape(&self, _: &str) -> Shape {
        let mut mounts = Vec::new();
        for entry in &self.entries {
            let shown = format!("{}.<{}>", self.fl, entry.layout_name);
            mounts.push(Mount {
                shown_as: Some(shown),
                ..Mount::new(join(self.fl, "block"), "", &entry.section)
            });
            mounts.push(Mount {
                shown_as: None,
                ..Mount::new(join(self.fl, "blocks.*"), "", &entry.section)
            });
        }
        Shape {
            fast_llm: vec![self.fl],
            covers: Covers::Subtree,
            hf: vec![Claim::exact(self.hf_layout), Claim::exact(self.hf_count)],
            reads_hf: true,
            sources: vec![
                (join(self.fl, "num_blocks"), vec![self.hf_count.into()]),
                (join(self.fl, "pattern"), vec![self.hf_layout.into()]),
            ],
            row: Row {
                fast_llm: Cell::Path(self.fl.into()),
                hf: Cell::Paths(vec![self.hf_layout.into(), self.hf_count.into()]),
                note: "layout list".into(),
            },
            mounts,
        }
    }
}
