//! Crash safety of `convert`: killed with SIGKILL at random moments, the output path holds either
//! nothing (or, with --force, the previous output) or the complete new checkpoint, no staging
//! directory shows under the output's name, and the input is unchanged; under a file-size limit
//! (`ulimit -f`) it exits 2 with a clear message and leaves no partial output.
#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fastllm_convert::checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_convert::config::{ModelKind, Value, load_base_model};
use support::{names, scratch, snapshot};

/// A Llama-shaped BF16 checkpoint of about `megabytes` MB in `dir`.
fn synthetic(dir: &Path, megabytes: usize) {
    let (hidden, intermediate, vocab) = (256usize, 1024usize, 4096usize);
    let layer = 2 * (4 * hidden * hidden + 3 * hidden * intermediate);
    let layers = ((megabytes << 20).saturating_sub(2 * 2 * vocab * hidden) / layer).max(1);
    let config = format!(
        r#"{{"hidden_size": {hidden}, "embeddings": {{"vocab_size": {vocab}}},
            "head": {{"normalization": {{"type": "rms_norm"}}}},
            "decoder": {{"num_blocks": {layers}, "block": {{
              "mixer": {{"heads": 8, "head_groups": 8, "head_size": 32, "add_linear_biases": false,
                         "rotary": {{"type": "default", "theta": 10000}}}},
              "mlp": {{"intermediate_size": {intermediate}, "gated": true, "add_linear_biases": false}},
              "normalization": {{"type": "rms_norm"}}}}}}}}"#
    );
    let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(&config).unwrap()).unwrap();
    let llama = fastllm_convert::core::find("llama").unwrap();
    write_synthetic_hf(
        llama,
        &config,
        dir,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 16 << 20,
        },
    )
    .unwrap();
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
}

/// `convert --from llama --to fast_llm [--force] input output`.
fn conversion(input: &Path, output: &Path, force: bool) -> Command {
    let mut command = binary();
    command.args(["convert", "--from", "llama", "--to", "fast_llm"]);
    if force {
        command.arg("--force");
    }
    command.arg(input).arg(output);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// xorshift64*: reproducible kill times from a printed seed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// Whether a staging directory of `output` holds files now (a kill then lands mid-write).
fn writing(output: &Path) -> bool {
    let prefix = format!(".{}.partial-", output.file_name().unwrap().to_string_lossy());
    names(output.parent().unwrap())
        .iter()
        .filter(|n| n.starts_with(&prefix))
        .any(|n| std::fs::read_dir(output.parent().unwrap().join(n)).is_ok_and(|mut d| d.next().is_some()))
}

/// Kills `kills` conversions at random moments; each time the output must be one of `allowed`
/// (`None`: absent), nothing but the output may show in its directory, and the input must be
/// unchanged. `reset` prepares the output before each run.
fn kill_repeatedly(name: &str, kills: u32, force: bool, reset: impl Fn(&Path, &Path)) {
    let root = scratch("crash", name);
    let input = root.join("input");
    synthetic(&input, 32);
    let input_before = snapshot(&input);
    // The complete output, and how long a whole conversion takes (the faster of two runs: kill
    // times spread over it, so most kills land before the output is complete).
    let reference = root.join("reference");
    let mut full = Duration::MAX;
    for run in 0..2 {
        let _ = std::fs::remove_dir_all(&reference);
        let start = Instant::now();
        assert!(
            conversion(&input, &reference, false).status().unwrap().success(),
            "run {run}"
        );
        full = full.min(start.elapsed());
    }
    let complete = snapshot(&reference);
    let old = root.join("old");
    assert!(
        conversion(&input, &old, false)
            .arg("--config-only")
            .status()
            .unwrap()
            .success()
    );
    let previous = snapshot(&old);

    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let output = work.join("out");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("{name}: kill times from seed {seed}, a whole conversion takes {full:?}");
    let mut random = Random(seed);
    let mut mid_write = 0;
    for kill in 0..kills {
        reset(&old, &output);
        let mut child = conversion(&input, &output, force).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_micros(random.below(full.as_micros() as u64 * 11 / 10));
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let landed_mid_write = writing(&output);
        let _ = child.kill();
        child.wait().unwrap();
        mid_write += u32::from(landed_mid_write);
        let context = format!("{name}: kill {kill} (seed {seed})");
        match output.symlink_metadata() {
            Err(_) => assert!(!force, "{context}: the previous output is gone"),
            Ok(_) => {
                let found = snapshot(&output);
                assert!(
                    found == complete || (force && found == previous),
                    "{context}: the output is neither complete nor the previous one: {:?}",
                    found.keys().collect::<Vec<_>>()
                );
            }
        }
        let visible: Vec<String> = names(&work).into_iter().filter(|n| !n.starts_with('.')).collect();
        assert!(
            visible.iter().all(|n| n == "out"),
            "{context}: visible beside the output: {visible:?}"
        );
        assert!(snapshot(&input) == input_before, "{context}: the input changed");
    }
    eprintln!("{name}: {mid_write} of {kills} kills landed while the output was being written");
    assert!(
        mid_write >= kills / 10,
        "too few kills landed mid-write ({mid_write} of {kills}) to test anything"
    );
    // The next run sweeps what the killed ones left.
    reset(&old, &output);
    assert!(conversion(&input, &output, force).status().unwrap().success());
    assert_eq!(names(&work), ["out"], "a killed run's staging directory was not swept");
    assert!(snapshot(&output) == complete);
}

#[test]
fn killed_conversions_leave_no_output_or_a_complete_one() {
    kill_repeatedly("fresh", 50, false, |_, output| {
        let _ = std::fs::remove_dir_all(output);
    });
}

#[test]
fn killed_forced_conversions_leave_the_old_output_or_the_new_one() {
    kill_repeatedly("force", 30, true, |old, output| {
        let _ = std::fs::remove_dir_all(output);
        support::copy_dir(old, output);
    });
}

#[test]
fn a_file_size_limit_is_an_error_not_a_kill() {
    let root = scratch("crash", "ulimit");
    let input = support::fixture("llama", "hf_input");
    let output = root.join("out");
    // 64 blocks (32 KiB in sh's 512-byte blocks, 64 KiB in bash's): smaller than one shard.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(["convert", "--from", "llama", "--to", "fast_llm"])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "status {:?}; stderr: {stderr}", out.status);
    assert!(
        stderr.contains("model_0.safetensors") && stderr.contains("file size limit"),
        "{stderr}"
    );
    assert!(names(&root).is_empty(), "left behind: {:?}", names(&root));
}

/// SIGINT, SIGTERM and SIGHUP while the output is being written: the run removes its staging directory
/// and the parents it created, says so, and exits with 128 + the signal.
#[rstest::rstest]
#[case::sigint(libc::SIGINT, 130)]
#[case::sigterm(libc::SIGTERM, 143)]
#[case::sighup(libc::SIGHUP, 129)]
fn an_interrupt_removes_the_partial_output_and_its_new_parents(#[case] signal: i32, #[case] code: i32) {
    let root = scratch("crash", &format!("signal-{code}"));
    let input = root.join("input");
    synthetic(&input, 32);
    let input_before = snapshot(&input);
    let output = root.join("new/parents/out");
    let mut interrupted = 0;
    for attempt in 0..20 {
        let mut command = conversion(&input, &output, false);
        command.stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(output.parent().unwrap().is_dir() && writing(&output)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        if result.status.success() {
            // The conversion finished before the signal: try again.
            let _ = std::fs::remove_dir_all(root.join("new"));
            continue;
        }
        assert_eq!(result.status.code(), Some(code), "attempt {attempt}: {stderr}");
        assert!(
            stderr.contains("interrupted") && stderr.contains("removed the partial output"),
            "{stderr}"
        );
        assert_eq!(names(&root), ["input"], "attempt {attempt}: left behind");
        assert!(snapshot(&input) == input_before, "the input changed");
        interrupted += 1;
        break;
    }
    assert_eq!(interrupted, 1, "no signal landed while the output was being written");
}
