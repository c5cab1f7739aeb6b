//! `convert --part K/N` and `--finalize`: a conversion split into parts, run in any order,
//! retried, and assembled into the same bytes as one whole conversion.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::checkpoint::synthetic::write_synthetic_hf;
use fastllm_convert::config::{ModelKind, Value, load_base_model};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A synthetic Llama of about 30 MB in F32: five 8 MB shards at most.
fn llama(dir: &Path) -> PathBuf {
    let config = r#"{"hidden_size": 256, "embeddings": {"vocab_size": 8192},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 4, "block": {
            "mixer": {"heads": 4, "head_groups": 2, "head_size": 64, "add_linear_biases": false,
                      "rotary": {"type": "default"}},
            "mlp": {"intermediate_size": 1024, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm"}}}}"#;
    let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap();
    let handler = fastllm_convert::core::find("llama").unwrap();
    let input = dir.join("hf");
    write_synthetic_hf(handler, &config, &input, "F32", u64::MAX).unwrap();
    input
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

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
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
