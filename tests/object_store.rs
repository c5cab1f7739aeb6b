//! Conversions from and to object storage against a real S3-compatible server (moto in server
//! mode, PyPI `moto[server]`, installed by `.ci/run`) started and stopped by each test, with a
//! fault-injecting TCP proxy in front of it for throttling and a server failing mid-upload.
//!
//! Under CI (`CI` set) a missing moto fails the tests; elsewhere they say why and pass.
#![cfg(feature = "object-store")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use fastllm_convert::checkpoint::synthetic::write_synthetic_distributed;
use fastllm_convert::config::{ModelKind, Value, load_base_model};
use support::{names, synthetic_llama};

/// A moto server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto, or `None` (with the reason printed) when it is not installed outside CI.
    fn start(extra_env: &[(&str, &str)]) -> Option<Moto> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server, flask, werkzeug"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto[server] is not installed: .ci/run installs it"
            );
            eprintln!("skipped: python3 -m moto.server is not available (pip install 'moto[server]')");
            return None;
        }
        let port = free_port();
        let mut command = Command::new("python3");
        command
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("python3 runs");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn bucket(&self, name: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    /// The keys under `prefix` of `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), b"");
        assert_eq!(status, 200, "{body}");
        tag_values(&body, "Key")
    }

    /// The multipart uploads started and neither completed nor aborted in `bucket`.
    fn pending_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}?uploads"), b"");
        assert_eq!(status, 200, "{body}");
        tag_values(&body, "UploadId")
    }

    fn object(&self, bucket: &str, key: &str) -> (u16, String) {
        http(self.port, "GET", &format!("/{bucket}/{key}"), b"")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One unsigned HTTP/1.1 request (moto checks no signature unless asked to): status and body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// The objects under `prefix/` of `bucket`, downloaded into `dir` (flat, by their last name).
fn download(moto: &Moto, bucket: &str, prefix: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for key in moto.keys(bucket, &format!("{prefix}/")) {
        let mut stream = TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
        let head = format!(
            "GET /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            moto.port
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let name = key.rsplit('/').next().unwrap();
        std::fs::write(dir.join(name), &response[split..]).unwrap();
    }
}

fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value.to_string()))
        .collect()
}

/// What the proxy does to each request.
#[derive(Default)]
struct Faults {
    /// Answer this many requests `503 SlowDown` before forwarding any.
    throttle_first: usize,
    /// After this many multipart parts went through, drop the connection of every later part
    /// upload (a server dying mid-upload); aborts and other requests still pass.
    parts_before_failure: Option<usize>,
    /// Hold every multipart part upload this long before forwarding it.
    stall_parts: Option<Duration>,
    /// After this many ranged GETs of a `.safetensors` object went through, drop the connection
    /// of every later one (a server dying mid-read).
    range_gets_before_failure: Option<usize>,
    /// Hold the k-th GET `k mod 3` times this long before forwarding it: reads last long enough
    /// for a test to look at the disk mid-read, and concurrent ones complete out of order.
    delay_gets: Option<Duration>,
}

/// A GET the proxy forwarded: the object's path and the byte range it asked for, if any.
#[derive(Debug, Clone)]
struct Get {
    path: String,
    range: Option<(u64, u64)>,
}

/// A TCP proxy in front of moto that injects [`Faults`]; counts what it injected and the part
/// uploads it saw.
struct Proxy {
    port: u16,
    throttled: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    parts: Arc<AtomicUsize>,
    gets: Arc<Mutex<Vec<Get>>>,
}

/// What a proxy counts, shared by its connections.
#[derive(Clone, Default)]
struct Seen {
    throttled: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    parts: Arc<AtomicUsize>,
    gets: Arc<Mutex<Vec<Get>>>,
}

impl Proxy {
    /// The ranged GETs of `.safetensors` objects, and whether any GET of one had no range.
    fn tensor_gets(&self) -> (Vec<Get>, bool) {
        let gets = self.gets.lock().unwrap();
        let tensors = gets.iter().filter(|g| g.path.contains(".safetensors"));
        let whole = tensors.clone().any(|g| g.range.is_none());
        (tensors.filter(|g| g.range.is_some()).cloned().collect(), whole)
    }
}

impl Proxy {
    fn start(upstream: u16, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Seen::default();
        let faults = Arc::new(Mutex::new(faults));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (faults, seen) = (Arc::clone(&faults), shared.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &faults, &seen);
                });
            }
        });
        Proxy {
            port,
            throttled: seen.throttled,
            dropped: seen.dropped,
            parts: seen.parts,
            gets: seen.gets,
        }
    }
}

/// The byte range of a request's `Range: bytes=a-b` header, as `a..b+1`.
fn range_of(head: &str) -> Option<(u64, u64)> {
    let line = head.lines().find_map(|line| {
        line.to_ascii_lowercase()
            .strip_prefix("range: bytes=")
            .map(String::from)
    })?;
    let (start, end) = line.trim().split_once('-')?;
    Some((start.parse().ok()?, end.parse::<u64>().ok()? + 1))
}

/// Serves one connection: request by request, each forwarded on a fresh upstream connection.
fn serve(mut client: TcpStream, upstream: u16, faults: &Mutex<Faults>, seen: &Seen) -> std::io::Result<()> {
    let Seen {
        throttled,
        dropped,
        parts,
        gets,
    } = seen;
    loop {
        let Some((head, body)) = read_request(&mut client)? else {
            return Ok(());
        };
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let is_part = request_line.starts_with("PUT ") && request_line.contains("partNumber=");
        let stall = faults.lock().unwrap().stall_parts;
        if let (true, Some(stall)) = (is_part, stall) {
            parts.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(stall);
        }
        if let Some(path) = request_line.strip_prefix("GET ") {
            let path = path.split_whitespace().next().unwrap_or_default().to_string();
            let range = range_of(&head);
            let tensor_read = range.is_some() && path.contains(".safetensors");
            let (delay, limit) = {
                let faults = faults.lock().unwrap();
                (faults.delay_gets, faults.range_gets_before_failure)
            };
            let earlier = {
                let mut gets = gets.lock().unwrap();
                if let Some(delay) = delay {
                    let k = gets.len() as u32;
                    drop(gets);
                    std::thread::sleep(delay * (k % 3));
                    gets = seen.gets.lock().unwrap();
                }
                let earlier = gets
                    .iter()
                    .filter(|g| g.range.is_some() && g.path.contains(".safetensors"))
                    .count();
                gets.push(Get { path, range });
                earlier
            };
            if tensor_read && limit.is_some_and(|limit| earlier >= limit) {
                dropped.fetch_add(1, Ordering::SeqCst);
                return client.shutdown(Shutdown::Both);
            }
        }
        {
            let mut faults = faults.lock().unwrap();
            if faults.throttle_first > 0 {
                faults.throttle_first -= 1;
                throttled.fetch_add(1, Ordering::SeqCst);
                let error = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                write!(
                    client,
                    "HTTP/1.1 503 Slow Down\r\nContent-Length: {}\r\nContent-Type: application/xml\r\n\r\n{error}",
                    error.len()
                )?;
                continue;
            }
            if is_part
                && let Some(limit) = faults.parts_before_failure
                && parts.fetch_add(1, Ordering::SeqCst) >= limit
            {
                dropped.fetch_add(1, Ordering::SeqCst);
                return client.shutdown(Shutdown::Both);
            }
        }
        let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
        server.write_all(head.as_bytes())?;
        server.write_all(&body)?;
        let response = read_response(&mut server)?;
        client.write_all(&response)?;
    }
}

/// One request: its head (with `Connection: close` for the upstream) and body; `None` at EOF.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let Some((head, mut rest)) = read_head(stream)? else {
        return Ok(None);
    };
    let length = content_length(&head);
    while rest.len() < length {
        let mut buffer = vec![0; length - rest.len()];
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(None);
        }
        rest.extend_from_slice(&buffer[..n]);
    }
    let head: String = head
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    Ok(Some((head, rest)))
}

/// A whole response of a `Connection: close` upstream, framed for the client's kept-alive
/// connection.
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let Some((head, mut body)) = read_head(stream)? else {
        return Err(std::io::Error::other("no response"));
    };
    stream.read_to_end(&mut body)?;
    let lines: Vec<&str> = head
        .lines()
        .filter(|line| !line.is_empty() && !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let framed = lines.iter().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:")
    });
    let mut head: String = lines.iter().map(|line| format!("{line}\r\n")).collect();
    if !framed {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut response = head.into_bytes();
    response.extend_from_slice(&body);
    Ok(response)
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut data = Vec::new();
    let mut buffer = [0; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end + 4]).into_owned();
            return Ok(Some((head, data[end + 4..].to_vec())));
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buffer[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

fn scratch(name: &str) -> PathBuf {
    support::scratch("object_store", name)
}

/// A synthetic Llama of about 50 MB in F32, in shards of 20 MB (so several multipart uploads
/// of 5 MiB parts each).
fn llama(dir: &Path) -> PathBuf {
    synthetic_llama(dir, 512, 2, 20_000_000)
}

/// [`llama`] converted to HF's own shard naming (`model-0000N-of-0000M`), 20 MB shards.
fn sharded_llama(port: u16, dir: &Path) -> PathBuf {
    let hf = dir.join("hf_sharded");
    let args = ["--max-shard-size", "20MB", "--from", "llama", "--to", "llama"];
    let mut args: Vec<&str> = args.to_vec();
    let source = llama(dir);
    args.extend([s(&source), s(&hf)]);
    ok(&convert(port, &args));
    hf
}

/// Runs `convert` with the S3 variables pointing at `port`.
fn convert(port: u16, args: &[&str]) -> Output {
    convert_as(port, ("testing", "testing"), args)
}

fn convert_as(port: u16, credentials: (&str, &str), args: &[&str]) -> Output {
    let mut command = command(port, credentials);
    command
        .args(["--io-part-size", "5MiB", "--io-concurrency", "4"])
        .args(args);
    command.output().unwrap()
}

/// `convert` with the S3 variables pointing at `port`, its arguments still to add.
fn command(port: u16, credentials: (&str, &str)) -> Command {
    let mut command = cli(port, credentials);
    command.arg("convert");
    command
}

/// The CLI with the S3 variables pointing at `port`, its subcommand still to add.
fn cli(port: u16, (key, secret): (&str, &str)) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"));
    command
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    for variable in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_BUCKET"] {
        command.env_remove(variable);
    }
    command
}

/// What a watched run did besides its output.
struct Watched {
    output: Output,
    /// The most bytes the files under its `TMPDIR` held at once (apparent sizes, sampled every
    /// 5 ms), and every file name seen there.
    peak_staged: u64,
    staged_names: std::collections::BTreeSet<String>,
    /// Its peak resident memory (`VmHWM`, sampled with the staging directory: its value when
    /// last seen, at most 5 ms before the process ended).
    max_rss_bytes: u64,
}

/// Runs `convert args` (no IO options added) against `port` with `TMPDIR` = `tmp`, watching what
/// it stages there and its peak memory.
fn convert_watching(port: u16, tmp: &Path, args: &[&str]) -> Watched {
    std::fs::create_dir_all(tmp).unwrap();
    let mut child = command(port, ("testing", "testing"))
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let (mut peak_staged, mut staged_names) = (0, std::collections::BTreeSet::new());
    let pid = child.id();
    let mut max_rss_bytes = 0;
    let status = loop {
        max_rss_bytes = support::peak_rss(pid).unwrap_or(0).max(max_rss_bytes);
        let mut files = Vec::new();
        walk_files(tmp, &mut files);
        peak_staged = peak_staged.max(files.iter().map(|(_, size)| size).sum());
        staged_names.extend(files.into_iter().map(|(name, _)| name));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Watched {
        output: Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        },
        peak_staged,
        staged_names,
        max_rss_bytes,
    }
}

/// Every file under `dir` (recursively) with its size; entries vanishing meanwhile are skipped.
fn walk_files(dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk_files(&entry.path(), out);
        } else {
            out.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
}

/// Uploads every file of `dir` as `bucket/prefix/<name>`, one object per file, as a trainer
/// writes a checkpoint.
fn upload(moto: &Moto, dir: &Path, bucket: &str, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let (status, body) = http(
            moto.port,
            "PUT",
            &format!("/{bucket}/{prefix}/{name}"),
            &std::fs::read(entry.path()).unwrap(),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// The bytes of the files of `dir` whose names satisfy `keep`, and how many there are.
fn bytes_of(dir: &Path, keep: impl Fn(&str) -> bool) -> (u64, u64) {
    let mut files = Vec::new();
    walk_files(dir, &mut files);
    let kept: Vec<u64> = files
        .into_iter()
        .filter(|(n, _)| keep(n))
        .map(|(_, size)| size)
        .collect();
    (kept.iter().sum(), kept.len() as u64)
}

/// Stdout and stderr of a successful run.
fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "stderr: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned() + &stderr
}

fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    stderr
}

/// Every file of `a` is in `b` with the same bytes, and `b` has no other.
fn assert_same_files(a: &Path, b: &Path) {
    assert_eq!(names(a), names(b), "{} vs {}", a.display(), b.display());
    for name in names(a) {
        assert!(
            std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn local_to_s3_to_s3_to_local_round_trips_bit_identical() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    moto.bucket("models");
    let dir = scratch("round_trip");
    let hf = llama(&dir);
    // The same conversions on local disk are the reference.
    let local_fast_llm = dir.join("fast_llm");
    let local_hf = dir.join("hf_again");
    let port = moto.port;
    ok(&convert(
        port,
        &["--from", "llama", "--to", "fast_llm", s(&hf), s(&local_fast_llm)],
    ));
    ok(&convert(
        port,
        &[
            "--max-shard-size",
            "20MB",
            "--from",
            "fast_llm",
            "--to",
            "llama",
            s(&local_fast_llm),
            s(&local_hf),
        ],
    ));

    ok(&convert(
        port,
        &[
            "--from",
            "llama",
            "--to",
            "fast_llm",
            s(&hf),
            "s3://runs/exp1/checkpoint/1000",
        ],
    ));
    let keys = moto.keys("runs", "exp1/checkpoint/1000/");
    assert!(keys.iter().any(|k| k.ends_with("/metadata.yaml")), "{keys:?}");
    assert!(moto.pending_uploads("runs").is_empty());
    // S3 → S3, the format detected from the remote input.
    let printed = ok(&convert(
        port,
        &[
            "--max-shard-size",
            "20MB",
            "--from",
            "auto",
            "--to",
            "llama",
            "s3://runs/exp1/checkpoint/1000",
            "s3://models/exp1",
        ],
    ));
    assert!(printed.contains("s3://models/exp1"), "{printed}");
    let keys = moto.keys("models", "exp1/");
    assert!(keys.contains(&"exp1/config.json".to_string()), "{keys:?}");
    assert!(
        keys.iter().filter(|k| k.ends_with(".safetensors")).count() > 1,
        "sharded: {keys:?}"
    );
    // S3 → local: bit-identical to the local-only conversions.
    let back = dir.join("back");
    ok(&convert(
        port,
        &[
            "--max-shard-size",
            "20MB",
            "--from",
            "auto",
            "--to",
            "llama",
            "s3://models/exp1",
            s(&back),
        ],
    ));
    assert_same_files(&local_hf, &back);
    let fast_llm_back = dir.join("fast_llm_back");
    ok(&convert(
        port,
        &[
            "--from",
            "auto",
            "--to",
            "fast_llm",
            "s3://runs/exp1/checkpoint/1000",
            s(&fast_llm_back),
        ],
    ));
    // metadata.yaml is regenerated from the same config: the same bytes too.
    assert_same_files(&local_fast_llm, &fast_llm_back);
    assert!(moto.pending_uploads("models").is_empty());
}

#[test]
fn an_existing_output_is_refused_and_replaced_only_with_force() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("force");
    let hf = llama(&dir);
    let port = moto.port;
    ok(&convert(
        port,
        &["--from", "llama", "--to", "llama", s(&hf), "s3://models/m"],
    ));
    // A stale file of the old output that the new one does not have.
    http(port, "PUT", "/models/m/stale.bin", b"old");
    let stderr = failed(&convert(
        port,
        &["--from", "llama", "--to", "fast_llm", s(&hf), "s3://models/m"],
    ));
    assert!(stderr.contains("s3://models/m: the output already exists"), "{stderr}");
    ok(&convert(
        port,
        &[
            "--force",
            "--from",
            "llama",
            "--to",
            "fast_llm",
            s(&hf),
            "s3://models/m",
        ],
    ));
    let mut keys = moto.keys("models", "");
    keys.sort();
    assert!(keys.contains(&"m/metadata.yaml".to_string()), "{keys:?}");
    assert!(
        !keys.contains(&"m/config.json".to_string()),
        "the old marker is gone: {keys:?}"
    );
    assert!(!keys.contains(&"m/stale.bin".to_string()), "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("m/")),
        "no staging prefix left: {keys:?}"
    );
}

#[test]
fn a_server_failing_mid_upload_leaves_no_complete_output_and_no_pending_upload() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("mid_upload");
    let hf = llama(&dir);
    let proxy = Proxy::start(
        moto.port,
        Faults {
            parts_before_failure: Some(3),
            ..Faults::default()
        },
    );
    let stderr = failed(&convert(
        proxy.port,
        &[
            "--io-retries",
            "1",
            "--from",
            "llama",
            "--to",
            "llama",
            s(&hf),
            "s3://models/m",
        ],
    ));
    assert!(stderr.contains("s3://models/m/"), "names the object: {stderr}");
    assert!(
        !stderr.contains(".partial-") && !stderr.contains("fastllm-convert-remote"),
        "names no local staging path: {stderr}"
    );
    assert!(proxy.dropped.load(Ordering::SeqCst) > 0);
    assert_eq!(moto.object("models", "m/config.json").0, 404);
    assert_eq!(moto.keys("models", ""), Vec::<String>::new(), "nothing left");
    assert_eq!(moto.pending_uploads("models"), Vec::<String>::new(), "aborted");
}

#[test]
fn throttling_is_retried_with_backoff() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("throttled");
    let hf = llama(&dir);
    let proxy = Proxy::start(
        moto.port,
        Faults {
            throttle_first: 3,
            ..Faults::default()
        },
    );
    ok(&convert(
        proxy.port,
        &["--from", "llama", "--to", "llama", s(&hf), "s3://models/m"],
    ));
    assert_eq!(proxy.throttled.load(Ordering::SeqCst), 3);
    let back = dir.join("back");
    ok(&convert(
        moto.port,
        &["--from", "llama", "--to", "llama", "s3://models/m", s(&back)],
    ));
    let reference = dir.join("reference");
    ok(&convert(
        moto.port,
        &["--from", "llama", "--to", "llama", s(&hf), s(&reference)],
    ));
    assert_same_files(&reference, &back);
}

#[test]
fn refused_credentials_name_the_bucket_and_the_variables() {
    // Moto checks signatures against its IAM users from the first request on: the test key is
    // not one.
    let Some(moto) = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let dir = scratch("credentials");
    let stderr = failed(&convert_as(
        moto.port,
        ("AKIAWRONGWRONGWRONG0", "wrong"),
        &[
            "--io-retries",
            "0",
            "--from",
            "auto",
            "--to",
            "llama",
            "s3://secret-runs/exp",
            s(&dir.join("out")),
        ],
    ));
    assert!(stderr.contains("bucket `secret-runs`"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
    assert!(!dir.join("out").exists());
}

#[test]
fn a_remote_output_may_not_overlap_its_remote_input() {
    let Some(moto) = Moto::start(&[]) else { return };
    let stderr = failed(&convert(
        moto.port,
        &["--from", "auto", "--to", "llama", "s3://runs/exp", "s3://runs/exp/hf"],
    ));
    assert!(stderr.contains("overlaps the input s3://runs/exp"), "{stderr}");
}

/// A bucket itself is never an output: with --force, replacing it would delete everything in it.
#[test]
fn a_bucket_itself_is_not_an_output() {
    let Some(moto) = Moto::start(&[]) else { return };
    let dir = scratch("bucket-root");
    for output in ["s3://models", "s3://models/"] {
        let stderr = failed(&convert(
            moto.port,
            &["--force", "--from", "auto", "--to", "llama", s(&llama(&dir)), output],
        ));
        assert!(stderr.contains("not the bucket itself"), "{output}: {stderr}");
    }
}

/// A static HTTP server of the files of `dir` on a loopback port: HEAD, GET and single-range
/// GET (206), as a web server or a CDN in front of a bucket answers.
fn serve_files(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let dir = dir.clone();
            std::thread::spawn(move || {
                while let Ok(Some((head, _))) = read_request(&mut stream) {
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let name = path.rsplit('/').next().unwrap_or("");
                    let Ok(data) = std::fs::read(dir.join(name)) else {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                        continue;
                    };
                    let range = head
                        .lines()
                        .find_map(|line| {
                            line.to_ascii_lowercase()
                                .strip_prefix("range: bytes=")
                                .map(String::from)
                        })
                        .and_then(|r| {
                            let (start, end) = r.trim().split_once('-')?;
                            let start: usize = start.parse().ok()?;
                            let end: usize = end
                                .parse::<usize>()
                                .ok()
                                .map_or(data.len(), |e| (e + 1).min(data.len()));
                            Some(start..end)
                        });
                    let (status, body) = match &range {
                        Some(r) => ("206 Partial Content", &data[r.clone()]),
                        None => ("200 OK", &data[..]),
                    };
                    let mut response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
                    if let Some(r) = &range {
                        response.push_str(&format!(
                            "Content-Range: bytes {}-{}/{}\r\n",
                            r.start,
                            r.end - 1,
                            data.len()
                        ));
                    }
                    response.push_str("\r\n");
                    let mut bytes = response.into_bytes();
                    if method != "HEAD" {
                        bytes.extend_from_slice(body);
                    }
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn an_http_input_is_read_by_probing_and_ranged_gets() {
    let dir = scratch("http");
    let hf = llama(&dir);
    let sharded = dir.join("sharded");
    let port = free_port();
    ok(&convert(
        port,
        &[
            "--max-shard-size",
            "20MB",
            "--from",
            "llama",
            "--to",
            "llama",
            s(&hf),
            s(&sharded),
        ],
    ));
    let url = format!("http://127.0.0.1:{}/models/m", serve_files(sharded.clone()));
    let back = dir.join("back");
    ok(&convert(
        port,
        &[
            "--max-shard-size",
            "20MB",
            "--from",
            "auto",
            "--to",
            "llama",
            &url,
            s(&back),
        ],
    ));
    assert_same_files(&sharded, &back);
    let stderr = failed(&convert(port, &["--from", "llama", "--to", "llama", s(&hf), &url]));
    assert!(stderr.contains("read-only"), "{stderr}");
}

#[test]
fn an_interrupted_remote_conversion_leaves_no_local_staging_and_no_marker() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("interrupted");
    let hf = llama(&dir);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let proxy = Proxy::start(
        moto.port,
        Faults {
            stall_parts: Some(Duration::from_secs(30)),
            ..Faults::default()
        },
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args([
            "convert",
            "--io-part-size",
            "5MiB",
            "--from",
            "llama",
            "--to",
            "llama",
            s(&hf),
            "s3://models/m",
        ])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", proxy.port))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("TMPDIR", &tmp)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.parts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no part upload started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mid-upload, with the converted checkpoint staged under TMPDIR.
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_some(), "staged under TMPDIR");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "local staging removed: {left:?}");
    assert_eq!(moto.object("models", "m/config.json").0, 404);
}

/// A synthetic training checkpoint in `dir/checkpoint`: 4 ranks (tensor-parallel 2, pipeline 2,
/// ZeRO-3), weights and one optimizer state.
fn distributed_checkpoint(dir: &Path) -> PathBuf {
    let config = r#"{"hidden_size": 256, "embeddings": {"vocab_size": 4096},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 4, "block": {
            "mixer": {"heads": 4, "head_groups": 2, "head_size": 64, "add_linear_biases": false,
                      "rotary": {"type": "default"}},
            "mlp": {"intermediate_size": 512, "gated": true, "add_linear_biases": false},
            "normalization": {"type": "rms_norm"}}}}"#;
    let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap();
    let parallel = Value::from_json_str(
        r#"{"distributed": {"world_size": 4, "tensor_parallel": 2, "pipeline_parallel": 2},
            "multi_stage": {"zero_stage": 3}}"#,
    )
    .unwrap();
    let checkpoint = dir.join("checkpoint");
    write_synthetic_distributed(
        &config,
        parallel.as_map().unwrap(),
        &checkpoint,
        &["weights", "exp_avgs"],
    )
    .unwrap();
    checkpoint
}

#[test]
fn a_distributed_training_checkpoint_is_read_rank_file_by_rank_file() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("distributed");
    let checkpoint = distributed_checkpoint(&dir);
    // Uploaded as a trainer writes it: one object per file.
    upload(&moto, &checkpoint, "runs", "exp/1000");
    assert_eq!(moto.keys("runs", "exp/1000/rank_").len(), 4);
    let reference = dir.join("reference");
    ok(&convert(
        moto.port,
        &["--from", "auto", "--to", "llama", s(&checkpoint), s(&reference)],
    ));
    let from_s3 = dir.join("from_s3");
    let printed = ok(&convert(
        moto.port,
        &["--from", "auto", "--to", "llama", "s3://runs/exp/1000", s(&from_s3)],
    ));
    assert!(
        printed.contains("exp_avgs"),
        "the optimizer state is named as not converted: {printed}"
    );
    assert_same_files(&reference, &from_s3);
}

#[test]
fn a_local_conversion_stages_nothing_in_tmpdir() {
    let dir = scratch("local_only");
    // Not a directory: any staging there would fail the conversion.
    let tmpdir = dir.join("tmpdir-is-a-file");
    std::fs::write(&tmpdir, b"").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .args(["convert", "--from", "auto", "--to", "fast_llm", "samples/llama-tiny"])
        .arg(dir.join("out"))
        .env("TMPDIR", &tmpdir)
        .output()
        .unwrap();
    ok(&output);
}

/// The IO options of the tests below: ranged GETs of 5 MiB, 2 in flight (a 10 MiB window).
const WINDOW: [&str; 4] = ["--io-part-size", "5MiB", "--io-concurrency", "2"];
const PART: u64 = 5 << 20;

/// Header reads take the first 256 KiB of each safetensors file, data included.
const HEADER_GUESS: u64 = 256 << 10;

fn args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    WINDOW.iter().copied().chain(rest.iter().copied()).collect()
}

#[test]
fn remote_inputs_are_read_in_place_by_bounded_ranged_gets() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("read_in_place");
    let hf = sharded_llama(moto.port, &dir);
    let fast_llm = dir.join("fast_llm");
    ok(&convert(
        moto.port,
        &["--from", "llama", "--to", "fast_llm", s(&hf), s(&fast_llm)],
    ));
    let distributed = distributed_checkpoint(&dir);
    // Each GET held a moment, so that the sampling of the staging directory sees the reads.
    let proxy = Proxy::start(
        moto.port,
        Faults {
            delay_gets: Some(Duration::from_millis(10)),
            ..Faults::default()
        },
    );
    for (name, input, to) in [
        ("hf", &hf, "fast_llm"),
        ("fast_llm", &fast_llm, "llama"),
        ("distributed", &distributed, "llama"),
    ] {
        upload(&moto, input, "runs", name);
        let reference = dir.join(format!("{name}-reference"));
        ok(&convert(
            moto.port,
            &["--from", "auto", "--to", to, s(input), s(&reference)],
        ));
        proxy.gets.lock().unwrap().clear();
        let out = dir.join(format!("{name}-from-s3"));
        let url = format!("s3://runs/{name}");
        let run = convert_watching(
            proxy.port,
            &dir.join(format!("{name}-tmp")),
            &args(&["--from", "auto", "--to", to, &url, s(&out)]),
        );
        ok(&run.output);
        assert_same_files(&reference, &out);
        // No local copy of the tensor files: only documents were ever staged.
        let (tensor_bytes, tensor_files) = bytes_of(input, |n| n.ends_with(".safetensors"));
        let (document_bytes, _) = bytes_of(input, |n| !n.ends_with(".safetensors"));
        assert!(
            run.staged_names.iter().all(|n| !n.ends_with(".safetensors")),
            "{name}: staged {:?}",
            run.staged_names
        );
        assert!(
            run.peak_staged <= document_bytes,
            "{name}: {} bytes staged, the documents have {document_bytes}",
            run.peak_staged
        );
        // Every tensor byte came by a ranged GET of at most one part, each byte about once.
        let (gets, whole) = proxy.tensor_gets();
        assert!(!whole, "{name}: a safetensors object was read whole");
        let sizes: Vec<u64> = gets.iter().filter_map(|g| g.range).map(|(a, b)| b - a).collect();
        assert!(sizes.iter().all(|&n| n <= PART), "{name}: {sizes:?}");
        let fetched: u64 = sizes.iter().sum();
        assert!(
            fetched <= tensor_bytes + tensor_files * HEADER_GUESS,
            "{name}: {fetched} bytes fetched for {tensor_bytes} bytes of tensor files"
        );
        eprintln!(
            "{name}: {} ranged GETs, {fetched} bytes for {tensor_bytes} bytes in {tensor_files} files; peak staged \
             {} bytes; peak RSS {} MiB",
            sizes.len(),
            run.peak_staged,
            run.max_rss_bytes >> 20
        );
    }
}

#[test]
fn a_tensor_larger_than_the_io_window_streams_through_it() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("window");
    // One file; the embeddings and the output layer are 64 MiB each, the IO window 10 MiB.
    let hf = synthetic_llama(&dir, 2048, 1, 1 << 40);
    upload(&moto, &hf, "runs", "big");
    let reference = dir.join("reference");
    let local = convert_watching(
        moto.port,
        &dir.join("tmp-local"),
        &args(&["--from", "llama", "--to", "fast_llm", s(&hf), s(&reference)]),
    );
    ok(&local.output);
    // The process's own memory: the same conversion of a model of 1.5 MB.
    let small = synthetic_llama(&dir.join("small"), 128, 1, 1 << 40);
    upload(&moto, &small, "runs", "small");
    let baseline = convert_watching(
        moto.port,
        &dir.join("tmp-small"),
        &args(&[
            "--from",
            "llama",
            "--to",
            "fast_llm",
            "s3://runs/small",
            s(&dir.join("small-out")),
        ]),
    );
    ok(&baseline.output);
    let proxy = Proxy::start(moto.port, Faults::default());
    let out = dir.join("from-s3");
    let remote = convert_watching(
        proxy.port,
        &dir.join("tmp-remote"),
        &args(&["--from", "llama", "--to", "fast_llm", "s3://runs/big", s(&out)]),
    );
    ok(&remote.output);
    assert_same_files(&reference, &out);
    let (gets, _) = proxy.tensor_gets();
    let largest = gets.iter().filter_map(|g| g.range).map(|(a, b)| b - a).max().unwrap();
    assert!(largest <= PART, "a ranged GET of {largest} bytes");
    assert!(gets.len() as u64 >= 2 * (64 << 20) / PART, "{} GETs", gets.len());
    let held = remote.max_rss_bytes.saturating_sub(baseline.max_rss_bytes);
    eprintln!(
        "peak RSS: {} MiB from S3 ({} MiB more than a 1.5 MB model's), {} MiB from local disk; {} ranged GETs",
        remote.max_rss_bytes >> 20,
        held >> 20,
        local.max_rss_bytes >> 20,
        gets.len()
    );
    // Neither 64 MiB tensor is ever held whole: what the conversion holds is the IO window (at
    // most 3 parts: 2 in flight, 1 being written) and the one transposed parameter (8 MiB, its
    // input and its output).
    assert!(held < 40 << 20, "the conversion held {} MiB", held >> 20);
}

#[test]
fn a_server_failing_mid_read_stops_the_conversion_naming_the_tensor() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("mid_read");
    let hf = sharded_llama(moto.port, &dir);
    upload(&moto, &hf, "runs", "m");
    let (_, shards) = bytes_of(&hf, |n| n.ends_with(".safetensors"));
    // The headers, then a few tensor reads; every later one finds the connection dropped.
    let proxy = Proxy::start(
        moto.port,
        Faults {
            range_gets_before_failure: Some(shards as usize + 3),
            ..Faults::default()
        },
    );
    let out = dir.join("out");
    let tmp = dir.join("tmp");
    let run = convert_watching(
        proxy.port,
        &tmp,
        &args(&[
            "--io-retries",
            "1",
            "--from",
            "llama",
            "--to",
            "fast_llm",
            "s3://runs/m",
            s(&out),
        ]),
    );
    let stderr = failed(&run.output);
    eprintln!("{stderr}");
    assert!(proxy.dropped.load(Ordering::SeqCst) > 0);
    assert!(
        stderr.starts_with("error: s3://runs/m/model-0000"),
        "names the object first: {stderr}"
    );
    assert!(stderr.contains(": tensor `"), "names the tensor: {stderr}");
    assert!(stderr.contains("reading bytes "), "names the range: {stderr}");
    assert!(!out.exists(), "no output");
    let mut left = Vec::new();
    walk_files(&tmp, &mut left);
    assert!(left.is_empty(), "local staging removed: {left:?}");
}

#[test]
fn a_remote_pickle_is_refused_by_name_and_never_fetched() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("pickle");
    let hf = llama(&dir);
    std::fs::remove_file(hf.join("model.safetensors")).ok();
    for entry in std::fs::read_dir(&hf).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") || path.ends_with("model.safetensors.index.json") {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::write(hf.join("pytorch_model.bin"), vec![0x80; 1 << 20]).unwrap();
    upload(&moto, &hf, "runs", "pickled");
    let proxy = Proxy::start(moto.port, Faults::default());
    let stderr = failed(&convert(
        proxy.port,
        &[
            "--from",
            "llama",
            "--to",
            "fast_llm",
            "s3://runs/pickled",
            s(&dir.join("out")),
        ],
    ));
    assert!(
        stderr.contains("s3://runs/pickled/pytorch_model.bin: a pickle checkpoint is never unpickled"),
        "{stderr}"
    );
    let gets = proxy.gets.lock().unwrap();
    assert!(gets.iter().all(|g| !g.path.contains(".bin")), "{gets:?}");
}

/// Issue #20's command: a training checkpoint in one bucket published as a bf16 model in another,
/// with no local copy of either side's tensor files (only documents are ever staged), the output
/// equal to the same conversion on local disk, no upload left pending.
#[test]
fn s3_to_s3_stages_no_tensor_file_on_either_side() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    moto.bucket("models");
    let dir = scratch("s3_to_s3_streamed");
    let checkpoint = distributed_checkpoint(&dir);
    upload(&moto, &checkpoint, "runs", "exp1/checkpoint/1000");
    // The synthetic values are random bits, some past BF16's range.
    let bf16 = ["--from", "auto", "--to", "llama", "--dtype", "bf16", "--allow-overflow"];
    let reference = dir.join("reference");
    let mut local: Vec<&str> = bf16.to_vec();
    local.extend([s(&checkpoint), s(&reference)]);
    ok(&convert(moto.port, &local));
    let mut remote: Vec<&str> = bf16.to_vec();
    remote.extend(["s3://runs/exp1/checkpoint/1000", "s3://models/exp1"]);
    let run = convert_watching(moto.port, &dir.join("tmp"), &args(&remote));
    ok(&run.output);
    assert!(
        run.staged_names.iter().all(|n| !n.ends_with(".safetensors")),
        "staged {:?}",
        run.staged_names
    );
    // More than one part: the model was uploaded by a multipart upload as it was written.
    let (tensor_bytes, _) = bytes_of(&reference, |n| n.ends_with(".safetensors"));
    assert!(tensor_bytes > PART, "{tensor_bytes}");
    // The tensors byte for byte (moto answers an unsigned GET of the single-PUT documents with
    // 403: the model is read back through the converter for those).
    let downloaded = dir.join("downloaded");
    download(&moto, "models", "exp1", &downloaded);
    assert_eq!(
        moto.keys("models", "exp1/"),
        ["exp1/config.json", "exp1/model.safetensors"]
    );
    assert!(
        std::fs::read(reference.join("model.safetensors")).unwrap()
            == std::fs::read(downloaded.join("model.safetensors")).unwrap()
    );
    let (again, read_back) = (dir.join("reference-again"), dir.join("read-back"));
    ok(&convert(
        moto.port,
        &["--from", "llama", "--to", "llama", s(&reference), s(&again)],
    ));
    ok(&convert(
        moto.port,
        &["--from", "llama", "--to", "llama", "s3://models/exp1", s(&read_back)],
    ));
    assert_same_files(&again, &read_back);
    assert!(moto.pending_uploads("models").is_empty());
    eprintln!(
        "peak staged {} bytes (documents), peak RSS {} MiB",
        run.peak_staged,
        run.max_rss_bytes >> 20
    );
}

/// The objects directly under `prefix/` of `bucket`, downloaded into `dir` by their last name
/// through boto3 (moto's own dependency), whose GETs are signed: moto refuses some unsigned
/// GETs (of objects written by a single PUT or a copy) with 403.
fn download_signed(moto: &Moto, bucket: &str, prefix: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import os, sys, boto3
port, bucket, prefix, out = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/", Delimiter="/"):
    for item in page.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        with open(os.path.join(out, item["Key"].rsplit("/", 1)[-1]), "wb") as f:
            f.write(body)
"#;
    let status = Command::new("python3")
        .args(["-c", script, &moto.port.to_string(), bucket, prefix, s(dir)])
        .status()
        .unwrap();
    assert!(status.success(), "downloading s3://{bucket}/{prefix}");
}

/// The keys of `bucket` but the ones under `prefix/`.
fn keys_outside(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = (moto.keys(bucket, "").into_iter())
        .filter(|k| !k.starts_with(&format!("{prefix}/")))
        .collect();
    keys.sort();
    keys
}

/// The split conversion of [`llama`] (8 MB shards) to or from `output`.
fn part_args<'a>(hf: &'a Path, output: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--max-shard-size", "8MB", "--from", "llama", "--to", "llama"];
    args.extend(rest);
    args.extend([s(hf), output]);
    args
}

/// `--part K/N` on N machines sharing a bucket: parts in any order, each in its own prefix
/// beside the output, nothing at the output until `--finalize`; a missing part named; a retried
/// part giving the same objects; an existing output replaced only with `--force`; the finalized
/// output the same files as one whole conversion, the parts gone, no upload pending.
#[test]
fn parts_in_a_bucket_in_any_order_retried_then_finalized_equal_one_whole_conversion() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("parts");
    let hf = llama(&dir);
    let port = moto.port;
    let whole = dir.join("whole");
    ok(&convert(port, &part_args(&hf, s(&whole), &[])));
    let shards = std::fs::read_dir(&whole)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".safetensors")
        })
        .count();
    assert!(shards >= 3, "{shards} shards");

    let url = "s3://models/runs/split";
    for part in ["2/3", "0/3"] {
        let printed = ok(&convert(port, &part_args(&hf, url, &["--part", part])));
        let name = format!("s3://models/runs/split.part-{}-of-3", &part[..1]);
        assert!(
            printed.contains(&format!("wrote part {part}")) && printed.contains(&name),
            "{printed}"
        );
    }
    assert_eq!(
        moto.keys("models", "runs/split/"),
        Vec::<String>::new(),
        "nothing at the output"
    );
    let part_keys = moto.keys("models", "runs/split.part-0-of-3/");
    assert!(
        part_keys.contains(&"runs/split.part-0-of-3/part.json".to_string()),
        "{part_keys:?}"
    );
    let stderr = failed(&convert(port, &part_args(&hf, url, &["--finalize"])));
    assert!(stderr.contains("1 of 3 part(s) missing: 1/3"), "{stderr}");
    assert_eq!(moto.keys("models", "runs/split/"), Vec::<String>::new());
    // A retried part replaces its previous attempt with the same objects.
    ok(&convert(port, &part_args(&hf, url, &["--part", "1/3"])));
    let first = dir.join("part-1-first");
    download_signed(&moto, "models", "runs/split.part-1-of-3", &first);
    ok(&convert(port, &part_args(&hf, url, &["--part", "1/3"])));
    let again = dir.join("part-1-again");
    download_signed(&moto, "models", "runs/split.part-1-of-3", &again);
    assert_same_files(&first, &again);
    for k in 0..3 {
        let keys = moto.keys("models", &format!("runs/split.part-{k}-of-3/"));
        assert!(keys.iter().any(|k| k.ends_with(".safetensors")), "part {k}: {keys:?}");
    }
    // An old output at the prefix: kept without --force, replaced with it.
    http(port, "PUT", "/models/runs/split/stale.bin", b"old");
    let stderr = failed(&convert(port, &part_args(&hf, url, &["--finalize"])));
    assert!(
        stderr.contains("s3://models/runs/split: the output already exists"),
        "{stderr}"
    );
    ok(&convert(port, &part_args(&hf, url, &["--finalize", "--force"])));

    assert_eq!(
        keys_outside(&moto, "models", "runs/split"),
        Vec::<String>::new(),
        "parts removed"
    );
    assert_eq!(moto.pending_uploads("models"), Vec::<String>::new());
    // Bit for bit the whole conversion's files, the stale one gone.
    let finalized = dir.join("finalized");
    download_signed(&moto, "models", "runs/split", &finalized);
    assert_same_files(&whole, &finalized);
}

/// A part killed (SIGKILL) while it re-uploads: its earlier complete attempt no longer counts
/// (its manifest is deleted before anything else), so `--finalize` names it missing; a part
/// whose object was cut short is named incomplete; a part failing mid-upload leaves nothing
/// and no pending upload; rerun, the part finalizes into the whole conversion's files.
#[test]
fn a_part_killed_or_failing_mid_upload_is_never_finalized_and_a_rerun_completes_it() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("parts_killed");
    let hf = llama(&dir);
    let port = moto.port;
    let url = "s3://models/m";
    ok(&convert(port, &part_args(&hf, url, &["--part", "0/2"])));
    ok(&convert(port, &part_args(&hf, url, &["--part", "1/2"])));

    let stalling = Proxy::start(
        port,
        Faults {
            stall_parts: Some(Duration::from_secs(30)),
            ..Faults::default()
        },
    );
    let mut child = command(stalling.port, ("testing", "testing"))
        .args(["--io-part-size", "5MiB"])
        .args(part_args(&hf, url, &["--part", "0/2"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stalling.parts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no part upload started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = failed(&convert(port, &part_args(&hf, url, &["--finalize"])));
    assert!(stderr.contains("1 of 2 part(s) missing: 0/2"), "{stderr}");
    assert_eq!(moto.keys("models", "m/"), Vec::<String>::new());

    // A part failing mid-upload (the server dropping part uploads): an error naming the part's
    // object, no object left under the part's prefix, its multipart upload aborted.
    let before = moto.pending_uploads("models");
    let failing = Proxy::start(
        port,
        Faults {
            parts_before_failure: Some(1),
            ..Faults::default()
        },
    );
    let stderr = failed(&convert(
        failing.port,
        &part_args(&hf, url, &["--io-retries", "1", "--part", "0/2"]),
    ));
    assert!(
        stderr.contains("s3://models/m.part-0-of-2/"),
        "names the object: {stderr}"
    );
    assert_eq!(moto.keys("models", "m.part-0-of-2/"), Vec::<String>::new());
    assert_eq!(
        moto.pending_uploads("models"),
        before,
        "the failed run's upload aborted"
    );

    // Complete again, then one of part 1's objects replaced by a shorter one.
    ok(&convert(port, &part_args(&hf, url, &["--part", "0/2"])));
    let shard = (moto.keys("models", "m.part-1-of-2/").into_iter())
        .find(|k| k.ends_with(".safetensors"))
        .unwrap();
    http(port, "PUT", &format!("/models/{shard}"), b"short");
    let stderr = failed(&convert(port, &part_args(&hf, url, &["--finalize"])));
    assert!(
        stderr.contains("part 1/2 is incomplete") && stderr.contains("has 5 bytes"),
        "{stderr}"
    );
    assert_eq!(moto.keys("models", "m/"), Vec::<String>::new());

    ok(&convert(port, &part_args(&hf, url, &["--part", "1/2"])));
    ok(&convert(port, &part_args(&hf, url, &["--finalize"])));
    let (whole, finalized) = (dir.join("whole"), dir.join("finalized"));
    ok(&convert(port, &part_args(&hf, s(&whole), &[])));
    download_signed(&moto, "models", "m", &finalized);
    assert_same_files(&whole, &finalized);
    assert_eq!(
        keys_outside(&moto, "models", "m"),
        Vec::<String>::new(),
        "parts removed"
    );
}

/// `inspect PATH` with the S3 variables pointing at `port`: its output, or its failure.
fn inspect(port: u16, path: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fastllm-convert"));
    command
        .args(["inspect", path])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    command.output().unwrap()
}

/// `inspect`'s description of a local and a remote copy of one checkpoint are the same, but
/// for the first line (the path or URL, which the remote one names).
fn assert_same_description(local: &str, remote: &str, url: &str) {
    let (local_first, local_rest) = local.split_once('\n').unwrap();
    let (remote_first, remote_rest) = remote.split_once('\n').unwrap();
    assert!(!local_first.is_empty());
    assert_eq!(remote_first, url);
    assert_eq!(local_rest, remote_rest);
}

/// `inspect` takes a URL wherever it takes a directory: an HF checkpoint in S3 and behind a
/// plain HTTP server, and a training checkpoint in S3, described as their local copies are; from
/// S3 (behind a proxy counting the GETs) by ranged GETs of the headers only (at most the first
/// 256 KiB of each file, two GETs a file at most), no tensor file read whole.
#[test]
fn inspect_reads_a_remote_checkpoint_by_its_headers() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("inspect");
    let hf = sharded_llama(moto.port, &dir);
    upload(&moto, &hf, "runs", "hf");
    let local = ok(&support::cli(&["inspect", s(&hf)]));

    let proxy = Proxy::start(moto.port, Faults::default());
    let url = "s3://runs/hf";
    assert_same_description(&local, &ok(&inspect(proxy.port, url)), url);
    let (gets, whole) = proxy.tensor_gets();
    assert!(!whole, "a tensor file read whole");
    let shards = bytes_of(&hf, |n| n.ends_with(".safetensors")).1;
    assert!(!gets.is_empty() && gets.len() as u64 <= 2 * shards, "{gets:?}");
    for get in &gets {
        let (start, end) = get.range.unwrap();
        assert!(start == 0 && end <= HEADER_GUESS, "beyond the header: {get:?}");
    }
    // A web server, which cannot be listed: the files probed by name, then read by range.
    let url = format!("http://127.0.0.1:{}/hf", serve_files(hf.clone()));
    assert_same_description(&local, &ok(&inspect(moto.port, &url)), &url);

    let checkpoint = distributed_checkpoint(&dir);
    upload(&moto, &checkpoint, "runs", "exp1/checkpoint/1000");
    let local = ok(&support::cli(&["inspect", s(&checkpoint)]));
    let url = "s3://runs/exp1/checkpoint/1000";
    assert_same_description(&local, &ok(&inspect(moto.port, url)), url);

    let stderr = failed(&inspect(moto.port, "s3://runs/nothing-here"));
    assert!(
        stderr.contains("s3://runs/nothing-here: no checkpoint here"),
        "{stderr}"
    );
}

/// The conversion of [`distributed_checkpoint`] to a training checkpoint re-sharded as tensor 2
/// × data 2 with its optimizer state: 4 rank files of more than one 5 MiB part each.
const RESHARD: [&str; 7] = [
    "--from",
    "auto",
    "--to",
    "fast_llm_distributed",
    "--layout",
    "tp=2,dp=2",
    "--optimizer-state",
];

/// A `--to fast_llm_distributed` output in S3: its rank files are uploaded as they are written
/// (multipart, all four growing together), none staged locally; they equal the same conversion
/// on local disk bit for bit, and the checkpoint read back from S3 converts as the local one.
#[test]
fn an_s3_distributed_output_stages_no_rank_file() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("distributed_output");
    let checkpoint = distributed_checkpoint(&dir);
    let reference = dir.join("reference");
    ok(&convert(
        moto.port,
        &[&RESHARD[..], &[s(&checkpoint), s(&reference)]].concat(),
    ));
    let run = convert_watching(
        moto.port,
        &dir.join("tmp"),
        &args(&[&RESHARD[..], &[s(&checkpoint), "s3://runs/resharded"]].concat()),
    );
    ok(&run.output);
    assert!(
        run.staged_names.iter().all(|n| !n.ends_with(".safetensors")),
        "staged {:?}",
        run.staged_names
    );
    let (document_bytes, _) = bytes_of(&reference, |n| !n.ends_with(".safetensors"));
    assert!(
        run.peak_staged <= document_bytes,
        "{} bytes staged, the documents have {document_bytes}",
        run.peak_staged
    );
    let ranks: Vec<String> = (0..4).map(|rank| format!("rank_{rank}.safetensors")).collect();
    let mut keys = moto.keys("runs", "resharded/");
    keys.sort();
    let expected: Vec<String> = std::iter::once("metadata.yaml".to_string())
        .chain(ranks.iter().cloned())
        .map(|name| format!("resharded/{name}"))
        .collect();
    assert_eq!(keys, expected);
    assert!(moto.pending_uploads("runs").is_empty());
    let downloaded = dir.join("downloaded");
    download(&moto, "runs", "resharded", &downloaded);
    for rank in &ranks {
        let local = std::fs::read(reference.join(rank)).unwrap();
        // Several parts each: the uploads were multipart, interleaved.
        assert!(local.len() as u64 > PART, "{rank}: {} bytes", local.len());
        assert!(local == std::fs::read(downloaded.join(rank)).unwrap(), "{rank} differs");
    }
    // metadata.yaml too (moto refuses an unsigned GET of a single PUT): read back through the
    // converter, the checkpoint converts as the local one.
    let (from_local, from_s3) = (dir.join("hf-from-local"), dir.join("hf-from-s3"));
    let to_hf = ["--from", "auto", "--to", "llama"];
    ok(&convert(
        moto.port,
        &[&to_hf[..], &[s(&reference), s(&from_local)]].concat(),
    ));
    ok(&convert(
        moto.port,
        &[&to_hf[..], &["s3://runs/resharded", s(&from_s3)]].concat(),
    ));
    assert_same_files(&from_local, &from_s3);
    eprintln!(
        "peak staged {} bytes (documents), peak RSS {} MiB",
        run.peak_staged,
        run.max_rss_bytes >> 20
    );
}

/// A server failing while the rank files upload: every multipart upload of the run (one per
/// rank file, in progress together) is aborted, and no object is left, no marker ever written.
#[test]
fn a_distributed_output_failing_mid_upload_leaves_nothing_pending() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("distributed_mid_upload");
    let checkpoint = distributed_checkpoint(&dir);
    let proxy = Proxy::start(
        moto.port,
        Faults {
            parts_before_failure: Some(3),
            ..Faults::default()
        },
    );
    let stderr = failed(&convert(
        proxy.port,
        &[&["--io-retries", "1"], &RESHARD[..], &[s(&checkpoint), "s3://models/m"]].concat(),
    ));
    assert!(stderr.contains("s3://models/m/rank_"), "names the rank file: {stderr}");
    assert!(proxy.dropped.load(Ordering::SeqCst) > 0);
    assert_eq!(moto.keys("models", ""), Vec::<String>::new(), "nothing left");
    assert_eq!(moto.pending_uploads("models"), Vec::<String>::new(), "aborted");
}

/// Interrupted while its rank files upload: the local staging (which never held a rank file)
/// is removed and no marker exists.
#[test]
fn an_interrupted_distributed_output_leaves_no_staging_and_no_marker() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("distributed_interrupted");
    let checkpoint = distributed_checkpoint(&dir);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let proxy = Proxy::start(
        moto.port,
        Faults {
            stall_parts: Some(Duration::from_secs(30)),
            ..Faults::default()
        },
    );
    let mut child = command(proxy.port, ("testing", "testing"))
        .args(["--io-part-size", "5MiB"])
        .args(RESHARD)
        .args([s(&checkpoint), "s3://models/m"])
        .env("TMPDIR", &tmp)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.parts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no part upload started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut staged = Vec::new();
    walk_files(&tmp, &mut staged);
    assert!(!staged.is_empty(), "the documents are staged under TMPDIR");
    assert!(
        staged.iter().all(|(name, _)| !name.ends_with(".safetensors")),
        "{staged:?}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "local staging removed: {left:?}");
    assert_eq!(moto.object("models", "m/metadata.yaml").0, 404);
}

/// S3 → S3 between training checkpoints, with the optimizer state: the input's rank files read
/// in place, each byte about once although the output is written shard by shard (each shard
/// pass reads other input bytes), nothing of either side's rank files staged, the output equal
/// to the local conversion's.
#[test]
fn an_s3_training_checkpoint_reshards_to_s3_reading_each_byte_once() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("runs");
    let dir = scratch("distributed_s3_to_s3");
    let checkpoint = distributed_checkpoint(&dir);
    upload(&moto, &checkpoint, "runs", "exp/1000");
    let reference = dir.join("reference");
    ok(&convert(
        moto.port,
        &[&RESHARD[..], &[s(&checkpoint), s(&reference)]].concat(),
    ));
    let proxy = Proxy::start(moto.port, Faults::default());
    let run = convert_watching(
        proxy.port,
        &dir.join("tmp"),
        &args(&[&RESHARD[..], &["s3://runs/exp/1000", "s3://runs/resharded"]].concat()),
    );
    ok(&run.output);
    assert!(
        run.staged_names.iter().all(|n| !n.ends_with(".safetensors")),
        "staged {:?}",
        run.staged_names
    );
    let (gets, whole) = proxy.tensor_gets();
    assert!(!whole, "a rank file was read whole");
    let input_gets: Vec<u64> = (gets.iter())
        .filter(|g| g.path.contains("/exp/1000/"))
        .filter_map(|g| g.range)
        .map(|(a, b)| b - a)
        .collect();
    let fetched: u64 = input_gets.iter().sum();
    let (tensor_bytes, tensor_files) = bytes_of(&checkpoint, |n| n.ends_with(".safetensors"));
    assert!(
        fetched <= tensor_bytes + tensor_files * HEADER_GUESS,
        "{fetched} bytes fetched for {tensor_bytes} bytes of rank files"
    );
    let downloaded = dir.join("downloaded");
    download(&moto, "runs", "resharded", &downloaded);
    for rank in 0..4 {
        let name = format!("rank_{rank}.safetensors");
        assert!(
            std::fs::read(reference.join(&name)).unwrap() == std::fs::read(downloaded.join(&name)).unwrap(),
            "{name} differs"
        );
    }
    assert!(moto.pending_uploads("runs").is_empty());
    eprintln!(
        "{} ranged GETs, {fetched} bytes for {tensor_bytes} bytes in {tensor_files} rank files; peak RSS {} MiB",
        input_gets.len(),
        run.max_rss_bytes >> 20
    );
}

/// `config import`, `config export` and `config normalize` read a document named by a URL (S3, and
/// a plain HTTP server for import) as
/// they read a local file (JSON or YAML by its extension); a missing object, a URL naming no
/// file and a document over the size limit are refused, named by their URL, before any parse.
#[test]
fn config_commands_read_their_document_from_a_url() {
    let Some(moto) = Moto::start(&[]) else { return };
    moto.bucket("models");
    let dir = scratch("config_url");
    let hf = llama(&dir);
    let config = |args: &[&str]| {
        let mut command = cli(moto.port, ("testing", "testing"));
        command.arg("config").args(args).output().unwrap()
    };
    let local_import = ok(&config(&["import", "--format", "auto", s(&hf.join("config.json"))]));
    let put = |key: &str, body: &[u8]| {
        let (status, text) = http(moto.port, "PUT", &format!("/models/{key}"), body);
        assert_eq!(status, 200, "{text}");
    };
    put("llama/config.json", &std::fs::read(hf.join("config.json")).unwrap());
    let remote_import = ok(&config(&[
        "import",
        "--format",
        "auto",
        "s3://models/llama/config.json",
    ]));
    assert_eq!(remote_import, local_import);
    let http = format!("http://127.0.0.1:{}/llama/config.json", serve_files(hf.clone()));
    assert_eq!(
        ok(&config(&["import", "--format", "auto", &http])),
        local_import,
        "{http}"
    );

    // The imported Fast-LLM config, as YAML (a JSON document is YAML too), exported back and
    // normalized from the store.
    let fast_llm =
        String::from_utf8(config(&["import", "--format", "llama", s(&hf.join("config.json"))]).stdout).unwrap();
    std::fs::write(dir.join("fast_llm.yaml"), &fast_llm).unwrap();
    put("fast_llm/base_model.yaml", fast_llm.as_bytes());
    for command in [&["export", "--format", "llama"][..], &["normalize"][..]] {
        let local = ok(&config(&[command, &[s(&dir.join("fast_llm.yaml"))]].concat()));
        let remote = ok(&config(&[command, &["s3://models/fast_llm/base_model.yaml"]].concat()));
        assert_eq!(remote, local, "config {command:?}");
    }

    let missing = failed(&config(&["import", "--format", "auto", "s3://models/llama/nope.json"]));
    assert!(
        missing.contains("s3://models/llama/nope.json") && missing.contains("no such file"),
        "{missing}"
    );
    let no_file = failed(&config(&["import", "--format", "auto", "s3://models"]));
    assert!(no_file.contains("s3://models: names no file"), "{no_file}");
    put("big/config.json", &vec![b' '; (4 << 20) + 1]);
    let big = failed(&config(&["import", "--format", "auto", "s3://models/big/config.json"]));
    assert!(
        big.contains("s3://models/big/config.json") && big.contains("more than"),
        "{big}"
    );
}
