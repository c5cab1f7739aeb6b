//! The hostile-checkpoint corpus: each function builds one case under a root directory (from the
//! reference fixtures) and says how `convert` must reject it — the file and the key or tensor its
//! message names. `tests/hostile_inputs.rs` runs every case through the CLI.

use std::path::{Path, PathBuf};

use fastllm_convert::checkpoint::convert::{Conversion, Options, Side, convert};
use fastllm_convert::config::{Map, Value};

use super::{Safetensors, copy_dir, fixture, ints};

/// One hostile case.
pub struct Case {
    /// The CLI arguments.
    pub args: Vec<String>,
    /// What stderr must contain: the file, and the key or tensor.
    pub needles: Vec<String>,
    /// The output path, which must not exist afterwards (none when the output is the input).
    pub output: Option<PathBuf>,
    /// Directories that must be byte-identical afterwards.
    pub unchanged: Vec<PathBuf>,
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// `convert --from auto --to <to> <extra> input root/out`, rejected naming `needles`.
fn convert_case(root: &Path, input: &Path, to: &str, extra: &[&str], needles: &[&str]) -> Case {
    let output = root.join("out");
    let mut args: Vec<String> = ["convert", "--from", "auto", "--to", to].map(String::from).to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([s(input), s(&output)]);
    Case {
        args,
        needles: needles.iter().map(|n| n.to_string()).collect(),
        output: Some(output),
        unchanged: vec![input.to_path_buf()],
    }
}

fn llama(root: &Path) -> PathBuf {
    let input = root.join("input");
    copy_dir(&fixture("llama", "hf_input"), &input);
    input
}

fn fast_llm(root: &Path) -> PathBuf {
    let input = root.join("input");
    copy_dir(&fixture("llama", "fast_llm"), &input);
    input
}

/// The Llama fixture as a sharded HF checkpoint (`model-0000k-of-0000n.safetensors` + index).
fn sharded(root: &Path) -> (PathBuf, Vec<String>) {
    let input = root.join("input");
    let options = Options {
        max_shard_bytes: 100_000,
        ..Options::default()
    };
    let llama = fastllm_convert::core::find("llama").unwrap();
    let summary = convert(
        &Conversion {
            input: &fixture("llama", "fast_llm"),
            from: Side::FastLlm,
            output: &input,
            to: Side::Hf(llama),
        },
        &options,
    )
    .unwrap();
    assert!(summary.files.len() > 2, "{:?}", summary.files);
    (input, summary.files)
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Map)) {
    let Value::Map(mut map) = Value::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap() else {
        panic!("{} is a dict", path.display())
    };
    edit(&mut map);
    std::fs::write(path, Value::Map(map).to_json_pretty()).unwrap();
}

/// Replaces the `n`th (0-based) occurrence of `pattern` in the text file `path`.
fn replace_text(path: &Path, pattern: &str, with: &str, n: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let (at, _) = text
        .match_indices(pattern)
        .nth(n)
        .unwrap_or_else(|| panic!("`{pattern}` #{n} in {}", path.display()));
    let text = format!("{}{with}{}", &text[..at], &text[at + pattern.len()..]);
    std::fs::write(path, text).unwrap();
}

fn edit_weights(path: &Path, edit: impl FnOnce(&mut Safetensors)) {
    let mut file = Safetensors::read(path);
    edit(&mut file);
    file.write(path);
}

fn int(value: i128) -> Value {
    Value::Int(value)
}

// Output/input aliasing: refused whatever --force, --dry-run or --config-only say.

fn alias(root: &Path, output: PathBuf, extra: &[&str], relation: &str) -> Case {
    let input = llama(root);
    let mut args: Vec<String> = ["convert", "--from", "auto", "--to", "fast_llm"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([s(&input), s(&output)]);
    Case {
        args,
        needles: vec![relation.to_string(), "input".to_string(), s(&input)],
        output: None,
        unchanged: vec![root.to_path_buf()],
    }
}

pub fn alias_same_with_force(root: &Path) -> Case {
    alias(root, root.join("input"), &["--force"], "is the input")
}
pub fn alias_same_without_force(root: &Path) -> Case {
    alias(root, root.join("input"), &[], "is the input")
}
pub fn alias_same_through_dots(root: &Path) -> Case {
    alias(root, root.join("input/../input/."), &["--force"], "is the input")
}
pub fn alias_parent_with_force(root: &Path) -> Case {
    alias(root, root.to_path_buf(), &["--force"], "contains the input")
}
pub fn alias_inside(root: &Path) -> Case {
    let mut case = alias(root, root.join("input/sub"), &[], "is inside the input");
    case.output = Some(root.join("input/sub"));
    case
}
pub fn alias_same_dry_run(root: &Path) -> Case {
    alias(root, root.join("input"), &["--dry-run"], "is the input")
}
pub fn alias_same_config_only(root: &Path) -> Case {
    alias(root, root.join("input"), &["--config-only", "--force"], "is the input")
}
#[cfg(unix)]
pub fn alias_symlink_to_input(root: &Path) -> Case {
    std::os::unix::fs::symlink("input", root.join("link")).unwrap();
    alias(root, root.join("link"), &["--force"], "is the input")
}
#[cfg(unix)]
pub fn alias_inside_through_symlink(root: &Path) -> Case {
    std::os::unix::fs::symlink("input", root.join("link")).unwrap();
    alias(root, root.join("link/sub"), &["--force"], "is inside the input")
}
#[cfg(unix)]
pub fn alias_parent_through_symlink(root: &Path) -> Case {
    std::fs::create_dir(root.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("..", root.join("elsewhere/up")).unwrap();
    alias(root, root.join("elsewhere/up"), &["--force"], "contains the input")
}

// config.json: sizes, numbers and structure.

fn config_case(root: &Path, edit: impl FnOnce(&mut Map), needles: &[&str]) -> Case {
    let input = llama(root);
    edit_json(&input.join("config.json"), edit);
    convert_case(root, &input, "fast_llm", &[], needles)
}

pub fn layers_a_trillion(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("num_hidden_layers".into(), int(1_000_000_000_000));
        },
        &[
            "config.json",
            "num_hidden_layers",
            "decoder.num_blocks",
            "at most 65536",
        ],
    )
}
pub fn layers_more_than_tensors(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("num_hidden_layers".into(), int(5000));
        },
        &["config.json", "num_hidden_layers", "5000 blocks", "21 tensors"],
    )
}
pub fn layers_negative(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("num_hidden_layers".into(), int(-1));
        },
        &["config.json", "num_hidden_layers", "decoder.num_blocks"],
    )
}
pub fn hidden_size_huge(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("hidden_size".into(), int(1 << 62));
        },
        &["config.json", "HF `hidden_size`", "4611686018427387904"],
    )
}
pub fn head_product_overflows(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("num_attention_heads".into(), int(1 << 40));
            c.insert("num_key_value_heads".into(), int(1 << 40));
            c.insert("head_dim".into(), int(1 << 40));
        },
        &["config.json", "HF `num_attention_heads`", "HF `head_dim`"],
    )
}
pub fn vocab_beyond_i128(root: &Path) -> Case {
    let input = llama(root);
    replace_text(
        &input.join("config.json"),
        "\"vocab_size\": 128",
        "\"vocab_size\": 1234567890123456789012345678901234567890123",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "vocab_size", "out of range"],
    )
}
pub fn epsilon_nan_literal(root: &Path) -> Case {
    let input = llama(root);
    replace_text(
        &input.join("config.json"),
        "\"rms_norm_eps\": 1e-06",
        "\"rms_norm_eps\": NaN",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "`rms_norm_eps`", "invalid JSON"],
    )
}
pub fn rope_theta_infinity_literal(root: &Path) -> Case {
    let input = llama(root);
    replace_text(
        &input.join("config.json"),
        "\"rope_theta\": 10000.0",
        "\"rope_theta\": Infinity",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "`rope_parameters.rope_theta`"],
    )
}
pub fn epsilon_beyond_f64(root: &Path) -> Case {
    let input = llama(root);
    replace_text(
        &input.join("config.json"),
        "\"rms_norm_eps\": 1e-06",
        "\"rms_norm_eps\": 1e999",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "`rms_norm_eps`", "out of range"],
    )
}
pub fn deeply_nested_json(root: &Path) -> Case {
    let input = llama(root);
    let bomb = format!("\"deep\": {}1{},", "[".repeat(100_000), "]".repeat(100_000));
    replace_text(
        &input.join("config.json"),
        "\"dtype\":",
        &format!("{bomb} \"dtype\":"),
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "`deep.0.0", "recursion limit"],
    )
}
pub fn config_not_a_mapping(root: &Path) -> Case {
    let input = llama(root);
    std::fs::write(input.join("config.json"), "[1, 2]").unwrap();
    convert_case(root, &input, "fast_llm", &[], &["config.json", "mapping"])
}
pub fn config_missing(root: &Path) -> Case {
    let input = llama(root);
    std::fs::remove_file(input.join("config.json")).unwrap();
    convert_case(root, &input, "fast_llm", &[], &["config.json", "No such file"])
}
#[cfg(unix)]
pub fn config_is_a_fifo(root: &Path) -> Case {
    let input = llama(root);
    std::fs::remove_file(input.join("config.json")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(input.join("config.json"))
        .status()
        .unwrap();
    assert!(made.success());
    convert_case(root, &input, "fast_llm", &[], &["config.json", "a FIFO"])
}
pub fn config_huge(root: &Path) -> Case {
    let input = llama(root);
    // Sparse: 100 MB on paper, nothing on disk.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("config.json"))
        .unwrap();
    file.set_len(100 << 20).unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "a config document may have"],
    )
}
// What may be read, and what may be removed: the filesystem policy.

/// `input`'s `name` replaced by a symlink to `target`.
#[cfg(unix)]
fn relink(input: &Path, name: &str, target: &Path) {
    let _ = std::fs::remove_file(input.join(name));
    std::os::unix::fs::symlink(target, input.join(name)).unwrap();
}
#[cfg(unix)]
pub fn config_links_outside_the_input(root: &Path) -> Case {
    let input = llama(root);
    std::fs::copy(input.join("config.json"), root.join("elsewhere.json")).unwrap();
    relink(&input, "config.json", &root.join("elsewhere.json"));
    convert_case(root, &input, "fast_llm", &[], &["config.json", "outside the input"])
}
#[cfg(unix)]
pub fn weights_link_to_proc(root: &Path) -> Case {
    let input = llama(root);
    relink(&input, "model.safetensors", Path::new("/proc/self/environ"));
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors", "outside the input"],
    )
}
#[cfg(unix)]
pub fn weights_link_dangling(root: &Path) -> Case {
    let input = llama(root);
    relink(&input, "model.safetensors", Path::new("gone.safetensors"));
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors", "dangling symlink"],
    )
}
#[cfg(unix)]
pub fn weights_link_loop(root: &Path) -> Case {
    let input = llama(root);
    relink(&input, "model.safetensors", Path::new("model.safetensors"));
    convert_case(root, &input, "fast_llm", &[], &["model.safetensors", "symlink loop"])
}
#[cfg(unix)]
pub fn metadata_is_a_fifo(root: &Path) -> Case {
    let input = fast_llm(root);
    std::fs::remove_file(input.join("metadata.yaml")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(input.join("metadata.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    convert_case(root, &input, "llama", &[], &["metadata.yaml", "a FIFO"])
}
/// `--force` onto an output whose removal would take part of the input with it.
#[cfg(unix)]
fn force_refused(input: PathBuf, output: PathBuf, unchanged: Vec<PathBuf>, needles: &[&str]) -> Case {
    Case {
        args: ["convert", "--from", "auto", "--to", "fast_llm", "--force"]
            .iter()
            .map(|a| a.to_string())
            .chain([s(&input), s(&output)])
            .collect(),
        needles: needles.iter().map(|n| n.to_string()).collect(),
        output: None,
        unchanged,
    }
}
/// A Hugging Face cache snapshot (files linked to `../../blobs/`) converted over its own blobs.
#[cfg(unix)]
pub fn force_over_the_cache_blobs(root: &Path) -> Case {
    let model = root.join("models--org--name");
    let (snapshot, blobs) = (model.join("snapshots/rev"), model.join("blobs"));
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(&blobs).unwrap();
    for entry in std::fs::read_dir(fixture("llama", "hf_input")).unwrap() {
        let entry = entry.unwrap();
        let blob = format!("blob-{}", entry.file_name().to_string_lossy());
        std::fs::copy(entry.path(), blobs.join(&blob)).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob), snapshot.join(entry.file_name())).unwrap();
    }
    force_refused(
        snapshot.clone(),
        blobs.clone(),
        vec![model],
        &["refusing to replace", "blobs", "the input's"],
    )
}
/// An old output holding a hard link to the input's weights.
#[cfg(unix)]
pub fn force_over_a_hard_link_of_the_input(root: &Path) -> Case {
    let input = llama(root);
    let old = root.join("out");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::hard_link(input.join("model.safetensors"), old.join("model.safetensors")).unwrap();
    force_refused(
        input.clone(),
        old.clone(),
        vec![input, old],
        &["refusing to replace", "model.safetensors"],
    )
}
/// `config` commands read their file under the same policy: no FIFO, device or kernel file.
#[cfg(unix)]
fn config_command_case(root: &Path, file: &Path, needles: &[&str]) -> Case {
    Case {
        args: ["config", "import", "--format", "auto"]
            .iter()
            .map(|a| a.to_string())
            .chain([s(file)])
            .collect(),
        needles: needles.iter().map(|n| n.to_string()).collect(),
        output: None,
        unchanged: vec![root.to_path_buf()],
    }
}
#[cfg(unix)]
pub fn config_command_on_a_fifo(root: &Path) -> Case {
    let fifo = root.join("config.json");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    config_command_case(root, &fifo, &["config.json", "a FIFO"])
}
#[cfg(unix)]
pub fn config_command_on_a_device(root: &Path) -> Case {
    let link = root.join("config.json");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    config_command_case(root, &link, &["config.json", "a character device"])
}
#[cfg(unix)]
pub fn config_command_on_a_kernel_file(root: &Path) -> Case {
    let link = root.join("config.json");
    std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();
    config_command_case(root, &link, &["config.json", "proc filesystem"])
}
pub fn config_many_entries(root: &Path) -> Case {
    // 150,000 small entries (3 MB, the shape that took 1.8 GiB at 600,000): read within the
    // parse budget, refused for what it is.
    config_case(
        root,
        |c| {
            let entries = (0..150_000).map(|i| (format!("k{i}"), int(i))).collect();
            c.insert("bogus_table".into(), Value::Map(entries));
        },
        &["config.json", "HF `bogus_table`", "unknown key"],
    )
}
pub fn config_dense_entries(root: &Path) -> Case {
    // Each `{"": 0}` costs a whole B-tree node, about a hundred times its text: refused by the
    // parse budget where it runs out, not built.
    config_case(
        root,
        |c| {
            let tiny = Value::Map(Map::from([(String::new(), int(0))]));
            c.insert("bogus_table".into(), Value::List(vec![tiny; 100_000]));
        },
        &["config.json", "`bogus_table.", "bytes of memory"],
    )
}
pub fn carried_too_deep_for_metadata(root: &Path) -> Case {
    // 124 levels read in config.json; stored three levels down in metadata.yaml, past the 128
    // the reader takes.
    config_case(
        root,
        |c| {
            let deep = (0..124).fold(int(1), |inner, _| Value::List(vec![inner]));
            c.insert("task_specific_params".into(), deep);
        },
        &[
            "metadata.yaml",
            "would not read back",
            "metadata.hf_metadata.generic.task_specific_params.0.0",
            "nesting deeper",
        ],
    )
}
pub fn carried_too_large_for_metadata(root: &Path) -> Case {
    // 200,000 small entries five maps deep in a 2 MB config.json: in block style, indented 18
    // spaces each, metadata.yaml would pass the 4 MiB a config document may have.
    let input = llama(root);
    let entries = (0..200_000)
        .map(|i| format!("\"{i:x}\":0"))
        .collect::<Vec<_>>()
        .join(",");
    let carried = format!("\"task_specific_params\":{{\"a\":{{\"b\":{{\"c\":{{\"d\":{{\"e\":{{{entries}}}}}}}}}}}}},");
    replace_text(
        &input.join("config.json"),
        "\"use_cache\"",
        &format!("{carried}\"use_cache\""),
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &[
            "metadata.yaml",
            "would not read back",
            "a config document may have",
            "`metadata.hf_metadata.generic.task_specific_params.a.b.c.d.e`",
        ],
    )
}
pub fn carried_too_large_for_config_json(root: &Path) -> Case {
    // 600 lists nested 100 deep, 240 KB of flow YAML: written pretty in config.json, each level
    // on its own indented line, past the 4 MiB a config document may have.
    let input = fast_llm(root);
    let chain = format!("{}0{}", "[ ".repeat(100), " ]".repeat(100));
    let stored = format!(
        "\n    generic:\n      task_specific_params: [{}]",
        vec![chain; 600].join(", ")
    );
    let metadata = std::fs::read_to_string(input.join("metadata.yaml")).unwrap();
    assert!(!metadata.contains("hf_metadata"), "the fixture stores no HF keys");
    replace_text(
        &input.join("metadata.yaml"),
        "\n  state_index:",
        &format!("\n  hf_metadata:\n    format: llama{stored}\n  state_index:"),
        0,
    );
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &[
            "config.json",
            "would not read back",
            "a config document may have",
            "`task_specific_params`",
        ],
    )
}
pub fn unknown_key(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("bogus_setting".into(), int(1));
        },
        &["config.json", "HF `bogus_setting`", "unknown key"],
    )
}
pub fn wrong_type(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("hidden_size".into(), Value::Str("64".into()));
        },
        &["config.json", "hidden_size"],
    )
}
pub fn kv_heads_not_dividing(root: &Path) -> Case {
    config_case(
        root,
        |c| {
            c.insert("num_key_value_heads".into(), int(3));
        },
        &["config.json", "HF `num_attention_heads`", "head_groups"],
    )
}
pub fn experts_a_trillion(root: &Path) -> Case {
    let input = root.join("input");
    copy_dir(&fixture("mixtral", "hf_input"), &input);
    edit_json(&input.join("config.json"), |c| {
        c.insert("num_local_experts".into(), int(1_000_000_000_000));
    });
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["config.json", "HF `num_local_experts`", "1000000000000"],
    )
}

// metadata.yaml.

fn metadata_case(root: &Path, pattern: &str, with: &str, n: usize, needles: &[&str]) -> Case {
    let input = fast_llm(root);
    replace_text(&input.join("metadata.yaml"), pattern, with, n);
    convert_case(root, &input, "llama", &[], needles)
}

pub fn yaml_epsilon_infinite(root: &Path) -> Case {
    metadata_case(
        root,
        "epsilon: 1.0e-06",
        "epsilon: .inf",
        1,
        &[
            "metadata.yaml",
            "`config.base_model.head.normalization.epsilon`",
            ".inf",
        ],
    )
}
pub fn yaml_epsilon_nan(root: &Path) -> Case {
    metadata_case(
        root,
        "epsilon: 1.0e-06",
        "epsilon: .nan",
        0,
        &[
            "metadata.yaml",
            "`config.base_model.decoder.block.normalization.epsilon`",
        ],
    )
}
pub fn yaml_blocks_a_trillion(root: &Path) -> Case {
    metadata_case(
        root,
        "num_blocks: 2",
        "num_blocks: 1000000000000",
        0,
        &["metadata.yaml", "decoder.num_blocks", "at most 65536"],
    )
}
pub fn yaml_deeply_nested(root: &Path) -> Case {
    let bomb = format!("deep: {}1{}\nfast_llm_version:", "[".repeat(10_000), "]".repeat(10_000));
    metadata_case(
        root,
        "fast_llm_version:",
        &bomb,
        0,
        &["metadata.yaml", "`deep`", "recursion limit"],
    )
}
pub fn yaml_billion_laughs(root: &Path) -> Case {
    let mut bomb = String::from("lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let previous = format!("*l{}", i - 1);
        bomb.push_str(&format!("lol{i}: &l{i} [{}]\n", vec![previous; 10].join(", ")));
    }
    bomb.push_str("fast_llm_version:");
    metadata_case(
        root,
        "fast_llm_version:",
        &bomb,
        0,
        &["metadata.yaml", "lol", "expanding this alias"],
    )
}
/// 240,000 aliases of a 6,000-byte string before `fast_llm_version:`: 0.7 MB of YAML that a
/// node count let expand to 1.4 GB.
fn alias_bytes_bomb() -> String {
    format!(
        "bomb_string: &s {}\nbomb: [{}]\nfast_llm_version:",
        "x".repeat(6000),
        vec!["*s"; 240_000].join(",")
    )
}
pub fn yaml_alias_bytes_bomb(root: &Path) -> Case {
    metadata_case(
        root,
        "fast_llm_version:",
        &alias_bytes_bomb(),
        0,
        &["metadata.yaml", "`bomb.", "expanding this alias"],
    )
}
pub fn yaml_no_model(root: &Path) -> Case {
    metadata_case(root, "model: gpt", "modell: gpt", 0, &["metadata.yaml", "`model`"])
}
pub fn state_index_traversal(root: &Path) -> Case {
    metadata_case(
        root,
        ": model_0.safetensors",
        ": ../model_0.safetensors",
        0,
        &[
            "metadata.yaml",
            "../model_0.safetensors",
            "decoder.0.mixer.dense.weight/weights",
        ],
    )
}
pub fn state_index_missing_file(root: &Path) -> Case {
    let input = fast_llm(root);
    std::fs::remove_file(input.join("model_0.safetensors")).unwrap();
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &["metadata.yaml", "model_0.safetensors", "is missing"],
    )
}
pub fn state_index_not_a_file_name(root: &Path) -> Case {
    metadata_case(
        root,
        ": model_0.safetensors",
        ": 3",
        0,
        &[
            "metadata.yaml",
            r#"state_index["decoder.0.mixer.dense.weight/weights"] is not a file name"#,
        ],
    )
}
pub fn state_index_unindexed_tensor(root: &Path) -> Case {
    metadata_case(
        root,
        "    decoder.0.mixer.dense.weight/weights: model_0.safetensors\n",
        "",
        0,
        &[
            "metadata.yaml",
            "`decoder.0.mixer.dense.weight/weights` is in `model_0.safetensors` but not in the index",
        ],
    )
}
/// A tensor the index places in a file that holds another tensor, while it is in another file.
pub fn state_index_tensor_in_another_file(root: &Path) -> Case {
    let input = fast_llm(root);
    let mut other = Safetensors::read(&input.join("model_0.safetensors"));
    let tensor = "decoder.0.mixer.dense.weight/weights";
    let mut entry = other.entry(tensor).clone();
    let Some(Value::List(offsets)) = entry.get("data_offsets") else {
        panic!("{tensor} has its data offsets")
    };
    let [Value::Int(start), Value::Int(end)] = offsets[..] else {
        panic!("{tensor}: two offsets")
    };
    entry.insert("data_offsets".into(), ints(&[0, end - start]));
    other.data = other.data[start as usize..end as usize].to_vec();
    other.header = Map::from([("unindexed".to_string(), Value::Map(entry))]);
    other.write(&input.join("model_1.safetensors"));
    replace_text(
        &input.join("metadata.yaml"),
        &format!("{tensor}: model_0.safetensors"),
        &format!("{tensor}: model_1.safetensors"),
        0,
    );
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &[
            "metadata.yaml",
            "`decoder.0.mixer.dense.weight/weights` is listed in the index for `model_1.safetensors` but is not in that file",
        ],
    )
}
pub fn fast_llm_optimizer_state(root: &Path) -> Case {
    let input = fast_llm(root);
    let path = input.join("model_0.safetensors");
    edit_weights(&path, |file| {
        let entry = file.entry("head.final_norm.weight/weights").clone();
        file.header.remove("head.final_norm.weight/weights");
        file.header
            .insert("head.final_norm.weight/exp_avg".into(), Value::Map(entry));
    });
    replace_text(
        &input.join("metadata.yaml"),
        "head.final_norm.weight/weights",
        "head.final_norm.weight/exp_avg",
        0,
    );
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &["model_0.safetensors", "head.final_norm.weight/exp_avg", "optimizer"],
    )
}

// Safetensors headers.

fn weights_case(root: &Path, edit: impl FnOnce(&mut Safetensors), needles: &[&str]) -> Case {
    let input = llama(root);
    edit_weights(&input.join("model.safetensors"), edit);
    convert_case(root, &input, "fast_llm", &[], needles)
}

fn raw_weights_case(root: &Path, edit: impl FnOnce(&mut Vec<u8>), needles: &[&str]) -> Case {
    let input = llama(root);
    let path = input.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    convert_case(root, &input, "fast_llm", &[], needles)
}

pub fn header_length_max(root: &Path) -> Case {
    raw_weights_case(
        root,
        |b| b[..8].copy_from_slice(&u64::MAX.to_le_bytes()),
        &["model.safetensors", "header too large"],
    )
}
pub fn header_length_past_the_file(root: &Path) -> Case {
    raw_weights_case(
        root,
        |b| {
            let length = b.len() as u64;
            b[..8].copy_from_slice(&length.to_le_bytes());
        },
        &["model.safetensors", "invalid header length"],
    )
}
pub fn header_bomb(root: &Path) -> Case {
    raw_weights_case(
        root,
        |b| b[..8].copy_from_slice(&100_000_001u64.to_le_bytes()),
        &["model.safetensors", "header too large"],
    )
}
/// A safetensors file of `tensors` empty tensors and `padding` spaces after its header JSON.
fn many_tensors(names: impl Iterator<Item = String>, padding: usize) -> Vec<u8> {
    let entries: Vec<String> = names
        .map(|n| format!(r#""{n}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#))
        .collect();
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len() + padding, b' ');
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes
}
/// A real header (not a length alone) of 300,000 tiny tensors, 17 MB: parsed it would take
/// about 15 times that.
pub fn header_of_many_tensors(root: &Path) -> Case {
    let input = llama(root);
    let bytes = many_tensors((0..300_000).map(|i| format!("t{i}")), 0);
    std::fs::write(input.join("model.safetensors"), bytes).unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors", "header too large"],
    )
}
/// Three shards of an index, each header within the limit of one file, 39 MiB in all.
pub fn headers_past_the_checkpoint_total(root: &Path) -> Case {
    let input = llama(root);
    std::fs::remove_file(input.join("model.safetensors")).unwrap();
    let mut weight_map = Map::new();
    for shard in 0..3 {
        let file = format!("model-0000{}-of-00003.safetensors", shard + 1);
        let bytes = many_tensors(std::iter::once(format!("t{shard}")), 13 << 20);
        std::fs::write(input.join(&file), bytes).unwrap();
        weight_map.insert(format!("t{shard}"), Value::Str(file));
    }
    let mut index = Map::new();
    index.insert("weight_map".into(), Value::Map(weight_map));
    std::fs::write(
        input.join("model.safetensors.index.json"),
        Value::Map(index).to_json_pretty(),
    )
    .unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model-00003-of-00003.safetensors", "headers would pass", "in all"],
    )
}
pub fn header_not_json(root: &Path) -> Case {
    raw_weights_case(root, |b| b[8] = b'!', &["model.safetensors", "invalid JSON"])
}
pub fn header_unknown_dtype(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            f.entry("model.norm.weight")
                .insert("dtype".into(), Value::Str("Q32".into()));
        },
        &["model.safetensors", "tensor `model.norm.weight`", "unknown dtype `Q32`"],
    )
}
pub fn header_shape_mismatch(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            f.entry("model.norm.weight").insert("shape".into(), ints(&[65]));
        },
        &["model.safetensors", "tensor `model.norm.weight`", "shape [65]"],
    )
}
pub fn header_shape_overflow(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            let big = 1i128 << 32;
            f.entry("model.norm.weight")
                .insert("shape".into(), ints(&[big, big, big]));
        },
        &["model.safetensors", "tensor `model.norm.weight`", "overflows"],
    )
}
pub fn header_overlapping_offsets(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            let last = f.last_tensor();
            let entry = f.entry(&last);
            let (start, end) = match &entry["data_offsets"] {
                Value::List(o) => match (&o[0], &o[1]) {
                    (Value::Int(a), Value::Int(b)) => (*a, *b),
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            };
            entry.insert("data_offsets".into(), ints(&[start - 4, end - 4]));
            f.data.truncate(f.data.len() - 4);
        },
        &["model.safetensors", "overlaps"],
    )
}
pub fn header_sub_byte_dtype(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            // 64 F32 values are 256 bytes: 512 F4 values.
            let entry = f.entry("model.norm.weight");
            entry.insert("dtype".into(), Value::Str("F4".into()));
            entry.insert("shape".into(), ints(&[512]));
        },
        &["model.safetensors", "tensor `model.norm.weight`", "dtype F4"],
    )
}
pub fn data_truncated(root: &Path) -> Case {
    let last = Safetensors::read(&fixture("llama", "hf_input").join("model.safetensors")).last_tensor();
    let needle = format!("tensor `{last}`");
    raw_weights_case(
        root,
        |b| b.truncate(b.len() - 4),
        &["model.safetensors", &needle, "truncated"],
    )
}

// Tensors against the config.

pub fn tensor_missing(root: &Path) -> Case {
    let last = Safetensors::read(&fixture("llama", "hf_input").join("model.safetensors")).last_tensor();
    let needle = format!("`{last}` (for Fast-LLM");
    weights_case(
        root,
        |f| {
            // Dropped from the header; its bytes become a trailing gap the reader rejects, so
            // keep the file consistent by dropping a tensor whose bytes are last.
            let last = f.last_tensor();
            let length = match &f.entry(&last)["data_offsets"] {
                Value::List(o) => match (&o[0], &o[1]) {
                    (Value::Int(a), Value::Int(b)) => (b - a) as usize,
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            };
            f.header.remove(&last);
            f.data.truncate(f.data.len() - length);
        },
        &[&needle, "missing from model.safetensors"],
    )
}
pub fn tensor_extra(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            let end = f.data.len() as i128;
            let entry = Map::from([
                ("dtype".to_string(), Value::Str("F32".into())),
                ("shape".to_string(), ints(&[2])),
                ("data_offsets".to_string(), ints(&[end, end + 8])),
            ]);
            f.header.insert("lm_head.bias".into(), Value::Map(entry));
            f.data.extend_from_slice(&[0; 8]);
        },
        &["`lm_head.bias` in model.safetensors", "does not map"],
    )
}
pub fn tensor_wrong_shape(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            f.entry("model.layers.1.self_attn.o_proj.weight")
                .insert("shape".into(), ints(&[32, 128]));
        },
        &[
            "`model.layers.1.self_attn.o_proj.weight` in model.safetensors",
            "[32, 128]",
        ],
    )
}
pub fn tensor_wrong_dtype(root: &Path) -> Case {
    weights_case(
        root,
        |f| {
            let entry = f.entry("model.layers.0.self_attn.v_proj.weight");
            entry.insert("dtype".into(), Value::Str("F16".into()));
            let shape = entry["shape"].clone();
            // Same bytes, twice the F16 elements.
            if let Value::List(dims) = shape
                && let Value::Int(first) = dims[0]
            {
                let mut dims = dims.clone();
                dims[0] = Value::Int(first * 2);
                entry.insert("shape".into(), Value::List(dims));
            }
        },
        &["`model.layers.0.self_attn.v_proj.weight` in model.safetensors"],
    )
}

// Sharded checkpoints and their index.

fn index_case(root: &Path, edit: impl FnOnce(&mut Map, &[String]), needles: &dyn Fn(&[String]) -> Vec<String>) -> Case {
    let (input, shards) = sharded(root);
    edit_json(&input.join("model.safetensors.index.json"), |index| {
        let Some(Value::Map(weight_map)) = index.get_mut("weight_map") else {
            panic!("a weight map")
        };
        edit(weight_map, &shards);
    });
    let needles = needles(&shards);
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    convert_case(root, &input, "fast_llm", &[], &needles)
}

pub fn index_traversal(root: &Path) -> Case {
    index_case(
        root,
        |map, shards| {
            map.insert("model.norm.weight".into(), Value::Str(format!("../{}", shards[0])));
        },
        &|shards| {
            vec![
                "model.safetensors.index.json".into(),
                format!("../{}", shards[0]),
                "model.norm.weight".into(),
            ]
        },
    )
}
pub fn index_absolute_path(root: &Path) -> Case {
    index_case(
        root,
        |map, _| {
            map.insert("model.norm.weight".into(), Value::Str("/etc/passwd".into()));
        },
        &|_| {
            vec![
                "model.safetensors.index.json".into(),
                "/etc/passwd".into(),
                "model.norm.weight".into(),
            ]
        },
    )
}
pub fn index_wrong_shard(root: &Path) -> Case {
    index_case(
        root,
        |map, shards| {
            let (tensor, _) = map.iter().find(|(_, f)| **f == Value::Str(shards[0].clone())).unwrap();
            let tensor = tensor.clone();
            map.insert(tensor, Value::Str(shards[1].clone()));
        },
        &|shards| vec!["model.safetensors.index.json".into(), shards[1].clone()],
    )
}
pub fn index_unindexed_tensor(root: &Path) -> Case {
    index_case(
        root,
        |map, _| {
            map.remove("model.norm.weight");
        },
        &|_| {
            vec![
                "model.safetensors.index.json".into(),
                "`model.norm.weight`".into(),
                "not in the index".into(),
            ]
        },
    )
}
pub fn index_huge(root: &Path) -> Case {
    let (input, _) = sharded(root);
    // Sparse: 40 MB on paper, past the 32 MiB an index may have.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("model.safetensors.index.json"))
        .unwrap();
    file.set_len(40 << 20).unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors.index.json", "a tensor index may have"],
    )
}
pub fn index_no_weight_map(root: &Path) -> Case {
    let (input, _) = sharded(root);
    std::fs::write(input.join("model.safetensors.index.json"), r#"{"metadata": {}}"#).unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors.index.json", "weight_map"],
    )
}
pub fn index_not_json(root: &Path) -> Case {
    let (input, _) = sharded(root);
    replace_text(
        &input.join("model.safetensors.index.json"),
        "\"weight_map\"",
        "weight_map",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors.index.json", "invalid JSON"],
    )
}
pub fn shard_missing(root: &Path) -> Case {
    let (input, shards) = sharded(root);
    std::fs::remove_file(input.join(&shards[1])).unwrap();
    let needle = format!("shard `{}`", shards[1]);
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors.index.json", &needle, "is missing"],
    )
}
pub fn shard_tensor_wrong_shape(root: &Path) -> Case {
    let (input, shards) = sharded(root);
    let shard = shards.last().unwrap().clone();
    let (mut name, mut shape) = (String::new(), Vec::new());
    edit_weights(&input.join(&shard), |f| {
        // A matrix reshaped to half the rows, twice the columns: the same bytes.
        for (tensor, entry) in &f.header {
            if let Some(Value::List(dims)) = entry.as_map().and_then(|e| e.get("shape"))
                && let [Value::Int(rows), Value::Int(cols)] = dims[..]
                && rows % 2 == 0
            {
                (name, shape) = (tensor.clone(), vec![rows / 2, cols * 2]);
                break;
            }
        }
        f.entry(&name).insert("shape".into(), ints(&shape));
    });
    let needle = format!("`{name}` in {shard}: shape {shape:?}");
    convert_case(root, &input, "fast_llm", &[], &[&needle])
}

// Pickle checkpoints: never unpickled.

fn pickle_case(root: &Path, file: &str) -> Case {
    let input = llama(root);
    std::fs::remove_file(input.join("model.safetensors")).unwrap();
    std::fs::write(input.join(file), b"\x80\x04\x95not unpickled").unwrap();
    convert_case(root, &input, "fast_llm", &[], &[file, "never unpickled"])
}

pub fn pickle_bin(root: &Path) -> Case {
    pickle_case(root, "pytorch_model.bin")
}
pub fn pickle_shards(root: &Path) -> Case {
    pickle_case(root, "pytorch_model-00001-of-00002.bin")
}
pub fn pickle_pt(root: &Path) -> Case {
    pickle_case(root, "consolidated.00.pth")
}

// Distributed training checkpoints (`metadata.yaml` + `rank_<r>.safetensors`), from the
// tensor-parallel-2 Llama fixture.

fn distributed(root: &Path) -> PathBuf {
    let input = root.join("input");
    copy_dir(
        &super::repo("crates/checkpoint/tests/data/distributed/llama_tp2/checkpoint"),
        &input,
    );
    input
}

fn distributed_case(root: &Path, edit: impl FnOnce(&Path), needles: &[&str]) -> Case {
    let input = distributed(root);
    edit(&input);
    convert_case(root, &input, "llama", &[], needles)
}

fn distributed_metadata_case(root: &Path, pattern: &str, with: &str, needles: &[&str]) -> Case {
    distributed_case(
        root,
        |input| replace_text(&input.join("metadata.yaml"), pattern, with, 0),
        needles,
    )
}

/// Changes the length of the 1-D tensor whose header entry is `entry`.
fn set_length(entry: &mut Map, change: impl FnOnce(i128) -> i128) {
    let Some(Value::List(shape)) = entry.get_mut("shape") else {
        panic!("a shape")
    };
    let Value::Int(n) = shape[0] else { panic!("a length") };
    shape[0] = int(change(n));
}

pub fn distributed_rank_missing(root: &Path) -> Case {
    distributed_case(
        root,
        |input| std::fs::remove_file(input.join("rank_1.safetensors")).unwrap(),
        &["`rank_1.safetensors` is missing", "world size is 2"],
    )
}
pub fn distributed_rank_beyond_the_world(root: &Path) -> Case {
    distributed_case(
        root,
        |input| {
            std::fs::copy(input.join("rank_0.safetensors"), input.join("rank_2.safetensors")).unwrap();
        },
        &["`rank_2.safetensors`", "beyond the world size", "world size is 2"],
    )
}
pub fn distributed_rank_is_a_directory(root: &Path) -> Case {
    distributed_case(
        root,
        |input| {
            std::fs::remove_file(input.join("rank_1.safetensors")).unwrap();
            std::fs::create_dir(input.join("rank_1.safetensors")).unwrap();
        },
        &["`rank_1.safetensors` is not a regular file"],
    )
}
pub fn distributed_world_size_a_trillion(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "\n    world_size: 2",
        "\n    world_size: 1000000000000",
        &[
            "`rank_2.safetensors` is missing",
            "metadata.yaml",
            "world size is 1000000000000",
        ],
    )
}
pub fn distributed_tensor_parallel_not_dividing(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "tensor_parallel: 2",
        "tensor_parallel: 3",
        &["metadata.yaml", "tensor_parallel"],
    )
}
pub fn distributed_version_too_new(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "fast_llm_version: 0.4.0",
        "fast_llm_version: 9.0.0",
        &["metadata.yaml", "fast_llm_version", "9.0.0"],
    )
}
pub fn distributed_yaml_alias_bytes_bomb(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "fast_llm_version:",
        &alias_bytes_bomb(),
        &["metadata.yaml", "`bomb.", "expanding this alias"],
    )
}
pub fn distributed_no_shards(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "shards:\n- weights\n- exp_avgs\n- exp_avgs_sq\n",
        "shards: []\n",
        &["metadata.yaml", "shards"],
    )
}
pub fn distributed_shard_size_wrong(root: &Path) -> Case {
    // The last tensor of the file loses its last element: a well-formed file, one element short.
    distributed_case(
        root,
        |input| {
            edit_weights(&input.join("rank_1.safetensors"), |file| {
                let last = file.last_tensor();
                let entry = file.entry(&last);
                set_length(entry, |n| n - 1);
                let Some(Value::List(offsets)) = entry.get_mut("data_offsets") else {
                    panic!("data_offsets")
                };
                let Value::Int(end) = offsets[1] else {
                    panic!("an offset")
                };
                offsets[1] = int(end - 4);
                let length = file.data.len() - 4;
                file.data.truncate(length);
            });
        },
        &["rank_1.safetensors", "_shard`", "has shape", "the layout implies"],
    )
}
pub fn distributed_shard_dtype_wrong(root: &Path) -> Case {
    // F32 read as twice as many F16: the same bytes, the wrong dtype.
    distributed_case(
        root,
        |input| {
            edit_weights(&input.join("rank_0.safetensors"), |file| {
                let entry = file.entry("weights_shard");
                entry.insert("dtype".into(), Value::Str("F16".into()));
                set_length(entry, |n| 2 * n);
            });
        },
        &["rank_0.safetensors", "`weights_shard`", "F16", "distributed."],
    )
}
pub fn distributed_shard_missing(root: &Path) -> Case {
    distributed_case(
        root,
        |input| {
            edit_weights(&input.join("rank_0.safetensors"), |file| {
                let entry = file.header.remove("weights_shard").unwrap();
                file.header.insert("weight_shard".into(), entry);
            });
        },
        &[
            "rank_0.safetensors",
            "unexpected tensor `weight_shard`",
            "weights, exp_avgs, exp_avgs_sq",
        ],
    )
}
pub fn distributed_rank_header_bomb(root: &Path) -> Case {
    distributed_case(
        root,
        |input| {
            let path = input.join("rank_1.safetensors");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            std::fs::write(&path, bytes).unwrap();
        },
        &["rank_1.safetensors", "header"],
    )
}
pub fn distributed_unknown_shard(root: &Path) -> Case {
    let input = distributed(root);
    convert_case(
        root,
        &input,
        "llama",
        &["--shard", "momentum"],
        &["metadata.yaml", "`momentum`", "weights, exp_avgs, exp_avgs_sq"],
    )
}

// Rank files whose header says they are another rank.

/// Rewrites the YAML `config` of a rank file's `__metadata__` (what identifies its rank).
fn edit_rank_identity(path: &Path, edit: impl FnOnce(&str) -> String) {
    edit_weights(path, |file| {
        let Some(Value::Map(metadata)) = file.header.get_mut("__metadata__") else {
            panic!("a rank file has header metadata")
        };
        let Some(Value::Str(config)) = metadata.get_mut("config") else {
            panic!("a rank file's metadata holds its config")
        };
        *config = edit(config);
    });
}

pub fn distributed_ranks_swapped(root: &Path) -> Case {
    // Same sizes (tensor-parallel halves): only the headers tell them apart.
    distributed_case(
        root,
        |input| {
            let (zero, one) = (input.join("rank_0.safetensors"), input.join("rank_1.safetensors"));
            let swap = input.join("swap");
            std::fs::rename(&zero, &swap).unwrap();
            std::fs::rename(&one, &zero).unwrap();
            std::fs::rename(&swap, &one).unwrap();
        },
        &["rank_0.safetensors", "rank 1", "name says rank 0"],
    )
}
pub fn distributed_rank_identity_not_an_int(root: &Path) -> Case {
    distributed_case(
        root,
        |input| {
            edit_rank_identity(&input.join("rank_1.safetensors"), |config| {
                config.replace("\n  rank: 1\n", "\n  rank: '1'\n")
            })
        },
        &["rank_1.safetensors", "config.distributed.rank", "str \"1\""],
    )
}

// metadata.yaml: the format it declares, and present keys of the wrong type.

/// `convert --from <from> --to <to> <extra> input root/out`, rejected naming `needles`.
fn convert_from_case(root: &Path, input: &Path, from: &str, to: &str, extra: &[&str], needles: &[&str]) -> Case {
    let mut case = convert_case(root, input, to, extra, needles);
    case.args[2] = from.to_string();
    case
}

pub fn yaml_format_unknown(root: &Path) -> Case {
    metadata_case(
        root,
        "format: fast_llm",
        "format: huggingface",
        0,
        &["metadata.yaml", "`format`", "huggingface", "fast_llm", "distributed"],
    )
}
pub fn yaml_format_not_a_string(root: &Path) -> Case {
    metadata_case(
        root,
        "format: fast_llm",
        "format: 3",
        0,
        &["metadata.yaml", "`format`", "int 3"],
    )
}
pub fn inspect_format_unknown(root: &Path) -> Case {
    let input = fast_llm(root);
    replace_text(
        &input.join("metadata.yaml"),
        "format: fast_llm",
        "format: huggingface",
        0,
    );
    Case {
        args: vec!["inspect".into(), s(&input)],
        needles: ["metadata.yaml", "`format`", "huggingface"].map(String::from).to_vec(),
        output: None,
        unchanged: vec![input],
    }
}
pub fn state_dict_read_as_distributed(root: &Path) -> Case {
    let input = fast_llm(root);
    convert_from_case(
        root,
        &input,
        "fast_llm_distributed",
        "llama",
        &["--config-only"],
        &["metadata.yaml", "`format`", "fast_llm", "distributed"],
    )
}
pub fn yaml_model_not_a_string(root: &Path) -> Case {
    metadata_case(
        root,
        "model: gpt",
        "model: 3",
        0,
        &["metadata.yaml", "`model`", "int 3"],
    )
}
pub fn yaml_state_index_not_a_mapping(root: &Path) -> Case {
    metadata_case(
        root,
        "metadata:\n  state_index:",
        "metadata:\n  state_index: 3\n  index:",
        0,
        &["metadata.yaml", "`metadata.state_index`", "int 3"],
    )
}
pub fn distributed_version_a_float(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "fast_llm_version: 0.4.0",
        "fast_llm_version: 0.4",
        &["metadata.yaml", "`fast_llm_version`", "float 0.4", "\"0.3.0\""],
    )
}
pub fn distributed_shards_not_a_list(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "shards:\n- weights\n- exp_avgs\n- exp_avgs_sq\n",
        "shards: weights\n",
        &["metadata.yaml", "`shards`", "str \"weights\""],
    )
}
pub fn distributed_trainer_metadata_not_a_mapping(root: &Path) -> Case {
    distributed_metadata_case(
        root,
        "\nmetadata:\n",
        "\nmetadata: 3\ntrainer:\n",
        &["metadata.yaml", "`metadata`", "int 3"],
    )
}
pub fn index_weight_map_not_a_mapping(root: &Path) -> Case {
    let (input, _) = sharded(root);
    std::fs::write(input.join("model.safetensors.index.json"), r#"{"weight_map": []}"#).unwrap();
    convert_case(
        root,
        &input,
        "fast_llm",
        &[],
        &["model.safetensors.index.json", "`weight_map`", "list"],
    )
}

// --drop-key: never a key the format converts.

pub fn drop_key_converted(root: &Path) -> Case {
    let input = llama(root);
    replace_text(
        &input.join("config.json"),
        "\"rope_theta\": 10000.0",
        "\"rope_theta\": 500000.0",
        0,
    );
    convert_case(
        root,
        &input,
        "fast_llm",
        &["--drop-key", "rope_parameters.rope_theta"],
        &[
            "config.json",
            "`rope_parameters.rope_theta`",
            "--drop-key",
            "llama",
            "decoder.block.mixer.rotary",
        ],
    )
}
pub fn drop_key_parent_of_converted(root: &Path) -> Case {
    // Apriel2's config mirrors Fast-LLM's: `decoder.block.mixer` is not a key itself, it holds them.
    let input = root.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let case = super::repo("tests/conformance/cases/apriel2_text__fixture_apriel2_attn.json");
    let case = Value::from_json_str(&std::fs::read_to_string(case).unwrap()).unwrap();
    let config = input.join("config.json");
    std::fs::write(&config, case.as_map().unwrap()["input"].to_json_pretty()).unwrap();
    Case {
        args: [
            "config",
            "import",
            "--format",
            "apriel2_text",
            "--drop-key",
            "decoder.block.mixer",
        ]
        .map(String::from)
        .into_iter()
        .chain([s(&config)])
        .collect(),
        needles: [
            "config.json",
            "`decoder.block.mixer`",
            "--drop-key",
            "apriel2_text",
            "it holds `decoder.block.mixer.",
        ]
        .map(String::from)
        .to_vec(),
        output: None,
        unchanged: vec![input],
    }
}
pub fn drop_key_dimension(root: &Path) -> Case {
    let input = llama(root);
    convert_case(
        root,
        &input,
        "fast_llm",
        &["--drop-key", "hidden_size"],
        &["config.json", "`hidden_size`", "--drop-key", "llama"],
    )
}
pub fn drop_key_config_import(root: &Path) -> Case {
    let input = llama(root);
    let config = input.join("config.json");
    Case {
        args: [
            "config",
            "import",
            "--format",
            "auto",
            "--drop-key",
            "num_attention_heads",
        ]
        .map(String::from)
        .into_iter()
        .chain([s(&config)])
        .collect(),
        needles: [
            "config.json",
            "`num_attention_heads`",
            "--drop-key",
            "decoder.block.mixer.heads",
        ]
        .map(String::from)
        .to_vec(),
        output: None,
        unchanged: vec![input],
    }
}

// A tensor missing, extra or misshapen anywhere in the plan order is named.

/// Removes the tensors `drop` says from a safetensors file, keeping the others' bytes contiguous.
fn remove_tensors(file: &mut Safetensors, drop: impl Fn(&str) -> bool) {
    let offsets = |entry: &Value| match entry.as_map().and_then(|e| e.get("data_offsets")) {
        Some(Value::List(o)) => match (&o[0], &o[1]) {
            (Value::Int(a), Value::Int(b)) => (*a as usize, *b as usize),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    let mut kept: Vec<(String, Value)> = file
        .header
        .iter()
        .filter(|(name, _)| *name != "__metadata__" && !drop(name))
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect();
    kept.sort_by_key(|(_, entry)| offsets(entry).0);
    let mut data = Vec::new();
    for (name, entry) in kept {
        let (start, end) = offsets(&entry);
        let mut entry = entry.as_map().unwrap().clone();
        entry.insert(
            "data_offsets".into(),
            ints(&[data.len() as i128, (data.len() + end - start) as i128]),
        );
        data.extend_from_slice(&file.data[start..end]);
        file.header.insert(name, Value::Map(entry));
    }
    file.header.retain(|name, _| name == "__metadata__" || !drop(name));
    file.data = data;
}

pub fn fast_llm_tensor_missing(root: &Path) -> Case {
    let input = fast_llm(root);
    let tensor = "decoder.1.mlp.layer_2.weight/weights";
    edit_weights(&input.join("model_0.safetensors"), |file| {
        remove_tensors(file, |n| n == tensor)
    });
    replace_text(
        &input.join("metadata.yaml"),
        &format!("    {tensor}: model_0.safetensors\n"),
        "",
        0,
    );
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &["`decoder.1.mlp.layer_2.weight`", "missing from metadata.yaml"],
    )
}
pub fn fast_llm_tensor_wrong_shape(root: &Path) -> Case {
    let input = fast_llm(root);
    edit_weights(&input.join("model_0.safetensors"), |file| {
        file.entry("decoder.0.mlp.layer_1.weight/weights")
            .insert("shape".into(), ints(&[128, 128]));
    });
    convert_case(
        root,
        &input,
        "llama",
        &[],
        &["`decoder.0.mlp.layer_1.weight` in model_0.safetensors", "[128, 128]"],
    )
}
pub fn fast_llm_tensor_extra(root: &Path) -> Case {
    let input = fast_llm(root);
    let tensor = "decoder.2.norm_1.weight/weights";
    edit_weights(&input.join("model_0.safetensors"), |file| {
        let end = file.data.len() as i128;
        let entry = Map::from([
            ("dtype".to_string(), Value::Str("F32".into())),
            ("shape".to_string(), ints(&[64])),
            ("data_offsets".to_string(), ints(&[end, end + 256])),
        ]);
        file.header.insert(tensor.into(), Value::Map(entry));
        file.data.extend_from_slice(&[0; 256]);
    });
    replace_text(
        &input.join("metadata.yaml"),
        "  state_index:\n",
        &format!("  state_index:\n    {tensor}: model_0.safetensors\n"),
        0,
    );
    convert_case(root, &input, "llama", &[], &["`decoder.2.norm_1.weight`", "no place"])
}
pub fn tensors_mostly_missing(root: &Path) -> Case {
    weights_case(
        root,
        |file| remove_tensors(file, |n| n.starts_with("model.layers.")),
        &["`model.layers.0.", "missing from model.safetensors"],
    )
}
pub fn tensors_but_the_norms_missing(root: &Path) -> Case {
    // 320 elements in all: every other tensor is larger than the whole checkpoint.
    weights_case(
        root,
        |file| remove_tensors(file, |n| !n.ends_with("norm.weight")),
        &["`model.embed_tokens.weight`", "missing from model.safetensors"],
    )
}

// --dtype: casts that would lose values, or cannot be made.

/// Sets element `index` of F32 tensor `name` to `value`.
fn set_f32(file: &mut Safetensors, name: &str, index: usize, value: f32) {
    let Some(Value::List(offsets)) = file.entry(name).get("data_offsets").cloned() else {
        panic!("{name} has data_offsets")
    };
    let Value::Int(start) = offsets[0] else { panic!() };
    let at = start as usize + 4 * index;
    file.data[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn dtype_overflows_f16(root: &Path) -> Case {
    let input = llama(root);
    edit_weights(&input.join("model.safetensors"), |file| {
        set_f32(file, "model.layers.1.mlp.up_proj.weight", 5, 1e9);
        set_f32(file, "model.layers.1.mlp.up_proj.weight", 7, -65520.0);
    });
    convert_case(
        root,
        &input,
        "llama",
        &["--dtype", "f16"],
        &[
            &format!("{}: tensor", s(&input.join("model.safetensors"))),
            "`model.layers.1.mlp.up_proj.weight`",
            "F32 to F16 turns 2 finite values into infinity (largest magnitude 1e9)",
            "--allow-overflow",
        ],
    )
}
pub fn dtype_of_an_int_tensor(root: &Path) -> Case {
    let input = llama(root);
    edit_weights(&input.join("model.safetensors"), |file| {
        file.entry("model.norm.weight")
            .insert("dtype".into(), Value::Str("I32".into()));
    });
    convert_case(
        root,
        &input,
        "fast_llm",
        &["--dtype", "bf16"],
        &[
            "`head.final_norm.weight/weights` (Fast-LLM `head.final_norm.weight`) in model.safetensors",
            "dtype I32 cannot be cast to BF16",
        ],
    )
}
