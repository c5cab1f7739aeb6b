//! `cargo xtask fuzz [--seconds S] [--runs N] [--no-sanitizer] [TARGET...]`: writes seed corpora
//! from the test data (conformance cases, fixtures, every format's sample configs and tiny
//! synthetic checkpoints of them), then runs each cargo-fuzz target of `fuzz/` on them, with debug
//! assertions and overflow checks. Nightly with AddressSanitizer when a nightly toolchain is
//! installed, else (or with `--no-sanitizer`, 2-3x faster for long runs) without a sanitizer.

use std::path::{Path, PathBuf};
use std::process::Command;

use fastllm_convert::checkpoint::synthetic::{SyntheticStorage, write_synthetic_distributed, write_synthetic_hf};
use fastllm_convert::config::{Form, Map, Value, load_base_model};
use fastllm_convert::core::{HfLayout, handlers};

/// The fuzz targets, as `fuzz/Cargo.toml` names them.
pub const TARGETS: [&str; 5] = [
    "hf_config",
    "fast_llm_metadata",
    "safetensors_index",
    "convert",
    "distributed",
];

/// Seeds larger than this are left out: small inputs mutate and run faster.
const MAX_SEED_BYTES: usize = 96 * 1024;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether `cargo fuzz` is installed.
pub fn available() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("nightly"))
        })
}

/// `cargo xtask fuzz …`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut session = Session {
        seconds: None,
        runs: None,
        sanitizer: true,
        corpus: "fuzz-corpus",
    };
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => session.seconds = Some(number("--seconds")?),
            "--runs" => session.runs = Some(number("--runs")?),
            "--no-sanitizer" => session.sanitizer = false,
            target if TARGETS.contains(&target) => targets.push(target.to_string()),
            other => {
                return Err(format!(
                    "unknown fuzz argument `{other}` (targets: {})",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    fuzz(&targets, &session)
}

/// How long and how each fuzz target runs.
pub struct Session<'a> {
    /// Seconds per target.
    pub seconds: Option<u64>,
    /// Executions per target.
    pub runs: Option<u64>,
    /// With AddressSanitizer, when a nightly toolchain is installed.
    pub sanitizer: bool,
    /// The corpus directory under `target/`. `ci` keeps a corpus of its own: replaying a long
    /// run's (thousands of inputs) alone would take longer than its 20 s.
    pub corpus: &'a str,
}

/// Seeds, then each target as `session` says, growing the corpus in `target/<corpus>/`.
pub fn fuzz(targets: &[String], session: &Session) -> Result<(), String> {
    let &Session {
        seconds,
        runs,
        sanitizer,
        corpus,
    } = session;
    let root = repo().join("target");
    let seeds = root.join("fuzz-seeds");
    write_seeds(&seeds)?;
    let nightly = has_nightly();
    let asan = nightly && sanitizer;
    for target in targets {
        let corpus = root.join(corpus).join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let mut command = Command::new("cargo");
        command.env_remove("RUSTUP_TOOLCHAIN").current_dir(repo());
        if nightly {
            command.arg("+nightly");
        }
        // Overflow checks on: an unchecked size from input is a crash.
        command.args(["fuzz", "run", "--fuzz-dir", "fuzz", "--debug-assertions"]);
        if !asan {
            // Its own build directory: switching flags would rebuild everything each time.
            command.args(["--sanitizer", "none", "--target-dir", "fuzz/target/no-sanitizer"]);
        }
        command.arg(target).arg(&corpus).arg(seeds.join(target)).arg("--");
        // A hang (a FIFO read, an endless loop) is a finding too; so is an allocation bomb.
        command.args([
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-malloc_limit_mb=2048",
            "-print_final_stats=1",
        ]);
        if let Some(seconds) = seconds {
            command.arg(format!("-max_total_time={seconds}"));
        }
        if let Some(runs) = runs {
            command.arg(format!("-runs={runs}"));
        }
        eprintln!(
            "xtask: fuzzing `{target}` ({}){}{}",
            match (nightly, asan) {
                (true, true) => "nightly, AddressSanitizer",
                (true, false) => "nightly, no sanitizer",
                _ => "stable, no sanitizer",
            },
            seconds.map(|s| format!(", {s} s")).unwrap_or_default(),
            runs.map(|r| format!(", {r} runs")).unwrap_or_default(),
        );
        let status = command.status().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        remove_finished_scratch();
        if !status.success() {
            return Err(format!(
                "fuzz target `{target}` failed ({status}); the input is in fuzz/artifacts/{target}/"
            ));
        }
    }
    Ok(())
}

/// Removes the scratch directories of fuzz processes that have exited (`fuzz/src/lib.rs` names
/// them by process id; a running one, e.g. a long run beside CI, keeps its own).
fn remove_finished_scratch() {
    let root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
    .join("fastllm-fuzz");
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !Path::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes every target's seed corpus under `dir/<target>/`.
pub fn write_seeds(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    for target in TARGETS {
        std::fs::create_dir_all(dir.join(target)).map_err(|e| e.to_string())?;
    }
    let mut count = 0usize;
    let mut seed = |target: &str, name: &str, bytes: &[u8]| -> Result<(), String> {
        if bytes.len() <= MAX_SEED_BYTES {
            count += 1;
            std::fs::write(dir.join(target).join(name), bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let all = handlers();
    let auto = u8::MAX;
    let index_of = |name: &str| all.iter().position(|h| h.name == name).map_or(auto, |i| i as u8);
    let hf_seed = |choice: u8, hf: &str| [&[choice][..], hf.as_bytes()].concat();

    // Conformance cases: HF dicts to import, Fast-LLM dicts to export.
    let cases = repo().join("tests/conformance/cases");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&cases)
        .map_err(|e| format!("{}: {e}", cases.display()))?
        .map(|e| e.map(|e| e.path()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let case = read_json(&path)?;
        let (Some(Value::Str(format)), Some(Value::Str(direction)), Some(input)) =
            (case.get("format"), case.get("direction"), case.get("input"))
        else {
            continue;
        };
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        if direction == "import" {
            seed("hf_config", &name, &hf_seed(index_of(format), &input.to_json_pretty()))?;
        } else {
            let model = if format.contains("llava") || format == "apriel2" || format == "auto_multimodal" {
                "multimodal"
            } else {
                "gpt"
            };
            seed("fast_llm_metadata", &name, metadata_yaml(model, input).as_bytes())?;
        }
    }
    // The fixtures: HF configs, Fast-LLM metadata.
    let fixtures = repo().join("tests/fixtures/weights");
    for format in ["llama", "mistral", "qwen2", "mixtral"] {
        let config =
            std::fs::read_to_string(fixtures.join(format).join("hf_input/config.json")).map_err(|e| e.to_string())?;
        seed("hf_config", &format!("fixture-{format}"), &hf_seed(auto, &config))?;
        let metadata =
            std::fs::read(fixtures.join(format).join("fast_llm/metadata.yaml")).map_err(|e| e.to_string())?;
        seed("fast_llm_metadata", &format!("fixture-{format}"), &metadata)?;
    }
    // Every format's samples: their HF configs, metadata, and tiny synthetic checkpoints.
    let scratch = repo().join("target/fuzz-seed-checkpoints");
    for (h, handler) in all.iter().enumerate() {
        for (i, sample) in handler.converter().samples.iter().enumerate() {
            let name = format!("{}-sample-{i}", handler.name);
            let model = handler.model.name();
            seed("fast_llm_metadata", &name, metadata_yaml(model, sample).as_bytes())?;
            let Ok(config) = load_base_model(handler.model, sample) else {
                continue;
            };
            for layout in [HfLayout::V4, HfLayout::V5] {
                if let Ok(hf) = handler.export(&config, layout) {
                    let text = Value::Map(hf).to_json_pretty();
                    seed("hf_config", &format!("{name}-{layout:?}"), &hf_seed(h as u8, &text))?;
                }
            }
            // Checkpoints of the sample shrunk to a few hundred bytes of tensors: mutations then
            // land in headers and configs, not in weights.
            let Ok(config) = load_base_model(handler.model, &shrink(sample)) else {
                continue;
            };
            if handler.export(&config, HfLayout::V4).is_err() {
                continue;
            }
            let checkpoint = scratch.join(&name);
            if write_synthetic_hf(
                handler,
                &config,
                &checkpoint,
                &SyntheticStorage {
                    dtype: "BF16",
                    max_shard_bytes: u64::MAX,
                },
            )
            .is_err()
            {
                continue;
            }
            let read = |file: &str| std::fs::read(checkpoint.join(file)).map_err(|e| e.to_string());
            let (config_json, weights) = (read("config.json")?, read("model.safetensors")?);
            seed("convert", &name, &two_files(&config_json, &weights))?;
            seed("safetensors_index", &name, &two_files(b"", &weights))?;
            let index = single_shard_index(&weights)?;
            seed(
                "safetensors_index",
                &format!("{name}-indexed"),
                &two_files(index.as_bytes(), &weights),
            )?;
        }
    }
    // Distributed training checkpoints of at most two ranks: the reference's fixtures, and every
    // format's shrunk samples on one rank and split over two (tensor, then pipeline parallel).
    let distributed = repo().join("crates/checkpoint/tests/data/distributed");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&distributed)
        .map_err(|e| format!("{}: {e}", distributed.display()))?
        .flatten()
        .map(|e| e.path().join("checkpoint"))
        .filter(|checkpoint| checkpoint.is_dir())
        .collect();
    fixtures.sort();
    for checkpoint in fixtures {
        let name = checkpoint
            .parent()
            .and_then(|p| p.file_name())
            .unwrap_or_default()
            .to_string_lossy();
        if let Some(bytes) = distributed_seed(&checkpoint)? {
            seed("distributed", &format!("fixture-{name}"), &bytes)?;
        }
    }
    for handler in &all {
        for (i, sample) in handler.converter().samples.iter().enumerate() {
            let Ok(config) = load_base_model(handler.model, &shrink(sample)) else {
                continue;
            };
            for (label, parallel) in [
                ("world1", r#"{"distributed": {"world_size": 1}}"#),
                ("tp2", r#"{"distributed": {"world_size": 2, "tensor_parallel": 2}}"#),
                ("pp2", r#"{"distributed": {"world_size": 2, "pipeline_parallel": 2}}"#),
            ] {
                let Ok(Value::Map(parallel)) = Value::from_json_str(parallel) else {
                    return Err("a parallel layout is a JSON object".into());
                };
                let checkpoint = scratch.join(format!("{}-{i}-{label}", handler.name));
                if write_synthetic_distributed(&config, &parallel, &checkpoint, &["weights"]).is_err() {
                    continue;
                }
                if let Some(bytes) = distributed_seed(&checkpoint)? {
                    seed("distributed", &format!("{}-sample-{i}-{label}", handler.name), &bytes)?;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!("xtask: {count} fuzz seeds in {}", dir.display());
    Ok(())
}

/// Small values for the dimensions of a Fast-LLM config (at any depth).
const SMALL: &[(&str, i128)] = &[
    ("hidden_size", 8),
    ("vocab_size", 16),
    ("intermediate_size", 8),
    ("head_size", 4),
    ("head_dim", 4),
    ("key_head_dim", 4),
    ("value_head_dim", 4),
    ("d_inner", 16),
    ("d_xb", 8),
    ("state_size", 4),
    ("dt_rank", 2),
    ("num_position_embeddings", 16),
    ("patch_height", 2),
    ("patch_width", 2),
];

/// `config` with its dimensions made small (counts of heads, blocks and experts kept).
fn shrink(config: &Value) -> Value {
    match config {
        Value::Map(map) => Value::Map(
            map.iter()
                .map(|(key, value)| {
                    let small = SMALL.iter().find(|(name, _)| name == key);
                    let value = match (small, value) {
                        (Some((_, n)), Value::Int(_)) => Value::Int(*n),
                        _ => shrink(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::List(items) => Value::List(items.iter().map(shrink).collect()),
        other => other.clone(),
    }
}

fn read_json(path: &Path) -> Result<Map, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match Value::from_json_str(&text) {
        Ok(Value::Map(map)) => Ok(map),
        _ => Err(format!("{}: not a JSON object", path.display())),
    }
}

/// A `metadata.yaml` holding `base_model`, as Fast-LLM writes one.
fn metadata_yaml(model: &str, base_model: &Value) -> String {
    let base_model = match load_base_model(
        if model == "gpt" {
            fastllm_convert::config::ModelKind::Gpt
        } else {
            fastllm_convert::config::ModelKind::MultiModal
        },
        base_model,
    ) {
        Ok(config) => Value::Map(config.to_form(Form::Explicit)),
        Err(_) => base_model.clone(),
    };
    let config = Map::from([
        ("type".to_string(), Value::Str(model.into())),
        ("base_model".to_string(), base_model),
    ]);
    let state_index = Map::from([(
        "embeddings.word_embeddings_weight/weights".to_string(),
        Value::Str("model_0.safetensors".into()),
    )]);
    Value::Map(Map::from([
        ("config".to_string(), Value::Map(config)),
        ("format".to_string(), Value::Str("fast_llm".into())),
        ("model".to_string(), Value::Str(model.into())),
        (
            "metadata".to_string(),
            Value::Map(Map::from([("state_index".to_string(), Value::Map(state_index))])),
        ),
    ]))
    .to_yaml()
}

/// An index naming every tensor of the safetensors file `weights` in the fuzz target's one shard.
fn single_shard_index(weights: &[u8]) -> Result<String, String> {
    let length = u64::from_le_bytes(weights[..8].try_into().map_err(|_| "short file")?) as usize;
    let header = std::str::from_utf8(&weights[8..8 + length]).map_err(|e| e.to_string())?;
    let Ok(Value::Map(header)) = Value::from_json_str(header.trim_end()) else {
        return Err("a synthetic header is JSON".into());
    };
    let weight_map: Map = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .map(|k| (k.clone(), Value::Str("model-00001-of-00001.safetensors".into())))
        .collect();
    Ok(Value::Map(Map::from([("weight_map".to_string(), Value::Map(weight_map))])).to_json_pretty())
}

/// The `distributed` target's input (see `fuzz/src/lib.rs`) for a checkpoint of one or two ranks.
fn distributed_seed(checkpoint: &Path) -> Result<Option<Vec<u8>>, String> {
    let read = |file: &str| std::fs::read(checkpoint.join(file)).map_err(|e| format!("{}: {e}", checkpoint.display()));
    if checkpoint.join("rank_2.safetensors").exists() {
        return Ok(None);
    }
    let (metadata, rank_0) = (read("metadata.yaml")?, read("rank_0.safetensors")?);
    let rank_1 = if checkpoint.join("rank_1.safetensors").exists() {
        read("rank_1.safetensors")?
    } else {
        Vec::new()
    };
    let (true, Ok(m)) = (metadata.len() <= usize::from(u16::MAX), u32::try_from(rank_0.len())) else {
        return Ok(None);
    };
    let mut out = two_files(&metadata, &m.to_le_bytes());
    out.extend_from_slice(&rank_0);
    out.extend_from_slice(&rank_1);
    Ok(Some(out))
}

/// The fuzz targets' two-file input layout (see `fuzz/src/lib.rs`): `[u16 n][n bytes][rest]`.
fn two_files(first: &[u8], second: &[u8]) -> Vec<u8> {
    let n = u16::try_from(first.len()).unwrap_or(u16::MAX);
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(&first[..usize::from(n)]);
    out.extend_from_slice(second);
    out
}
