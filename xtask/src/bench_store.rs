//! The object-store step of `cargo xtask bench`: HF → Fast-LLM from one S3 prefix to another of
//! a local moto server, against a plain concurrent download and upload of the same files from
//! and to the same server in the same run (`fastllm_store`'s `fetch` then `publish`, the same
//! concurrency and part size); and HF → Fast-LLM and a training checkpoint → HF from S3 to local
//! disk (the tensors read in place) against a plain download of the same files and a `sync`;
//! the fastest of
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

/// The checkpoints the step reads.
pub struct Inputs<'a> {
    /// An HF checkpoint, with `hf_bytes` of tensors.
    pub hf: &'a Path,
    pub hf_bytes: u64,
    /// A training checkpoint (weights only), read from S3 to HF on local disk.
    pub distributed: &'a Path,
}

/// A conversion from S3 to local disk, timed against a plain download of its input.
struct Read {
    label: &'static str,
    url: &'static str,
    from: &'static str,
    to: &'static str,
    /// The fastest download + sync, the fastest conversion and the largest peak RSS.
    download: f64,
    read: f64,
    rss: u64,
}

/// Runs the step on `inputs`; returns the targets missed, or why the step could not run.
pub fn run(binary: &Path, inputs: &Inputs, scratch: &Path) -> Result<Vec<String>, String> {
    let (input, bytes) = (inputs.hf, inputs.hf_bytes);
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
    open("s3://bench/distributed")?
        .publish(inputs.distributed, PublishOptions::default())
        .map_err(|e| e.to_string())?;
    let mut reads = [
        Read::new("s3 hf -> local fast_llm", "s3://bench/hf", ("llama", "fast_llm")),
        Read::new(
            "s3 distributed -> local hf",
            "s3://bench/distributed",
            ("fast_llm_distributed", "llama"),
        ),
    ];

    let (mut plain, mut converted) = (f64::MAX, f64::MAX);
    for run in 0..crate::bench::RUNS {
        for read in &mut reads {
            read.once(binary, scratch, &open)?;
        }
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
    for read in &reads {
        let read_bytes = if read.url.ends_with("hf") {
            bytes
        } else {
            dir_bytes(inputs.distributed)
        };
        println!(
            "{:24} {:>9.0} {:>9.2} {:>9.2} {:>7.2} {:>10.0}   (plain: download + sync; peak RSS {} MB)",
            read.label,
            read_bytes as f64 / 1e6,
            read.read,
            read.download,
            read.read / read.download,
            read_bytes as f64 / 1e6 / read.read,
            read.rss / 1_000_000
        );
    }
    let mut missed = Vec::new();
    if ratio > TIME_TARGET {
        missed.push(format!(
            "s3 hf -> s3 fast_llm: {ratio:.2}x the plain download + upload ({:.0} % of its throughput, target 80 %)",
            100.0 / ratio
        ));
    }
    for read in &reads {
        let ratio = read.read / read.download;
        if ratio > TIME_TARGET {
            missed.push(format!(
                "{}: {ratio:.2}x the plain download ({:.0} % of its throughput, target 80 %)",
                read.label,
                100.0 / ratio
            ));
        }
    }
    Ok(missed)
}

impl Read {
    fn new(label: &'static str, url: &'static str, (from, to): (&'static str, &'static str)) -> Read {
        Read {
            label,
            url,
            from,
            to,
            download: f64::MAX,
            read: f64::MAX,
            rss: 0,
        }
    }

    /// One run: the plain download (made durable, as the conversion's output is), then the
    /// conversion to local disk, which reads the tensors in place.
    fn once(
        &mut self,
        binary: &Path,
        scratch: &Path,
        open: &dyn Fn(&str) -> Result<Remote, String>,
    ) -> Result<(), String> {
        let local = scratch.join("download");
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let source = open(self.url)?;
        let files = source.list().map_err(|e| e.to_string())?;
        source.fetch(&files, &local).map_err(|e| e.to_string())?;
        sync()?;
        self.download = self.download.min(start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&local);
        let output = scratch.join("read");
        let start = Instant::now();
        let out = Command::new(binary)
            .args(["convert", "--json", "--from", self.from, "--to", self.to, self.url])
            .arg(&output)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        self.read = self.read.min(start.elapsed().as_secs_f64());
        self.rss = self.rss.max(peak_rss(&out.stdout));
        let _ = std::fs::remove_dir_all(&output);
        Ok(())
    }
}

/// The bytes of the files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
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
