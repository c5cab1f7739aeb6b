//! The mapping table of a format, generated from its declarations (`fastllm-convert explain`).

use crate::dict::join;
use crate::primitives::{Declared, Mount, Visitor, visit};
use crate::section::Section;

/// One row: a Fast-LLM path, the HF key(s), the primitive and a note.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fast_llm: String,
    pub hf: String,
    pub primitive: &'static str,
    pub note: String,
}

/// Every declaration of `root` and its sub-sections, with full paths, in declaration order.
pub fn rows(root: &Section) -> Vec<Row> {
    let mut out = Rows(Vec::new());
    visit(root, &mut out);
    let mut out = out.0;
    for part in &root.unconverted {
        out.push(Row {
            fast_llm: "—".into(),
            hf: part.keys.join(", "),
            primitive: "Unconverted",
            note: format!(
                "the {}, tensors {}: not converted; dropped only with {}",
                part.part,
                part.tensor_prefixes
                    .iter()
                    .map(|p| format!("{p}*"))
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::hint::spell(crate::hint::Hint::TextOnly)
            ),
        });
    }
    out
}

struct Rows(Vec<Row>);

impl Visitor for Rows {
    fn declaration(&mut self, decl: &Declared, fast_llm: &str, hf: &str) {
        let shape = &decl.shape;
        self.0.push(Row {
            fast_llm: shape.row.fast_llm.render(fast_llm),
            hf: shape.row.hf.render(hf),
            primitive: decl.kind,
            note: shape.row.note.clone(),
        });
    }

    /// Sub-sections show under their own paths, a dict's entries as `<name>`.
    fn enter(&mut self, mount: &Mount, fast_llm: &str, hf: &str) -> Option<(String, String)> {
        let shown = |path: &str| path.replace('*', "<name>");
        let fast_llm = join(fast_llm, &shown(mount.shown_as.as_deref()?));
        Some((fast_llm, join(hf, &shown(&mount.hf))))
    }
}

/// The table as aligned text.
pub fn render(rows: &[Row]) -> String {
    let headers = ("Fast-LLM path", "HF key", "primitive", "note");
    // Aligned on the common widths: a long list of ignored fields overflows its cell instead of
    // pushing every other row hundreds of columns to the right.
    const MAX_COLUMN: usize = 80;
    let width = |f: fn(&Row) -> usize, h: &str| {
        rows.iter()
            .map(f)
            .filter(|&w| w <= MAX_COLUMN)
            .max()
            .unwrap_or(0)
            .max(h.chars().count())
    };
    let w0 = width(|r| r.fast_llm.chars().count(), headers.0);
    let w1 = width(|r| r.hf.chars().count(), headers.1);
    let w2 = width(|r| r.primitive.len(), headers.2);
    let mut out = format!(
        "{:w0$}  {:w1$}  {:w2$}  {}\n",
        headers.0, headers.1, headers.2, headers.3
    );
    for row in rows {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row.fast_llm, row.hf, row.primitive, row.note
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fast_llm: &str) -> Row {
        Row {
            fast_llm: fast_llm.into(),
            hf: "key".into(),
            primitive: "Rename",
            note: String::new(),
        }
    }

    #[test]
    fn an_overlong_cell_overflows_without_widening_the_column() {
        let long = vec!["field"; 40].join(", ");
        let text = render(&[row("a.b"), row(&long), row("c")]);
        let lines: Vec<&str> = text.lines().collect();
        // Columns align on the short paths; the long one is the only wide line.
        assert_eq!(lines[1].find("key"), lines[3].find("key"));
        assert_eq!(lines[1].find("key"), Some("Fast-LLM path".len() + 2));
        assert!(lines[2].starts_with(&long));
    }
}
