//! Project automation, run as `cargo xtask <task>`.
//!
//! * `coverage`: walks every registered format's declaration tree and round-trips its sample
//!   configs (see `fastllm_core::coverage::check_handler`); prints a per-format table and exits
//!   non-zero listing every failure.
//! * `ci`: everything CI checks, in order: formatting, clippy, cargo-deny (licenses, bans,
//!   sources; skipped with a notice when cargo-deny is not installed, except under `CI=true`),
//!   coverage, the single-family build check, then the whole test suite. Tests run last so
//!   their summary closes the output (the Python package's pytest suite runs just before, in a
//!   virtual environment of its own, and is counted in it).
//! * `python`: the Python package's tests alone (what `ci` runs of them).
//! * `fuzz [--seconds S] [--runs N] [--no-sanitizer] [TARGET...]`: seeds from the test data, then the cargo-fuzz
//!   targets of `fuzz/` (see `fuzz.rs`). `ci` runs each for 20 s when cargo-fuzz is installed
//!   (required under `CI=true`).
//! * `bench [GB]`: generates synthetic Llama-shaped checkpoints of at least GB gigabytes (default
//!   2), an HF one and a Fast-LLM training one (8 ranks), converts them with the release binary
//!   (HF → Fast-LLM → HF; distributed → Fast-LLM and → HF), and prints each step's time next to
//!   the time of copying the same bytes in the same run, the throughput and the peak RSS against
//!   the largest tensor (see `bench.rs`).

use std::process::{Command, ExitCode};

mod bench;
mod bench_store;
mod fuzz;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("coverage") => check_coverage(),
        Some("python") => python_tests().map(drop),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench") => bench::run(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0)),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | coverage | python | fuzz [--seconds S] [--runs N] [--no-sanitizer] [TARGET...] | bench [GB]"
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
        let session = fuzz::Session {
            seconds: Some(CI_FUZZ_SECONDS),
            runs: None,
            sanitizer: true,
            corpus: "fuzz-corpus-ci",
        };
        fuzz::fuzz(&targets, &session)?;
    } else if std::env::var_os("CI").is_some() {
        return Err("cargo-fuzz is required in CI (.ci/run installs it)".into());
    } else {
        eprintln!("xtask: cargo-fuzz not installed, skipping the fuzz targets (cargo install cargo-fuzz --locked)");
    }
    let python = python_tests()?;
    test_with_summary(&["test", "--workspace"], python)
}

/// The Python package's pinned build and test requirements (PyPI).
const PYTHON_REQUIREMENTS: &[&str] = &[
    "maturin==1.16.0",
    "pytest==9.2.0",
    "safetensors==0.8.0",
    "numpy==2.4.6",
    "mypy==2.4.1",
    "tqdm==4.70.1",
];

/// The Python package's tests (`python/tests`): in a virtual environment of its own
/// (`target/py-venv`, created once), the extension built by `maturin develop` (debug: it reuses
/// the workspace's debug build), then pytest. Returns pytest's (passed, failed) counts. Skipped
/// with a notice when no `python3` with `venv` is found, except under `CI=true`.
fn python_tests() -> Result<(u64, u64), String> {
    let started = std::time::Instant::now();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf();
    let venv = root.join("target/py-venv");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        eprintln!("xtask: python3 -m venv {}", venv.display());
        let created = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        if !created.is_ok_and(|s| s.success()) {
            if std::env::var_os("CI").is_some() {
                return Err("python3 with venv is required in CI for the Python package's tests".into());
            }
            eprintln!("xtask: no python3 with venv, skipping the Python package's tests");
            return Ok((0, 0));
        }
    }
    let run = |program: &str, args: &[&str]| -> Result<std::process::Output, String> {
        eprintln!("xtask: {program} {}", args.join(" "));
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        Command::new(bin.join(program))
            .args(args)
            .current_dir(&root)
            .env("VIRTUAL_ENV", &venv)
            .env("PATH", path)
            .stdout(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))
    };
    let mut install = vec!["install", "--quiet", "--disable-pip-version-check"];
    install.extend_from_slice(PYTHON_REQUIREMENTS);
    let installed = run("pip", &install)?;
    if !installed.status.success() {
        return Err(format!("pip install failed ({})", installed.status));
    }
    let built = run("maturin", &["develop", "--quiet"])?;
    if !built.status.success() {
        return Err(format!("maturin develop failed ({})", built.status));
    }
    let tested = run("python", &["-m", "pytest", "-q", "python/tests"])?;
    let stdout = String::from_utf8_lossy(&tested.stdout);
    print!("{stdout}");
    let last = stdout.lines().last().unwrap_or("");
    // pytest closes with e.g. `1 failed, 13 passed, 1 skipped in 4.80s`.
    let words: Vec<&str> = last.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let counts = |label: &str| {
        words
            .windows(2)
            .find(|w| w[1] == label)
            .and_then(|w| w[0].parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (passed, failed) = (counts("passed"), counts("failed"));
    eprintln!(
        "xtask: the Python package's tests took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !tested.status.success() {
        return Err(format!(
            "pytest failed ({}): {passed} passed, {failed} failed",
            tested.status
        ));
    }
    Ok((passed, failed))
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
    let width = all.iter().map(|h| h.name.len()).max().unwrap_or(0).max("format".len());
    println!(
        "{:width$}  {:8} {:>8} {:>8} {:>9}",
        "format", "family", "sections", "samples", "failures"
    );
    for handler in all {
        let report = check_handler(handler);
        println!(
            "{:width$}  {:8} {:>8} {:>8} {:>9}",
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
        (&["--features", "gemma4"], "families: gemma4", 2),
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
    refused_without_object_store()
}

/// A build without the `object-store` feature still tells an object-store URL from a local path
/// (`fastllm_store::is_remote`, the one scheme list) and refuses it, exit 2, naming the feature.
fn refused_without_object_store() -> Result<(), String> {
    let args = [
        "run",
        "--quiet",
        "--package",
        "fastllm-convert",
        "--no-default-features",
        "--features",
        "llama",
        "--",
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm",
        "S3A://bucket/model",
        "target/xtask-never-written",
    ];
    eprintln!("xtask: cargo {}", args.join(" "));
    let output = Command::new(env!("CARGO"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = "S3A://bucket/model: object-store paths need a build with the `object-store` feature";
    if output.status.code() != Some(2) || !stderr.contains(expected) {
        return Err(format!(
            "`cargo {}` exited {:?} and printed:\n{stderr}\nexpected exit 2 and `{expected}`",
            args.join(" "),
            output.status.code()
        ));
    }
    Ok(())
}

/// Runs cargo test, passing its output through, and closes with one line totalling every
/// test binary's results (cargo's own last line is the last binary's, often a doctest with 0).
fn test_with_summary(args: &[&str], (mut passed, mut failed): (u64, u64)) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = Command::new(env!("CARGO"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
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
