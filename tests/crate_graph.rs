//! The workspace's crate graph is the one ARCHITECTURE.md draws: each crate's `fastllm-*`
//! dependencies (build and normal, any target; dev-dependencies aside) are exactly the listed
//! ones. Cargo already refuses cycles; this keeps the layers apart, e.g. the parameter layout
//! and the transformers semantics never reach for the conversion engine, and the engine for no
//! format or checkpoint crate.

use std::collections::BTreeSet;
use std::path::Path;

use rstest::rstest;

/// The `fastllm-*` crates a manifest depends on outside `[dev-dependencies]`.
fn fastllm_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut found = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let is_dependencies = section.ends_with("dependencies]") && !section.ends_with("dev-dependencies]");
        if !is_dependencies {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if name.starts_with("fastllm-") {
            found.insert(name.to_string());
        }
    }
    found
}

#[rstest]
#[case::config_derive("crates/config-derive", &[])]
#[case::config("crates/config", &["fastllm-config-derive"])]
#[case::layout("crates/layout", &["fastllm-config"])]
#[case::hf("crates/hf", &["fastllm-config"])]
#[case::core("crates/core", &["fastllm-config", "fastllm-hf", "fastllm-layout"])]
#[case::llama("crates/llama", &["fastllm-core"])]
#[case::apriel("crates/apriel", &["fastllm-core", "fastllm-llama"])]
#[case::gemma4("crates/gemma4", &["fastllm-core"])]
#[case::llava("crates/llava", &["fastllm-apriel", "fastllm-core", "fastllm-llama"])]
#[case::checkpoint("crates/checkpoint", &["fastllm-config", "fastllm-core", "fastllm-layout"])]
#[case::store("crates/store", &[])]
#[case::python("crates/python", &["fastllm-convert"])]
#[case::third_party("examples/third-party-format", &["fastllm-core", "fastllm-llama"])]
fn crate_depends_on_its_layers_only(#[case] dir: &str, #[case] allowed: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let found = fastllm_dependencies(&manifest);
    let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, allowed,
        "{dir}: its fastllm-* dependencies changed; update ARCHITECTURE.md's code map and this table together"
    );
}

/// Every crate under `crates/` is in the table above, so a new one cannot skip the check.
#[test]
fn every_crate_is_listed() {
    let listed = [
        "config-derive",
        "config",
        "layout",
        "hf",
        "core",
        "llama",
        "apriel",
        "gemma4",
        "llava",
        "checkpoint",
        "store",
        "python",
    ];
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            listed.contains(&name.as_str()),
            "crates/{name} is not in tests/crate_graph.rs"
        );
    }
}
