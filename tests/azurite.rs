//! Conversions from and to Azure Blob Storage against Azure's official emulator, Azurite (npm
//! `azurite`, installed by `.ci/run`), started and stopped by the test.
//!
//! Under CI (`CI` set) a missing Azurite fails the test; elsewhere it says why and passes.
#![cfg(feature = "object-store")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

mod support;

use support::{file_contents as files, synthetic_llama};

/// The emulator's well-known account and key (public, in Azure's documentation).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite {
    child: Child,
    port: u16,
    _workspace: PathBuf,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    fn start(workspace: PathBuf) -> Option<Azurite> {
        let installed = Command::new("azurite-blob")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "azurite is not installed: .ci/run installs it"
            );
            eprintln!("skipped: azurite-blob is not available (npm install -g azurite)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ])
            // Azurite writes its debug log and nothing else here with in-memory persistence.
            .current_dir(&workspace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob runs");
        let azurite = Azurite {
            child,
            port,
            _workspace: workspace,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(azurite)
    }

    /// Creates `container` with a request signed by the account's shared key.
    fn container(&self, container: &str) {
        let date = httpdate();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &STANDARD.decode(KEY).unwrap());
        let signature = STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "creating {container}: {response}");
    }
}

/// The current time as an HTTP date (RFC 1123), which the shared-key signature covers.
fn httpdate() -> String {
    let output = Command::new("date")
        .args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn convert(port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastllm-convert"))
        .arg("convert")
        .args(["--io-part-size", "5MiB", "--max-shard-size", "20MB"])
        .args(args)
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env("AZURITE_BLOB_STORAGE_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
        .env_remove("AZURE_STORAGE_ACCOUNT_KEY")
        .output()
        .unwrap()
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn local_to_azure_to_local_round_trips_bit_identical() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("azurite");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("workspace")).unwrap();
    let Some(azurite) = Azurite::start(dir.join("workspace")) else {
        return;
    };
    azurite.container("models");
    let hf = synthetic_llama(&dir, 512, 2, 20_000_000);
    let port = azurite.port;
    let reference = dir.join("reference");
    ok(&convert(
        port,
        &[
            "--from",
            "llama",
            "--to",
            "llama",
            hf.to_str().unwrap(),
            reference.to_str().unwrap(),
        ],
    ));
    ok(&convert(
        port,
        &[
            "--from",
            "llama",
            "--to",
            "fast_llm",
            hf.to_str().unwrap(),
            "az://models/exp/1000",
        ],
    ));
    let back = dir.join("back");
    ok(&convert(
        port,
        &[
            "--from",
            "auto",
            "--to",
            "llama",
            "az://models/exp/1000",
            back.to_str().unwrap(),
        ],
    ));
    assert_eq!(files(&reference), files(&back));
}

/// `--part K/N` and `--finalize` with an `az://` output: the parts in prefixes beside it, the
/// finalized output (files copied server-side from the parts) read back equal to a whole local
/// conversion.
#[test]
fn parts_in_a_container_finalize_into_the_whole_conversion() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("azurite-parts");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("workspace")).unwrap();
    let Some(azurite) = Azurite::start(dir.join("workspace")) else {
        return;
    };
    azurite.container("models");
    let hf = synthetic_llama(&dir, 512, 2, 20_000_000);
    let (hf, port) = (hf.to_str().unwrap(), azurite.port);
    let llama = ["--from", "llama", "--to", "llama"];
    let reference = dir.join("reference");
    ok(&convert(
        port,
        &[&llama[..], &[hf, reference.to_str().unwrap()]].concat(),
    ));
    for part in ["1/2", "0/2"] {
        ok(&convert(
            port,
            &[&llama[..], &["--part", part, hf, "az://models/split"]].concat(),
        ));
    }
    ok(&convert(
        port,
        &[&llama[..], &["--finalize", hf, "az://models/split"]].concat(),
    ));
    let back = dir.join("back");
    ok(&convert(
        port,
        &[&llama[..], &["az://models/split", back.to_str().unwrap()]].concat(),
    ));
    assert_eq!(files(&reference), files(&back));
    assert!(files(&back).len() > 2, "sharded: {:?}", files(&back).len());
}
