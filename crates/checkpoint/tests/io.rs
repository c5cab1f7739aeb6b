//! Checkpoint IO on the reference fixtures, and every hostile input the reader must reject.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fastllm_checkpoint::policy::{Existing, Protected};
use fastllm_checkpoint::writer::{OutputDir, TensorSpec, write_safetensors};
use fastllm_checkpoint::{CheckpointError, open_fast_llm, open_hf};
use rstest::rstest;

fn fixture(format: &str, part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/weights")
        .join(format)
        .join(part)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkpoint-io").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[rstest]
#[case("llama", 21, 17)]
#[case("mistral", 21, 17)]
#[case("qwen2", 26, 20)]
#[case("mixtral", 41, 19)]
fn fixtures_open(#[case] format: &str, #[case] hf_tensors: usize, #[case] fast_llm_tensors: usize) {
    let input = open_hf(&fixture(format, "hf_input")).unwrap();
    assert_eq!(input.files.len(), hf_tensors);
    let roundtrip = open_hf(&fixture(format, "hf_roundtrip")).unwrap();
    for name in input.files.names() {
        let (a, b) = (input.files.get(name).unwrap(), roundtrip.files.get(name).unwrap());
        assert_eq!((a.dtype, a.shape, a.data), (b.dtype, b.shape, b.data), "{name}");
    }
    let fast_llm = open_fast_llm(&fixture(format, "fast_llm")).unwrap();
    assert_eq!(fast_llm.files.len(), fast_llm_tensors);
    assert!(fast_llm.files.names().all(|n| n.ends_with("/weights")));
}

/// Writes a two-tensor safetensors file.
fn small_file(path: &Path, names: &[&str]) {
    let specs: Vec<TensorSpec> = names
        .iter()
        .map(|n| TensorSpec {
            name: n.to_string(),
            dtype: "F32".into(),
            shape: vec![2],
        })
        .collect();
    write_safetensors(path, &BTreeMap::new(), &specs, |i, out| out.write_all(&[i as u8; 8])).unwrap();
}

fn hf_dir(name: &str, index: Option<&str>, shards: &[(&str, Vec<&str>)]) -> PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    for (file, tensors) in shards {
        small_file(&dir.join(file), tensors);
    }
    if let Some(index) = index {
        std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    }
    dir
}

#[test]
fn a_valid_sharded_checkpoint_opens() {
    let dir = hf_dir(
        "valid",
        Some(r#"{"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}}"#),
        &[("s1.safetensors", vec!["a", "b"]), ("s2.safetensors", vec!["c"])],
    );
    let checkpoint = open_hf(&dir).unwrap();
    assert_eq!(checkpoint.files.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(checkpoint.files.get("c").unwrap().data, &[0u8; 8]);
}

#[rstest]
#[case::missing_shard(r#"{"weight_map": {"a": "gone.safetensors"}}"#, "", "missing")]
#[case::tensor_in_no_shard(
    r#"{"weight_map": {"a": "s1.safetensors", "z": "s1.safetensors"}}"#,
    "s1.safetensors:a",
    "`z` is listed in the index for `s1.safetensors` but is not in that file"
)]
#[case::tensor_in_two_shards(
    r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
    "s1.safetensors:a;s2.safetensors:b,a",
    "tensor `a` is in"
)]
#[case::unindexed(
    r#"{"weight_map": {"a": "s1.safetensors"}}"#,
    "s1.safetensors:a,extra",
    "`extra` is in `s1.safetensors` but not in the index"
)]
#[case::path_separator(r#"{"weight_map": {"a": "sub/s1.safetensors"}}"#, "", "must be a file name")]
#[case::parent_dir(r#"{"weight_map": {"a": "../s1.safetensors"}}"#, "", "must be a file name")]
#[case::no_weight_map(r#"{"metadata": {}}"#, "", "no `weight_map`")]
fn hostile_indexes_are_rejected(#[case] index: &str, #[case] shards: &str, #[case] needle: &str) {
    // `shards` is `file:tensor,tensor;file:tensor`.
    let shards: Vec<(&str, Vec<&str>)> = shards
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (file, tensors) = s.split_once(':').unwrap();
            (file, tensors.split(',').collect())
        })
        .collect();
    // A directory per case (cases run in parallel): the index text identifies the case.
    let name: String = index
        .chars()
        .chain(needle.chars())
        .filter(|c| c.is_alphanumeric())
        .collect();
    let dir = hf_dir(&name, Some(index), &shards);
    let error = open_hf(&dir).err().expect("rejected").to_string();
    assert!(error.contains(needle), "{error}");
}

#[test]
fn pickle_checkpoints_are_refused() {
    let dir = scratch("pickle");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let error = open_hf(&dir).err().unwrap();
    assert!(matches!(error, CheckpointError::Pickle { .. }), "{error}");
    assert!(error.to_string().contains("never unpickled"));
}

#[rstest]
#[case::truncated("truncated", |b: &mut Vec<u8>| b.truncate(b.len() - 4))]
#[case::header_too_long("header_too_long", |b: &mut Vec<u8>| b[0..8].copy_from_slice(&u64::MAX.to_le_bytes()))]
#[case::not_json("not_json", |b: &mut Vec<u8>| b[8] = b'!')]
fn corrupt_files_are_rejected(#[case] name: &str, #[case] corrupt: fn(&mut Vec<u8>)) {
    // One directory per case: cases run in parallel.
    let dir = hf_dir(&format!("corrupt-{name}"), None, &[("model.safetensors", vec!["a"])]);
    let path = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    corrupt(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    let error = open_hf(&dir).err().unwrap().to_string();
    assert!(
        error.contains("model.safetensors") && error.contains("invalid safetensors"),
        "{error}"
    );
}

#[test]
fn writing_keeps_order_mode_and_length() {
    let dir = scratch("write");
    let path = dir.join("x.safetensors");
    small_file(&path, &["z", "a"]);
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(header_len.is_multiple_of(8));
    let header: serde_json_like::Header = serde_json_like::parse(&bytes[8..8 + header_len]);
    assert_eq!(header.offsets("z"), (0, 8), "written in the caller's order, not sorted");
    assert_eq!(header.offsets("a"), (8, 16));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }
    let spec = [TensorSpec {
        name: "x".into(),
        dtype: "F32".into(),
        shape: vec![3],
    }];
    let error = write_safetensors(&dir.join("bad.safetensors"), &BTreeMap::new(), &spec, |_, out| {
        out.write_all(&[0; 8])
    });
    assert!(
        error
            .unwrap_err()
            .to_string()
            .contains("wrote 8 bytes, its shape and dtype need 12")
    );
}

#[test]
fn outputs_appear_only_when_committed() {
    let root = scratch("output");
    let target = root.join("out");
    {
        let output = OutputDir::create(&target, Existing::Refuse, &Protected::nothing()).unwrap();
        output.write_text("config.json", "{}").unwrap();
        // Dropped without commit: a failed conversion leaves nothing behind.
    }
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "the staging directory is removed too"
    );
    let output = OutputDir::create(&target, Existing::Refuse, &Protected::nothing()).unwrap();
    output.write_text("config.json", "{}").unwrap();
    output.commit().unwrap();
    assert!(target.join("config.json").is_file());
    assert!(matches!(
        OutputDir::create(&target, Existing::Refuse, &Protected::nothing()),
        Err(CheckpointError::OutputExists { .. })
    ));
    let output = OutputDir::create(&target, Existing::Replace, &Protected::nothing()).unwrap();
    output.write_text("new.json", "{}").unwrap();
    output.commit().unwrap();
    assert!(target.join("new.json").is_file() && !target.join("config.json").exists());
}

/// Reads data offsets out of a safetensors header without another JSON dependency.
mod serde_json_like {
    use fastllm_config::Value;

    pub struct Header(Value);

    pub fn parse(bytes: &[u8]) -> Header {
        Header(Value::from_json_str(std::str::from_utf8(bytes).unwrap().trim_end()).unwrap())
    }

    impl Header {
        pub fn offsets(&self, name: &str) -> (i128, i128) {
            let entry = self.0.as_map().unwrap()[name].as_map().unwrap();
            match &entry["data_offsets"] {
                Value::List(v) => match (&v[0], &v[1]) {
                    (Value::Int(a), Value::Int(b)) => (*a, *b),
                    _ => panic!(),
                },
                _ => panic!(),
            }
        }
    }
}

#[test]
fn difference_finds_names_dtypes_shapes_and_bytes() {
    let input = open_hf(&fixture("llama", "hf_input")).unwrap();
    assert_eq!(
        input
            .files
            .difference(&open_hf(&fixture("llama", "hf_roundtrip")).unwrap().files),
        None
    );
    let fast_llm = open_fast_llm(&fixture("llama", "fast_llm")).unwrap();
    assert!(
        input
            .files
            .difference(&fast_llm.files)
            .unwrap()
            .starts_with("tensor names differ")
    );
    // One byte flipped in the last tensor's data (the file's last byte).
    let copy = scratch("difference-bytes");
    for entry in std::fs::read_dir(fixture("llama", "hf_input")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let shard = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let flipped = open_hf(&copy).unwrap();
    assert!(
        flipped
            .files
            .difference(&input.files)
            .unwrap()
            .ends_with(": bytes differ")
    );
    // Same bytes read as another dtype of the same size.
    let small = hf_dir("difference-dtype", None, &[("model.safetensors", vec!["a", "b"])]);
    let other = scratch("difference-dtype-other");
    std::fs::write(other.join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    let specs = ["a", "b"].map(|n| TensorSpec {
        name: n.into(),
        dtype: "I32".into(),
        shape: vec![2],
    });
    write_safetensors(&other.join("model.safetensors"), &BTreeMap::new(), &specs, |i, out| {
        out.write_all(&[i as u8; 8])
    })
    .unwrap();
    let found = open_hf(&small)
        .unwrap()
        .files
        .difference(&open_hf(&other).unwrap().files);
    assert_eq!(found.as_deref(), Some("a: F32 [2] vs I32 [2]"));
}
