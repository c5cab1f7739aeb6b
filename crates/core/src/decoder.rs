//! The decoder shape most HF formats share: one block description (the block's keys at the
//! config's root) repeated `num_hidden_layers` times. A fixed sequence is that; a pattern
//! sequence exports only when all its blocks are identical in the format, and imports as fixed.
//!
//! Declared as a Custom (its claims, import and `explain` row are a Custom's), exported by the
//! engine directly: each distinct block runs into a dict of its own, and the first block's keys
//! are written with the writers recorded there, so no write is copied or re-sourced by string.

use std::sync::Arc;

use fastllm_config::Value;

use crate::blocks::block_path;
use crate::engine::{Dst, Exporter, Importer, Node, Origin, Src, import_sub, under};
use crate::fl::Fl;
use crate::primitives::{Custom, Primitive, Shape};
use crate::section::{Decl, Section};
use crate::values::text;
use crate::{Claims, Problem};

/// The root's `decoder` ↔ `block`'s HF keys at the root plus `num_hidden_layers`.
pub fn uniform(block: Arc<Section>) -> Decl {
    let import_block = block.clone();
    let custom = Decl::custom(
        Claims::subtree(&["decoder"], &["num_hidden_layers"]),
        // Never called: `Uniform` exports itself.
        |_, _| Ok(Vec::new()),
        move |hf, context| {
            let block = import_sub(&import_block, hf, context).map_err(|e| under("decoder.block", e))?;
            let count = hf.get("num_hidden_layers").cloned().ok_or_else(|| {
                let message = format!("missing (required by {})", context.format);
                vec![Problem::at_hf("num_hidden_layers", message)]
            })?;
            Ok(vec![
                ("decoder.type".into(), text("fixed")),
                ("decoder.block".into(), Value::Map(block)),
                ("decoder.num_blocks".into(), count),
            ])
        },
    )
    .delegating(vec![("decoder.block", block.clone())]);
    Decl::new(Uniform { custom, block })
}

/// [`uniform`]'s declaration.
struct Uniform {
    /// Its claims, import and shape.
    custom: Custom,
    block: Arc<Section>,
}

impl Primitive for Uniform {
    fn kind(&self) -> &'static str {
        self.custom.kind()
    }

    fn export(&self, run: &mut Exporter, Node { fl, at: fl_at }: Node, Dst { map: hf, at: hf_at, .. }: Dst) {
        if let Err(problems) = self.export_blocks(run, Node::new(fl, fl_at), Dst::new(hf, hf_at)) {
            run.push_relative(problems, fl_at, hf_at);
        }
    }

    fn import(&self, run: &mut Importer, hf: Src, mut out: Dst) {
        if !run.is_typed() {
            self.custom.import(run, hf, out);
            return;
        }
        // The Custom's writes, with the block's section writing in place rather than a dict
        // of its own: its problems are the dict run's to report.
        let Some(count) = hf.map.get("num_hidden_layers").cloned() else {
            run.unwritable();
            return;
        };
        let origin = Origin::Path(hf.at);
        run.write(out.reborrow(), "decoder.type", text("fixed"), origin);
        run.mount_section(out.reborrow(), "decoder.block", &self.block, hf);
        run.write(out, "decoder.num_blocks", count, origin);
    }

    fn shape(&self, name: &str) -> Shape {
        self.custom.shape(name)
    }
}

impl Uniform {
    /// Writes the block description and `num_hidden_layers`, or returns the problems (paths
    /// relative to the section, as a Custom's).
    fn export_blocks(
        &self,
        run: &mut Exporter,
        Node { fl, at: fl_at }: Node,
        Dst { map: hf, at: hf_at, .. }: Dst,
    ) -> Result<(), Vec<Problem>> {
        let decoder = fl.text_model()?.decoder;
        let mut exported = Vec::new();
        let mut problems = Vec::new();
        for (name, block) in decoder.distinct() {
            match run.export_apart(&self.block, Fl::new(block)) {
                Ok((hf, writers)) => exported.push((name, hf, writers)),
                Err(errors) => problems.extend(under(&format!("decoder.{}", block_path(name)), errors)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut exported = exported.into_iter();
        let Some((first_name, first, writers)) = exported.next() else {
            return Err(vec![Problem::at_fast_llm("decoder", "no blocks")]);
        };
        let first_path = format!("decoder.{}", block_path(first_name));
        for (name, other, _) in exported {
            if other != first {
                let message = format!(
                    "differs from `{first_path}`: the format repeats one block description, so pattern blocks \
                     must be identical"
                );
                problems.push(Problem::at_fast_llm(format!("decoder.{}", block_path(name)), message));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (decoder_at, block_at) = (fl_at.child("decoder"), fl_at.child(&first_path));
        for (key, value) in first {
            let origin = match writers.first_writer(&key) {
                Some(writer) => Origin::Path(block_at.child(writer)),
                None => Origin::Path(decoder_at),
            };
            run.write(Dst::new(hf, hf_at), &key, value, origin);
        }
        let count = Value::Int(decoder.num_blocks().into());
        run.write(
            Dst::new(hf, hf_at),
            "num_hidden_layers",
            count,
            Origin::Path(decoder_at),
        );
        Ok(())
    }
}
