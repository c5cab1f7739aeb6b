//! `convert --part K/N` and `--finalize`: a conversion split into parts, run in any order,
//! retried, and assembled into the same bytes as one whole conversion.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{file_contents as files, synthetic_llama};

/// A synthetic Llama of about 30 MB in F32: five 8 MB shards at most.
fn llama(dir: &Path) -> PathBuf {
    synthetic_llama(dir, 256, 4, u64::MAX)
}

fn scratch(name: &str) -> PathBuf {
    support::scratch("parts", name)
}

fn convert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .arg("convert")
        .args(["--from", "llama", "--to", "llama", "--max-shard-size", "8MB"])
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "stderr: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    stderr
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn parts_in_any_order_retried_then_finalized_equal_one_whole_conversion() {
    let dir = scratch("whole");
    let input = llama(&dir);
    let whole = dir.join("whole");
    ok(&convert(&[s(&input), s(&whole)]));
    let shards = files(&whole)
        .iter()
        .filter(|(n, _)| n.ends_with(".safetensors"))
        .count();
    assert!(shards >= 3, "{shards} shards");

    let output = dir.join("split");
    for part in ["2/3", "0/3"] {
        let printed = ok(&convert(&["--part", part, s(&input), s(&output)]));
        assert!(printed.contains(&format!("wrote part {part}")), "{printed}");
    }
    assert!(!output.exists(), "a part writes beside the output, never the output");
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("1 of 3 part(s) missing: 1/3"), "{stderr}");
    assert!(!output.exists());
    // A retried part replaces its previous attempt with the same bytes.
    ok(&convert(&["--part", "1/3", s(&input), s(&output)]));
    let first = files(&dir.join("split.part-1-of-3"));
    ok(&convert(&["--part", "1/3", s(&input), s(&output)]));
    assert_eq!(first, files(&dir.join("split.part-1-of-3")));
    // Every part holds a file: balanced by bytes.
    for k in 0..3 {
        let held = files(&dir.join(format!("split.part-{k}-of-3")));
        assert!(
            held.iter().any(|(n, _)| n.ends_with(".safetensors")),
            "part {k}: {held:?}"
        );
    }

    ok(&convert(&["--finalize", s(&input), s(&output)]));
    assert_eq!(files(&whole), files(&output));
    for k in 0..3 {
        assert!(!dir.join(format!("split.part-{k}-of-3")).exists(), "part {k} removed");
    }
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("no part found"), "{stderr}");
}

#[test]
fn parts_of_another_conversion_or_incomplete_parts_are_refused() {
    let dir = scratch("mixed");
    let input = llama(&dir);
    let output = dir.join("out");
    ok(&convert(&["--part", "0/2", s(&input), s(&output)]));
    ok(&convert(&["--hf-layout", "v5", "--part", "1/2", s(&input), s(&output)]));
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("part 1/2 of another conversion"), "{stderr}");
    // Redone right, but one of its files truncated afterwards.
    ok(&convert(&["--part", "1/2", s(&input), s(&output)]));
    let part = dir.join("out.part-1-of-2");
    let shard = files(&part)
        .into_iter()
        .find(|(n, _)| n.ends_with(".safetensors"))
        .unwrap()
        .0;
    let file = std::fs::OpenOptions::new().write(true).open(part.join(&shard)).unwrap();
    file.set_len(100).unwrap();
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("part 1/2 is incomplete"), "{stderr}");
    assert!(!output.exists());
    // Another count beside them.
    ok(&convert(&["--part", "0/3", s(&input), s(&output)]));
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("different counts"), "{stderr}");
}

/// `--finalize` gathers only what `--part` wrote: a part directory that is a symlink, or a part
/// file hard-linked to another file, could bring that other file into the output.
#[test]
fn only_what_part_wrote_is_gathered() {
    let dir = scratch("foreign");
    let input = llama(&dir);
    let output = dir.join("out");
    ok(&convert(&["--part", "0/1", s(&input), s(&output)]));
    let part = dir.join("out.part-0-of-1");
    let shard = files(&part)
        .into_iter()
        .find(|(n, _)| n.ends_with(".safetensors"))
        .unwrap()
        .0;
    // A second link to a part's file (e.g. the part's file being a link to a private file).
    let elsewhere = dir.join("private.bin");
    std::fs::hard_link(part.join(&shard), &elsewhere).unwrap();
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("part 0/1 is incomplete"), "{stderr}");
    std::fs::remove_file(&elsewhere).unwrap();
    // The part directory moved away and a symlink left in its place.
    let moved = dir.join("moved");
    std::fs::rename(&part, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &part).unwrap();
    let stderr = failed(&convert(&["--finalize", s(&input), s(&output)]));
    assert!(stderr.contains("is not a directory written by --part 0/1"), "{stderr}");
    assert!(!output.exists());
    // Put back, it finalizes.
    std::fs::remove_file(&part).unwrap();
    std::fs::rename(&moved, &part).unwrap();
    ok(&convert(&["--finalize", s(&input), s(&output)]));
}

#[test]
fn part_arguments_are_checked() {
    let dir = scratch("arguments");
    for (args, needle) in [
        (vec!["--part", "3/3"], "expected K/N"),
        (vec!["--part", "0/2", "--finalize"], "cannot be used with"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
            .args(["convert", "--from", "llama", "--to", "llama"])
            .args(&args)
            .args([s(&dir.join("in")), s(&dir.join("out"))])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
}
