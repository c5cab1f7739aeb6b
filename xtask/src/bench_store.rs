//! The object-store step of `cargo xtask bench`: HF → Fast-LLM from one S3 prefix to another of
//! a local moto server, against a plain concurrent download and upload of the same files from
//! and to the same server in the same run (`fastllm_store`'s `fetch` then `publish`, the same
//! concurrency and part size); and HF → Fast-LLM from S3 to local disk (the tensors read in
//! place) against a plain download of the same files and a `sync`; the fastest of
//! [`crate::bench::RUNS`] runs each. Target: each conversion at least 80 % of its plain
//! transfer's throughput, i.e. at most 1.25× its time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fastllm_convert::store::{IoLimits, PublishOptions, Remote, Retries};

/// The conversion may take this many times the plain transfer's time (80 % of its throughput).
const TIME_TARGET: f64 = 1.25;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the step on the HF checkpoint at `input` (`bytes` of tensors); returns the targets
/// missed, or why the step could not run.
pub fn run(binary: &Path, input: &Path, scratch: &Path, bytes: u64) -> Result<Vec<String>, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("python3 -m moto.server: {e}"))?;
    let _moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("moto did not start (pip install 'moto[server]')".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    for (key, value) in env {
        // SAFETY: set before any thread of this process reads the environment (the bench runs
        // its children with `Command`, and the store's runtime starts below).
        unsafe { std::env::set_var(key, value) };
    }
    create_bucket(port, "bench")?;
    let limits = IoLimits::default();
    let open = |url: &str| Remote::open(url, limits, Retries::default()).map_err(|e| e.to_string());
    open("s3://bench/hf")?
        .publish(input, PublishOptions::default())
        .map_err(|e| e.to_string())?;

    let (mut plain, mut converted) = (f64::MAX, f64::MAX);
    let (mut download, mut read, mut read_rss) = (f64::MAX, f64::MAX, 0);
    for run in 0..crate::bench::RUNS {
        // The input side alone: a plain download (made durable, as the conversion's output is)
        // against the conversion to local disk, which reads the tensors in place.
        let local = scratch.join(format!("download-{run}"));
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let source = open("s3://bench/hf")?;
        let files = source.list().map_err(|e| e.to_string())?;
        source.fetch(&files, &local).map_err(|e| e.to_string())?;
        sync()?;
        download = download.min(start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&local);
        let output = scratch.join(format!("read-{run}"));
        let start = Instant::now();
        let out = Command::new(binary)
            .args([
                "convert",
                "--json",
                "--from",
                "llama",
                "--to",
                "fast_llm",
                "s3://bench/hf",
            ])
            .arg(&output)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        read = read.min(start.elapsed().as_secs_f64());
        read_rss = read_rss.max(peak_rss(&out.stdout));
        let _ = std::fs::remove_dir_all(&output);

        let local = scratch.join(format!("plain-{run}"));
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let source = open("s3://bench/hf")?;
        let files = source.list().map_err(|e| e.to_string())?;
        source.fetch(&files, &local).map_err(|e| e.to_string())?;
        open(&format!("s3://bench/plain-{run}"))?
            .publish(&local, PublishOptions::default())
            .map_err(|e| e.to_string())?;
        plain = plain.min(start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&local);

        let start = Instant::now();
        let out = Command::new(binary)
            .args(["convert", "--from", "llama", "--to", "fast_llm", "s3://bench/hf"])
            .arg(format!("s3://bench/converted-{run}"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        converted = converted.min(start.elapsed().as_secs_f64());
    }
    let ratio = converted / plain;
    let read_ratio = read / download;
    println!(
        "\nobject store (moto on loopback; {} requests in flight, {} MiB parts)",
        limits.concurrency,
        limits.part_bytes >> 20
    );
    println!(
        "{:24} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "step", "MB", "time s", "plain s", "ratio", "MB/s"
    );
    println!(
        "{:24} {:>9.0} {converted:>9.2} {plain:>9.2} {ratio:>7.2} {:>10.0}",
        "s3 hf -> s3 fast_llm",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / converted
    );
    println!(
        "{:24} {:>9.0} {read:>9.2} {download:>9.2} {read_ratio:>7.2} {:>10.0}   (plain: download + sync; peak RSS {} MB)",
        "s3 hf -> local fast_llm",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / read,
        read_rss / 1_000_000
    );
    let mut missed = Vec::new();
    if ratio > TIME_TARGET {
        missed.push(format!(
            "s3 hf -> s3 fast_llm: {ratio:.2}x the plain download + upload ({:.0} % of its throughput, target 80 %)",
            100.0 / ratio
        ));
    }
    if read_ratio > TIME_TARGET {
        missed.push(format!(
            "s3 hf -> local fast_llm: {read_ratio:.2}x the plain download ({:.0} % of its throughput, target 80 %)",
            100.0 / read_ratio
        ));
    }
    Ok(missed)
}

/// Flushes every written file to disk (the conversion's output is fsynced too).
fn sync() -> Result<(), String> {
    let status = Command::new("sync").status().map_err(|e| format!("sync: {e}"))?;
    status.success().then_some(()).ok_or_else(|| "sync failed".to_string())
}

/// The `peak_rss_bytes` of a `convert --json` summary (0 when it has none).
fn peak_rss(summary: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(summary);
    let value = fastllm_convert::config::Value::from_json_str(&text).ok();
    match value
        .as_ref()
        .and_then(|v| v.as_map())
        .and_then(|m| m.get("peak_rss_bytes"))
    {
        Some(fastllm_convert::config::Value::Int(i)) => *i as u64,
        _ => 0,
    }
}

/// Creates `bucket` (moto checks no signature by default).
fn create_bucket(port: u16, bucket: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!("creating bucket {bucket}: {response}"));
    }
    Ok(())
}
