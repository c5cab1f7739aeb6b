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
    cargo(&["test", "--workspace"])
}
