//! An input file changed under a running conversion is an error naming it, never a crash: a
//! property test over generated cases. Each case takes a tiny checkpoint of one input kind (HF
//! safetensors, `fast_llm`, `fast_llm_distributed` rank files), and while converting it, at a
//! random moment after the input was opened (before the first tensor is read, or between any two
//! writes of the output), changes one of its tensor files: truncated at a random byte, shortened
//! by a few bytes, rewritten in place (the same bytes, or other bytes of the same length) or
//! grown. Whatever the case:
//!
//! 1. the conversion returns (no signal, no panic);
//! 2. it fails with an error naming the changed file, or succeeds with exactly the output of the
//!    unchanged input;
//! 3. a failed conversion leaves nothing at the output path.
//!
//! The CLI runs as a subprocess on a larger checkpoint, the file cut at a random time, so that a
//! SIGBUS (what touching a memory-mapped page past the new end of a file raises) shows as a
//! signal exit.
//!
//! `FASTLLM_CHANGE_CASES` sets the number of generated cases (default 300),
//! `FASTLLM_CHANGE_SEED` the first seed (default: from the clock; printed).
#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fastllm_convert::checkpoint::convert::{self, Conversion, Options, Side};
use fastllm_convert::checkpoint::synthetic::{SyntheticStorage, write_synthetic_distributed, write_synthetic_hf};
use fastllm_convert::config::{BaseModelConfig, ModelKind, Value, load_base_model};
use support::random::{Random, cases_and_seed, clock_seed};
use support::scratch;

/// A Llama config of `layers` layers, `hidden` wide.
fn llama_config(hidden: usize, layers: usize) -> BaseModelConfig {
    let (heads, intermediate, vocab) = (hidden / 8, 4 * hidden, 16 * hidden);
    let config = format!(
        r#"{{"hidden_size": {hidden}, "embeddings": {{"vocab_size": {vocab}}},
            "head": {{"normalization": {{"type": "rms_norm"}}}},
            "decoder": {{"num_blocks": {layers}, "block": {{
              "mixer": {{"heads": {heads}, "head_groups": {heads}, "head_size": 8, "add_linear_biases": false,
                         "rotary": {{"type": "default", "theta": 10000}}}},
              "mlp": {{"intermediate_size": {intermediate}, "gated": true, "add_linear_biases": false}},
              "normalization": {{"type": "rms_norm"}}}}}}}}"#
    );
    load_base_model(ModelKind::Gpt, &Value::from_json_str(&config).unwrap()).unwrap()
}

fn write_hf(config: &BaseModelConfig, dir: &Path, max_shard_bytes: u64) {
    let llama = fastllm_convert::core::find("llama").unwrap();
    let storage = SyntheticStorage {
        dtype: "BF16",
        max_shard_bytes,
    };
    write_synthetic_hf(llama, config, dir, &storage).unwrap();
}

/// How a file is changed.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// Cut at a random byte.
    Truncate,
    /// A few bytes cut off its end.
    Shorten,
    /// Emptied and written again, the same bytes.
    RewriteSame,
    /// Its bytes changed in place at a random offset, the size kept.
    Overwrite,
    /// Bytes appended.
    Grow,
}

const CHANGES: [Change; 5] = [
    Change::Truncate,
    Change::Shorten,
    Change::RewriteSame,
    Change::Overwrite,
    Change::Grow,
];

impl Change {
    fn apply(self, path: &Path, random: &mut Random) {
        use std::io::{Seek, SeekFrom, Write};
        let bytes = std::fs::read(path).unwrap();
        let len = bytes.len();
        let open = || std::fs::OpenOptions::new().write(true).open(path).unwrap();
        match self {
            Change::Truncate => open().set_len(random.below(len) as u64).unwrap(),
            Change::Shorten => open().set_len(len.saturating_sub(1 + random.below(8)) as u64).unwrap(),
            Change::RewriteSame => {
                let mut file = open();
                file.set_len(0).unwrap();
                file.write_all(&bytes).unwrap();
            }
            Change::Overwrite => {
                let mut file = open();
                file.seek(SeekFrom::Start(random.below(len) as u64)).unwrap();
                file.write_all(&[0x5A; 16][..16.min(len)]).unwrap();
            }
            Change::Grow => {
                let mut file = open();
                file.seek(SeekFrom::End(0)).unwrap();
                file.write_all(&[0u8; 64]).unwrap();
            }
        }
    }
}

/// One input kind: its pristine checkpoint, the conversion run on it, and the output of that
/// conversion when nothing changes.
struct Kind {
    label: &'static str,
    pristine: PathBuf,
    from: Side,
    to: Side,
    /// The moments the progress callback gives (calls of an unchanged run).
    calls: usize,
    expected: BTreeMap<String, Vec<u8>>,
}

/// The regular files of `dir`, by name (the output holds no subdirectory).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn tensor_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = files(dir)
        .into_keys()
        .filter(|name| name.ends_with(".safetensors"))
        .collect();
    names.sort();
    names
}

fn run(
    input: &Path,
    output: &Path,
    (from, to): (Side, Side),
    progress: &mut dyn FnMut() -> ControlFlow<()>,
) -> Result<(), String> {
    let conversion = Conversion {
        input,
        from,
        output,
        to,
    };
    convert::convert_cancellable(&conversion, &Options::default(), &mut |_, _| progress())
        .map(drop)
        .map_err(|e| e.to_string())
}

fn kind(root: &Path, label: &'static str, (from, to): (Side, Side), write: impl FnOnce(&Path)) -> Kind {
    let pristine = root.join(label);
    write(&pristine);
    let output = root.join(format!("{label}.expected"));
    let mut calls = 0;
    run(&pristine, &output, (from, to), &mut || {
        calls += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    let expected = files(&output);
    Kind {
        label,
        pristine,
        from,
        to,
        calls,
        expected,
    }
}

fn kinds(root: &Path) -> Vec<Kind> {
    let llama = Side::Hf(fastllm_convert::core::find("llama").unwrap());
    let config = llama_config(32, 2);
    let hf = kind(root, "hf", (llama, Side::FastLlm), |dir| {
        write_hf(&config, dir, 8 << 10)
    });
    let fast_llm = kind(root, "fast_llm", (Side::FastLlm, llama), |dir| {
        let conversion = Conversion {
            input: &hf.pristine,
            from: llama,
            output: dir,
            to: Side::FastLlm,
        };
        convert::convert(&conversion, &Options::default()).unwrap();
    });
    let parallel = Value::from_json_str(
        r#"{"distributed": {"world_size": 4, "tensor_parallel": 2, "pipeline_parallel": 2},
            "multi_stage": {"zero_stage": 3}}"#,
    )
    .unwrap();
    let write_distributed = |dir: &Path| {
        write_synthetic_distributed(&config, parallel.as_map().unwrap(), dir, &["weights"]).unwrap();
    };
    let to_hf = kind(
        root,
        "distributed",
        (Side::FastLlmDistributed, llama),
        write_distributed,
    );
    let to_fast_llm = kind(
        root,
        "distributed_to_fast_llm",
        (Side::FastLlmDistributed, Side::FastLlm),
        write_distributed,
    );
    vec![hf, fast_llm, to_hf, to_fast_llm]
}

#[test]
fn an_input_changed_mid_conversion_is_an_error_naming_it_or_changes_nothing() {
    let (cases, seed) = cases_and_seed("FASTLLM_CHANGE_CASES", 300, "FASTLLM_CHANGE_SEED");
    println!("FASTLLM_CHANGE_SEED={seed} FASTLLM_CHANGE_CASES={cases}");
    let root = scratch("input_changes", "cases");
    let kinds = kinds(&root);
    let mut random = Random(seed);
    let (mut failed, mut succeeded) = (0, 0);
    for case in 0..cases {
        let kind = &kinds[random.below(kinds.len())];
        let input = root.join(format!("case-{case}"));
        support::copy_dir(&kind.pristine, &input);
        // A same-size rewrite within the filesystem's timestamp granularity (a few ms here) of
        // the file's last write keeps its change time: the rule's documented limit. Real inputs
        // were written long before; so is this one, by the time it is converted.
        std::thread::sleep(Duration::from_millis(20));
        let names = tensor_files(&input);
        let changed = &names[random.below(names.len())];
        let change = CHANGES[random.below(CHANGES.len())];
        // 0: before the first tensor is read; else after that many writes.
        let moment = random.below(kind.calls);
        let output = root.join(format!("case-{case}.out"));
        let what = format!(
            "case {case} (seed {seed}): {} input, {change:?} of {changed} at progress call {moment} of {}",
            kind.label, kind.calls
        );
        let mut calls = 0;
        let result = run(&input, &output, (kind.from, kind.to), &mut || {
            if calls == moment {
                change.apply(&input.join(changed), &mut random);
            }
            calls += 1;
            ControlFlow::Continue(())
        });
        match result {
            Ok(()) => {
                succeeded += 1;
                assert!(
                    files(&output) == kind.expected,
                    "{what}: converted, but not to the unchanged input's output"
                );
            }
            Err(error) => {
                failed += 1;
                assert!(
                    error.contains(changed.as_str()),
                    "{what}: the error does not name the file: {error}"
                );
                assert!(!output.exists(), "{what}: failed ({error}) but left an output");
            }
        }
        std::fs::remove_dir_all(&input).unwrap();
        let _ = std::fs::remove_dir_all(&output);
    }
    println!("{cases} cases: {failed} refused naming the changed file, {succeeded} converted unchanged");
    // Every change is made while the input is open and before the last read: none can pass.
    assert_eq!(succeeded, 0, "a change went unnoticed");
    let _ = std::fs::remove_dir_all(&root);
}

/// The CLI converting a 24 MB checkpoint whose shard is cut at a random time: it exits 0 (the cut
/// came after the conversion, the output complete) or 2 naming the file, never by a signal.
#[test]
fn the_cli_cut_short_under_a_conversion_exits_2_naming_the_file_never_by_a_signal() {
    let root = scratch("input_changes", "cli");
    let pristine = root.join("in");
    write_hf(&llama_config(256, 6), &pristine, 8 << 20);
    let convert = |input: &Path, output: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"));
        command.args(["convert", "--from", "llama", "--to", "fast_llm"]);
        command
            .arg(input)
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let started = Instant::now();
    let reference = root.join("reference");
    assert!(convert(&pristine, &reference).status().unwrap().success());
    let took = started.elapsed().as_micros().max(1) as usize;
    let expected = files(&reference);
    let mut random = Random(clock_seed());
    let runs: usize = std::env::var("FASTLLM_CHANGE_CLI_RUNS").map_or(12, |n| n.parse().unwrap());
    let mut refused = 0;
    for run in 0..runs {
        let input = root.join(format!("in-{run}"));
        support::copy_dir(&pristine, &input);
        let output = root.join(format!("out-{run}"));
        let shards = tensor_files(&input);
        let shard = &shards[random.below(shards.len())];
        let child = convert(&input, &output).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(random.below(took) as u64));
        // Cut within the first quarter: most of the tensors left are past the new end.
        let path = input.join(shard);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(random.below(len / 4) as u64).unwrap();
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        match done.status.code() {
            Some(0) => assert!(files(&output) == expected, "run {run}: exit 0 with another output"),
            Some(2) => {
                refused += 1;
                assert!(stderr.contains(shard.as_str()), "run {run}: {stderr}");
                assert!(!output.exists(), "run {run}: failed but left an output");
            }
            code => panic!(
                "run {run}: {shard} cut: exit {code:?} ({})",
                match std::os::unix::process::ExitStatusExt::signal(&done.status) {
                    Some(signal) => format!("killed by signal {signal}"),
                    None => stderr.to_string(),
                }
            ),
        }
        std::fs::remove_dir_all(&input).unwrap();
        let _ = std::fs::remove_dir_all(&output);
    }
    println!("{runs} runs: {refused} refused naming the file");
    let _ = std::fs::remove_dir_all(&root);
}
