//! The mapping table of a format, generated from its declarations (`fastllm-convert explain`).

use crate::dict::{join, show};
use crate::section::{Decl, Section};

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
    let mut out = Vec::new();
    walk(root, "", "", &mut out, 0);
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
                crate::unconverted::ACCEPT_OPTION
            ),
        });
    }
    out
}

fn list(prefix: &str, paths: &[&str]) -> String {
    let mut cells: Vec<String> = Vec::new();
    for path in paths {
        let cell = match path.split_once('.') {
            Some((head, _)) => format!("{}.*", join(prefix, head)),
            None => join(prefix, path),
        };
        if let Some(whole) = cell.strip_suffix(".*") {
            cells.retain(|c| c != whole);
        }
        if !cells.contains(&cell) && !cells.contains(&format!("{cell}.*")) {
            cells.push(cell);
        }
    }
    if cells.is_empty() {
        "—".into()
    } else {
        cells.join(", ")
    }
}

fn walk(section: &Section, fl_prefix: &str, hf_prefix: &str, out: &mut Vec<Row>, depth: usize) {
    if depth > 16 {
        return;
    }
    for (name, decl) in &section.decls {
        let mut row = |fast_llm: String, hf: String, note: String| {
            out.push(Row {
                fast_llm,
                hf,
                primitive: decl.kind(),
                note,
            });
        };
        match decl {
            Decl::Rename { fl, hf } => row(join(fl_prefix, fl), join(hf_prefix, hf), String::new()),
            Decl::ConstImport { fl, value } => row(join(fl_prefix, fl), "—".into(), format!("must be {}", show(value))),
            Decl::ConstExport { hf, value } => row("—".into(), join(hf_prefix, hf), format!("always {}", show(value))),
            Decl::Default { fl, hf, .. } => row(join(fl_prefix, fl), join(hf_prefix, hf), "derived when absent".into()),
            Decl::Optional { fl, hf, sentinel } => row(
                join(fl_prefix, fl),
                join(hf_prefix, hf),
                format!("omitted when {}", show(sentinel)),
            ),
            Decl::Ignored { fl, hf } => row(list(fl_prefix, fl), list(hf_prefix, hf), "nothing to convert".into()),
            Decl::ImportOnly { fl, hf, .. } => row(
                list(fl_prefix, fl),
                list(hf_prefix, hf),
                format!("`{name}`, import only"),
            ),
            Decl::Custom {
                fl,
                hf,
                delegates,
                hf_mount,
                ..
            } => {
                row(list(fl_prefix, fl), list(hf_prefix, hf), format!("`{name}`"));
                for (mount, delegate) in delegates {
                    walk(
                        delegate,
                        &join(fl_prefix, mount),
                        &join(hf_prefix, hf_mount),
                        out,
                        depth + 1,
                    );
                }
            }
            Decl::Nested {
                fl,
                section: sub,
                hf_path,
            } => {
                let hf_sub = hf_path
                    .map(|p| join(hf_prefix, p))
                    .unwrap_or_else(|| hf_prefix.to_string());
                row(
                    join(fl_prefix, fl),
                    if hf_path.is_some() {
                        hf_sub.clone()
                    } else {
                        "(flat)".into()
                    },
                    format!("section {}", sub.name),
                );
                walk(sub, &join(fl_prefix, fl), &hf_sub, out, depth + 1);
            }
            Decl::Dispatch {
                fl,
                hf_path,
                key,
                sections,
            } => {
                let hf_sub = hf_path
                    .map(|p| join(hf_prefix, p))
                    .unwrap_or_else(|| hf_prefix.to_string());
                row(join(fl_prefix, fl), join(&hf_sub, key), "by type".into());
                for sub in sections {
                    walk(sub, &join(fl_prefix, fl), &hf_sub, out, depth + 1);
                }
            }
            Decl::TypedDict { fl, hf, sections, .. } => {
                row(join(fl_prefix, fl), join(hf_prefix, hf), "dict of sections".into());
                for sub in sections {
                    walk(
                        sub,
                        &join(&join(fl_prefix, fl), "<name>"),
                        &join(&join(hf_prefix, hf), "<name>"),
                        out,
                        depth + 1,
                    );
                }
            }
            Decl::ListDispatch {
                fl,
                hf_layout,
                hf_count,
                entries,
            } => {
                row(
                    join(fl_prefix, fl),
                    format!("{}, {}", join(hf_prefix, hf_layout), join(hf_prefix, hf_count)),
                    "layout list".into(),
                );
                for entry in entries {
                    walk(
                        &entry.section,
                        &join(fl_prefix, &format!("{fl}.<{}>", entry.layout_name)),
                        hf_prefix,
                        out,
                        depth + 1,
                    );
                }
            }
        }
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
