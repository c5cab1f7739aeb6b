//! Scratch directories of the unit tests: one tree per test process under the system's temporary
//! directory, and the trees of processes that are gone swept by the next, so runs leave at most
//! one set behind (the tests keep theirs for a failure to be looked at).

use std::path::PathBuf;

/// An empty directory `kind/name` of this test process.
pub(crate) fn scratch(kind: &str, name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("fastllm-unit-tests");
    SWEPT.call_once(|| sweep(&root));
    let dir = root.join(std::process::id().to_string()).join(kind).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the trees of test processes no longer running (Linux, where `/proc` tells).
fn sweep(root: &std::path::Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
