//! Project automation, run as `cargo xtask <task>`.
//!
//! * `coverage`: walks every registered format's declaration tree and round-trips its sample
//!   configs (see `fastllm_core::coverage::check_handler`); prints a per-format table and exits
//!   non-zero listing every failure.
//! * `ci`: everything CI checks, in order: formatting, clippy, cargo-deny (licenses, bans,
//!   sources; skipped with a notice when cargo-deny is not installed, except under `CI=true`),
//!   coverage, the single-family build check, then the whole test suite. Tests run last so
//!   their summary closes the output.
//! * `fuzz [--seconds S] [--runs N] [--no-sanitizer] [TARGET...]`: seeds from the test data, then the cargo-fuzz
//!   targets of `fuzz/` (see `fuzz.rs`). `ci` runs each for 20 s when cargo-fuzz is installed
//!   (required under `CI=true`).
//! * `bench [GB]`: generates a synthetic Llama-shaped checkpoint of at least GB gigabytes (default
//!   2), converts it HF → Fast-LLM → HF with the release binary, and prints each step's time next
//!   to the time of copying the same bytes in the same run, the throughput and the peak RSS.

use std::process::{Command, ExitCode};

mod fuzz;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("coverage") => check_coverage(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench") => bench(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0)),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | coverage | fuzz [--seconds S] [--runs N] [--no-sanitizer] [TARGET...] | bench [GB]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn has_cargo_deny() -> bool {
    Command::new(env!("CARGO"))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    // The fuzz crate is a workspace of its own.
    cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    if has_cargo_deny() {
        // Advisories need the network; licenses, bans and sources are checked offline.
        cargo(&["deny", "--workspace", "check", "bans", "licenses", "sources"])?;
    } else if std::env::var_os("CI").is_some() {
        return Err("cargo-deny is required in CI (.ci/run installs it)".into());
    } else {
        eprintln!("xtask: cargo-deny not installed, skipping `cargo deny check` (cargo install cargo-deny --locked)");
    }
    cargo(&["run", "--quiet", "--package", "xtask", "--", "coverage"])?;
    single_family_build()?;
    if fuzz::available() {
        let targets: Vec<String> = fuzz::TARGETS.iter().map(|t| t.to_string()).collect();
        fuzz::fuzz(&targets, Some(CI_FUZZ_SECONDS), None, true, "fuzz-corpus-ci")?;
    } else if std::env::var_os("CI").is_some() {
        return Err("cargo-fuzz is required in CI (.ci/run installs it)".into());
    } else {
        eprintln!("xtask: cargo-fuzz not installed, skipping the fuzz targets (cargo install cargo-fuzz --locked)");
    }
    test_with_summary(&["test", "--workspace"])
}

/// How long `ci` runs each fuzz target.
const CI_FUZZ_SECONDS: u64 = 20;

/// `cargo xtask coverage`.
fn check_coverage() -> Result<(), String> {
    use fastllm_convert::core::{coverage::check_handler, handlers, registry_errors};
    let mut failures = registry_errors();
    let all = handlers();
    if all.is_empty() {
        failures.push("no format is registered".into());
    }
    println!(
        "{:18} {:8} {:>8} {:>8} {:>9}",
        "format", "family", "sections", "samples", "failures"
    );
    for handler in all {
        let report = check_handler(handler);
        println!(
            "{:18} {:8} {:>8} {:>8} {:>9}",
            handler.name,
            handler.family,
            report.sections,
            report.samples,
            report.failures.len()
        );
        failures.extend(report.failures);
    }
    if failures.is_empty() {
        println!("coverage: every format passes");
        Ok(())
    } else {
        for failure in &failures {
            eprintln!("  {failure}");
        }
        Err(format!("{} coverage failure(s)", failures.len()))
    }
}

/// A binary built with one family's feature lists exactly that family's formats, and one built
/// with none lists none: registrations follow features, and none vanish.
fn single_family_build() -> Result<(), String> {
    let cases: [(&[&str], &str, usize); 3] = [
        (&["--features", "llama"], "families: llama", 7),
        (&["--features", "gemma4"], "families: gemma4", 1),
        (&[], "families:", 0),
    ];
    for (features, expected, formats) in cases {
        let mut args = vec![
            "run",
            "--quiet",
            "--package",
            "fastllm-convert",
            "--no-default-features",
        ];
        args.extend_from_slice(features);
        args.extend(["--", "formats"]);
        eprintln!("xtask: cargo {}", args.join(" "));
        let output = Command::new(env!("CARGO"))
            .args(&args)
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let families = stdout.lines().next().unwrap_or("").trim_end();
        let listed = stdout.lines().skip(2).count();
        if !output.status.success() || families != expected || listed != formats {
            return Err(format!(
                "`cargo {}` printed:\n{stdout}\nexpected `{expected}` and {formats} formats",
                args.join(" ")
            ));
        }
    }
    Ok(())
}

/// Runs cargo test, passing its output through, and closes with one line totalling every
/// test binary's results (cargo's own last line is the last binary's, often a doctest with 0).
fn test_with_summary(args: &[&str]) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = Command::new(env!("CARGO"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    println!("tests: {passed} passed, {failed} failed");
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The number before `label` in a cargo test summary such as `ok. 12 passed; 0 failed; …`.
fn count(summary: &str, label: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// `cargo xtask bench [GB]`.
fn bench(gigabytes: f64) -> Result<(), String> {
    use fastllm_convert::checkpoint::convert::write_synthetic_hf;
    use fastllm_convert::config::{ModelKind, Value, load_base_model};
    use std::time::Instant;

    cargo(&["build", "--release", "--quiet", "--package", "fastllm-convert"])?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    // Llama-shaped, BF16: one layer is ~126 MB, the embeddings and output ~131 MB each.
    let (hidden, intermediate, vocab) = (2048u64, 8192u64, 32000u64);
    let layer_bytes = 2 * (hidden * hidden * 2 + 2 * 1024 * hidden + 3 * hidden * intermediate + 2 * hidden);
    let fixed_bytes = 2 * 2 * vocab * hidden;
    let layers = (((gigabytes * 1e9) as u64).saturating_sub(fixed_bytes))
        .div_ceil(layer_bytes)
        .max(1);
    let config = format!(
        r#"{{"hidden_size": {hidden}, "embeddings": {{"vocab_size": {vocab}}},
            "head": {{"normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}},
            "decoder": {{"num_blocks": {layers}, "block": {{
              "mixer": {{"heads": 16, "head_groups": 8, "head_size": 128, "add_linear_biases": false,
                         "rotary": {{"type": "default", "theta": 10000}}}},
              "mlp": {{"intermediate_size": {intermediate}, "gated": true, "add_linear_biases": false}},
              "normalization": {{"type": "rms_norm", "epsilon": 1e-5}}}}}}}}"#
    );
    let config = load_base_model(
        ModelKind::Gpt,
        &Value::from_json_str(&config).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let handler = fastllm_convert::core::find("llama").map_err(|e| e.to_string())?;
    let input = root.join("hf");
    eprintln!(
        "xtask: generating a {layers}-layer synthetic Llama checkpoint in {}",
        input.display()
    );
    let generated = write_synthetic_hf(handler, &config, &input, "BF16", 5_000_000_000).map_err(|e| e.to_string())?;
    let largest = generated.tensors.iter().map(|t| t.bytes).max().unwrap_or(0);
    let binary = root.join("../release/fastllm-convert");

    let copy = |from: &std::path::Path, to: &std::path::Path| -> Result<f64, String> {
        let start = Instant::now();
        std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
        for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let file = std::fs::File::create(to.join(entry.file_name())).map_err(|e| e.to_string())?;
            std::io::copy(
                &mut std::fs::File::open(entry.path()).map_err(|e| e.to_string())?,
                &mut &file,
            )
            .map_err(|e| e.to_string())?;
            file.sync_all().map_err(|e| e.to_string())?;
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let convert =
        |from: &str, to: &str, input: &std::path::Path, output: &std::path::Path| -> Result<(f64, u64, u64), String> {
            let start = Instant::now();
            let out = Command::new(&binary)
                .args(["convert", "--from", from, "--to", to, "--json"])
                .arg(input)
                .arg(output)
                .output()
                .map_err(|e| e.to_string())?;
            let seconds = start.elapsed().as_secs_f64();
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let report = Value::from_json_str(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())?;
            let field = |k: &str| match report.as_map().and_then(|m| m.get(k)) {
                Some(Value::Int(i)) => *i as u64,
                _ => 0,
            };
            Ok((seconds, field("bytes"), field("peak_rss_bytes")))
        };

    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "synthetic Llama checkpoint: {layers} layers, {:.0} MB, largest tensor {:.0} MB",
        mb(generated.bytes()),
        mb(largest)
    );
    println!(
        "{:22} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12} {:>12}",
        "step", "MB", "time s", "copy s", "ratio", "MB/s", "peak RSS MB", "RSS target"
    );
    let steps = [
        ("hf -> fast_llm", "llama", "fast_llm", "hf", "fast_llm"),
        ("fast_llm -> hf", "fast_llm", "llama", "fast_llm", "hf_back"),
    ];
    let mut failures = Vec::new();
    for (label, from, to, input, output) in steps {
        let copy_seconds = copy(&root.join(input), &root.join(format!("{input}_copy")))?;
        let _ = std::fs::remove_dir_all(root.join(format!("{input}_copy")));
        let (seconds, bytes, rss) = convert(from, to, &root.join(input), &root.join(output))?;
        let ratio = seconds / copy_seconds;
        let target = largest + 256 * 1024 * 1024;
        println!(
            "{label:22} {:>9.0} {seconds:>9.2} {copy_seconds:>9.2} {ratio:>7.2} {:>10.0} {:>12.0} {:>12.0}",
            mb(bytes),
            mb(bytes) / seconds,
            mb(rss),
            mb(target)
        );
        if ratio > 1.5 {
            failures.push(format!("{label}: {ratio:.2}x the copy time (target 1.5x)"));
        }
        if rss > target {
            failures.push(format!(
                "{label}: peak RSS {:.0} MB over the target {:.0} MB",
                mb(rss),
                mb(target)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    if failures.is_empty() {
        println!("bench: within targets");
    } else {
        println!("bench: outside targets: {}", failures.join("; "));
    }
    Ok(())
}
