//! Every shell example of the README runs, as written, and succeeds: the commands of each
//! ```` ```bash ```` block, with `fastllm-convert` the binary under test and `/tmp/` a fresh
//! directory. Installing (`cargo install`, `pip install`) and `cargo xtask ci` are not run here:
//! CI runs the latter, and the Python package's tests build the package from the same
//! pyproject.toml. The README's ```` ```python ```` blocks are run by
//! `python/tests/test_readme.py`.

use std::path::Path;
use std::process::Command;

/// The commands of the README's bash blocks, continuation lines joined, comments dropped.
fn commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line == "```bash";
            continue;
        }
        if !in_block || line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

#[test]
fn every_readme_example_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let tmp = std::env::temp_dir().join(format!("fastllm-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_fastllm-convert")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    for command in commands(&readme) {
        let words: Vec<&str> = command.split_whitespace().collect();
        if matches!(
            words[..],
            ["cargo", "install", ..] | ["pip", "install", ..] | ["cargo", "xtask", ..]
        ) {
            continue;
        }
        assert_eq!(
            words[0], "fastllm-convert",
            "an example that is not a fastllm-convert command: {command}"
        );
        let command = command.replace("/tmp/", &format!("{}/", tmp.display()));
        let output = Command::new("bash")
            .args(["-c", &command])
            .current_dir(root)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} examples found");
    std::fs::remove_dir_all(&tmp).unwrap();
}
