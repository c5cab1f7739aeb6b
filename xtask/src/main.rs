//! Project automation, run as `cargo xtask <task>`.
//!
//! * `ci`: everything CI checks, in order: formatting, clippy, cargo-deny (licenses, bans,
//!   sources; skipped with a notice when cargo-deny is not installed, except under `CI=true`),
//!   then the whole test suite. Tests run last so their summary closes the output.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        _ => {
            eprintln!("usage: cargo xtask ci");
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
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    if has_cargo_deny() {
        // Advisories need the network; licenses, bans and sources are checked offline.
        cargo(&[
            "deny",
            "--workspace",
            "check",
            "bans",
            "licenses",
            "sources",
        ])?;
    } else if std::env::var_os("CI").is_some() {
        return Err("cargo-deny is required in CI (.ci/run installs it)".into());
    } else {
        eprintln!(
            "xtask: cargo-deny not installed, skipping `cargo deny check` (cargo install cargo-deny --locked)"
        );
    }
    test_with_summary(&["test", "--workspace"])
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
