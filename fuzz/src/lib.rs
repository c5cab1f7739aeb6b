//! Shared pieces of the fuzz targets: the input layout and a scratch directory.
//!
//! Targets that need several files read them from one fuzz input: `[u16 little-endian length n]`
//! `[n bytes: the first file]` `[the rest: the second file]`, so libFuzzer's mutations reach both
//! (`cargo xtask fuzz` writes seeds in this layout).

use std::path::PathBuf;

/// Splits a fuzz input into its first file (length-prefixed) and the rest.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return (&[], data);
    };
    let n = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    rest.split_at(n)
}

/// Where the targets' scratch directories live, one per process id (in RAM when `/dev/shm`
/// exists); `cargo xtask fuzz` removes those of finished processes.
pub fn scratch_root() -> PathBuf {
    let root = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    root.join("fastllm-fuzz")
}

/// A fresh, empty directory for this process, named `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = scratch_root().join(std::process::id().to_string()).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
