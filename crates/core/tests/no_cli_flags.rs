//! Core and the transformers semantics it re-exports name no front end's option: a message names
//! a `hint::Hint`, and the front end spells it (the CLI as `--drop-key K`). Comments may name a
//! flag to explain a behaviour; code may not.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of `text` (comment lines dropped) that spell a command-line option
/// (`--` then a lowercase letter).
fn flag_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .filter(|line| {
            line.match_indices("--")
                .any(|(i, _)| line[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()))
        })
        .map(|line| line.trim().to_string())
        .collect()
}

#[test]
fn core_and_hf_spell_no_command_line_option() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["core", "hf"] {
        sources(&crates.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 10, "the sources were found: {files:?}");
    let found: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            flag_lines(&text)
                .into_iter()
                .map(move |line| format!("{}: {line}", file.display()))
        })
        .collect();
    assert!(found.is_empty(), "name a hint::Hint instead:\n{}", found.join("\n"));
}

#[test]
fn a_flag_in_code_is_found_and_one_in_a_comment_is_not() {
    let text = "// pass --text-only\nlet m = \"use --drop-key k\";\nlet n = \"-- done\";";
    assert_eq!(flag_lines(text), ["let m = \"use --drop-key k\";"]);
}
