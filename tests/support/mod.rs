//! Test support shared by the CLI tests: running the binary, scratch directories, directory
//! snapshots, synthetic checkpoints, and editing safetensors files byte by byte.
#![allow(dead_code)]

pub mod hostile;
pub mod random;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fastllm_convert::config::{Map, Value};

/// Runs the binary with `args`.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .output()
        .unwrap()
}

/// A process's peak resident memory so far (`VmHWM` of `/proc/<pid>/status`), in bytes; `None`
/// once it has exited. (Not the rusage of `wait4`: Linux carries the forking test process's peak
/// across the exec.)
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    hwm.trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kib| kib << 10)
}

/// Runs the binary with `args`, sampling its peak resident memory every 5 ms: its output and
/// the peak last seen (at most 5 ms before it ended).
pub fn cli_watching_memory(args: &[&str]) -> (Output, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waited = std::thread::spawn(move || child.wait_with_output().unwrap());
    let mut peak = 0;
    while !waited.is_finished() {
        peak = peak_rss(pid).unwrap_or(0).max(peak);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (waited.join().unwrap(), peak)
}

/// The repository root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A fixture directory (`tests/fixtures/weights/<format>/<part>`).
pub fn fixture(format: &str, part: &str) -> PathBuf {
    repo("tests/fixtures/weights").join(format).join(part)
}

/// A fresh empty directory `<group>/<name>` under the tests' temp dir.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies the regular files of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// One entry of a directory snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    /// A file's bytes (or, past 512 MiB, its length and modification time).
    File(Vec<u8>),
    Large(u64, std::time::SystemTime),
    Link(PathBuf),
    /// A FIFO or device: never read.
    Special,
}

/// Every entry under `dir` (symlinks not followed), by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = path.symlink_metadata().unwrap();
        let kind = if meta.file_type().is_symlink() {
            Entry::Link(std::fs::read_link(&path).unwrap())
        } else if meta.is_dir() {
            walk(root, &path, out);
            Entry::Dir
        } else if !meta.is_file() {
            Entry::Special
        } else if meta.len() > 512 << 20 {
            Entry::Large(meta.len(), meta.modified().unwrap())
        } else {
            Entry::File(std::fs::read(&path).unwrap())
        };
        out.insert(relative, kind);
    }
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A safetensors file split into its header (as a dict) and data bytes.
pub struct Safetensors {
    pub header: Map,
    pub data: Vec<u8>,
}

impl Safetensors {
    pub fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let text = std::str::from_utf8(&bytes[8..8 + length]).unwrap().trim_end();
        let Value::Map(header) = Value::from_json_str(text).unwrap() else {
            panic!("a header is a dict")
        };
        Safetensors {
            header,
            data: bytes[8 + length..].to_vec(),
        }
    }

    /// Writes the header (padded to 8 bytes) and the data, as they are.
    pub fn write(&self, path: &Path) {
        let mut header = Value::Map(self.header.clone()).to_json_compact().into_bytes();
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&self.data);
        std::fs::write(path, bytes).unwrap();
    }

    /// The entry of tensor `name`.
    pub fn entry(&mut self, name: &str) -> &mut Map {
        match self.header.get_mut(name) {
            Some(Value::Map(entry)) => entry,
            _ => panic!("no tensor {name}"),
        }
    }

    /// The tensor whose data ends last.
    pub fn last_tensor(&self) -> String {
        self.header
            .iter()
            .filter(|(name, _)| *name != "__metadata__")
            .max_by_key(|(_, entry)| match entry.as_map().and_then(|e| e.get("data_offsets")) {
                Some(Value::List(offsets)) => match offsets[1] {
                    Value::Int(end) => end,
                    _ => 0,
                },
                _ => 0,
            })
            .map(|(name, _)| name.clone())
            .unwrap()
    }
}

/// A JSON list of ints.
pub fn ints(values: &[i128]) -> Value {
    Value::List(values.iter().map(|&v| Value::Int(v)).collect())
}

/// A synthetic Llama HF checkpoint in `dir/hf`, F32, in shards of at most `max_shard_bytes`:
/// `num_blocks` blocks of width `hidden_size` (heads of 64, two per key-value group), a vocabulary
/// of 8192 and an MLP of 1024.
pub fn synthetic_llama(dir: &Path, hidden_size: usize, num_blocks: usize, max_shard_bytes: u64) -> PathBuf {
    let heads = hidden_size / 64;
    let config = format!(
        r#"{{"hidden_size": {hidden_size}, "embeddings": {{"vocab_size": 8192}},
        "head": {{"normalization": {{"type": "rms_norm"}}}},
        "decoder": {{"num_blocks": {num_blocks}, "block": {{
            "mixer": {{"heads": {heads}, "head_groups": {groups}, "head_size": 64, "add_linear_biases": false,
                      "rotary": {{"type": "default"}}}},
            "mlp": {{"intermediate_size": 1024, "gated": true, "add_linear_biases": false}},
            "normalization": {{"type": "rms_norm"}}}}}}}}"#,
        groups = heads / 2
    );
    let config = fastllm_convert::config::load_base_model(
        fastllm_convert::config::ModelKind::Gpt,
        &Value::from_json_str(&config).unwrap(),
    )
    .unwrap();
    let handler = fastllm_convert::core::find("llama").unwrap();
    let input = dir.join("hf");
    fastllm_convert::checkpoint::synthetic::write_synthetic_hf(
        handler,
        &config,
        &input,
        &fastllm_convert::checkpoint::synthetic::SyntheticStorage {
            dtype: "F32",
            max_shard_bytes,
        },
    )
    .unwrap();
    input
}

/// The files directly in `dir` with their bytes, by name.
pub fn file_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
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
