//! Shared pieces of the fuzz targets: the input layout and a scratch directory.
//!
//! Targets that need several files read them from one fuzz input: `[u16 little-endian length n]`
//! `[n bytes: the first file]` `[the rest: the second file]`, so libFuzzer's mutations reach both
//! (`cargo xtask fuzz` writes seeds in this layout). Three files: `[u16 n][n bytes][u32 m][m
//! bytes][the rest]` (rank files outgrow a u16).

use std::path::PathBuf;

/// Splits a fuzz input into its first file (length-prefixed) and the rest.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return (&[], data);
    };
    let n = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    rest.split_at(n)
}

/// Splits a fuzz input into three files: the first `u16`-prefixed, the second `u32`-prefixed, the
/// third the rest.
pub fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (first, rest) = split(data);
    let Some((length, rest)) = rest.split_first_chunk::<4>() else {
        return (first, &[], rest);
    };
    let m = usize::try_from(u32::from_le_bytes(*length)).map_or(rest.len(), |m| m.min(rest.len()));
    let (second, third) = rest.split_at(m);
    (first, second, third)
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
