//! Companion files: what a checkpoint directory holds besides its config and weights that a
//! user needs to run the model (tokenizer, generation config, chat template, processor config,
//! model card and license). A conversion copies them byte for byte into the output, whichever
//! side is Fast-LLM, and lists every other file of the input as not copied, with why: nothing
//! is copied blindly (pickles can run code, other formats' weights would be stale).

use std::path::Path;

use crate::CheckpointError;
use crate::policy::{Entry, InputDir};
use crate::writer::OutputDir;

/// The file names copied, as patterns (`*` matches any run of characters). Matched against a
/// file name in the checkpoint directory, case-sensitively.
pub const COMPANION_PATTERNS: &[&str] = &[
    // Tokenizers: fast (tokenizer.json), SentencePiece, BPE / WordPiece vocabularies, tiktoken.
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "*.tiktoken",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    // Generation and chat.
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
    // Multimodal input processing.
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    // What a model may be used for, and under which terms.
    "README.md",
    "LICENSE",
    "LICENSE.*",
    "NOTICE",
    "USE_POLICY.md",
];

/// The files every conversion writes itself, never copied or listed.
const OWN_FILES: &[&str] = &["config.json", "metadata.yaml", "model.safetensors.index.json", "ok"];

/// Pickle files, by extension.
const PICKLES: [&str; 6] = ["bin", "pt", "pth", "pkl", "pickle", "ckpt"];

/// Weights of formats that are not converted, by extension.
const OTHER_WEIGHTS: [&str; 7] = ["gguf", "h5", "msgpack", "onnx", "tflite", "ot", "npz"];

/// Whether `name` holds weights a conversion never reads: a pickle or another format's.
pub fn is_foreign_weights(name: &str) -> bool {
    let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
    PICKLES.contains(&extension) || OTHER_WEIGHTS.contains(&extension)
}

/// Why a file of the input is not in the output.
fn not_copied_because(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match extension {
        e if PICKLES.contains(&e) => "a pickle: never copied (it can run code)",
        e if OTHER_WEIGHTS.contains(&e) => {
            "weights of another format: not converted, and stale beside the converted ones"
        }
        "py" => "code of another format",
        _ => "not in the companion-file list",
    }
}

/// `*` matches any run of characters; everything else literally.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
        }
    }
}

/// Whether `name` is a companion file.
pub fn is_companion(name: &str) -> bool {
    COMPANION_PATTERNS.iter().any(|p| matches(p, name))
}

/// The input directory's files sorted into companions to copy and the rest, with reasons.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Companions {
    /// Copied byte for byte.
    pub copied: Vec<String>,
    /// Every other entry of the input directory and why it is not copied.
    pub not_copied: Vec<(String, String)>,
}

/// Sorts the entries of `input`. `handled` are files another rule takes care of (weights, the
/// output format's modeling files): neither copied here nor listed, when they can be read.
/// Anything the filesystem policy does not read (a symlink leaving the input, a FIFO, ...) is
/// listed as not copied with what it truly is.
pub fn companions(input: &Path, handled: &dyn Fn(&str) -> bool) -> Result<Companions, CheckpointError> {
    let dir = InputDir::new(input)?;
    let mut result = Companions::default();
    for name in dir.names()? {
        let entry = dir.entry(&name);
        let readable = matches!(entry, Entry::Readable { .. });
        if OWN_FILES.contains(&name.as_str()) || (readable && (name.ends_with(".safetensors") || handled(&name))) {
            continue;
        }
        match entry {
            Entry::Readable { resolved } if is_companion(&name) => {
                match std::fs::metadata(&resolved).map(|m| m.len()) {
                    Ok(size) if size > MAX_COMPANION_BYTES => result.not_copied.push((
                        name,
                        format!(
                            "{size} bytes, more than the {MAX_COMPANION_BYTES} a companion file may have: not copied"
                        ),
                    )),
                    _ => result.copied.push(name),
                }
            }
            Entry::Readable { .. } => {
                let reason = not_copied_because(&name).to_string();
                result.not_copied.push((name, reason));
            }
            entry if entry.is_directory() => result.not_copied.push((name, "a directory: not converted".to_string())),
            Entry::Refused { reason } => result.not_copied.push((name, format!("{reason}: never copied"))),
            // Listed under a name that does not open: not UTF-8 (listed lossily), or removed
            // since.
            Entry::Missing => result.not_copied.push((
                name,
                "a name that is not UTF-8 (or removed meanwhile): never copied".to_string(),
            )),
        }
    }
    Ok(result)
}

/// The largest companion file copied: real tokenizers are tens of megabytes; a larger one (a
/// sparse terabyte named `LICENSE`) is listed as not copied.
pub const MAX_COMPANION_BYTES: u64 = 256 << 20;

/// Copies `files` of `input` into the output, byte for byte, each read through the filesystem
/// policy (see [`Opened::copy_to`] for the mode) and no larger than [`MAX_COMPANION_BYTES`] on
/// its handle.
pub fn copy(out: &OutputDir, input: &Path, files: &[String]) -> Result<(), CheckpointError> {
    let dir = InputDir::new(input)?;
    for file in files {
        let source = dir.open(file)?;
        if source.size > MAX_COMPANION_BYTES {
            return Err(CheckpointError::invalid(
                &source.path,
                format!(
                    "{} bytes, more than the {MAX_COMPANION_BYTES} a companion file may have (it grew while converting)",
                    source.size
                ),
            ));
        }
        source.copy_to(&out.path(file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for name in [
            "tokenizer.json",
            "cl100k.tiktoken",
            "LICENSE",
            "LICENSE.txt",
            "chat_template.jinja",
        ] {
            assert!(is_companion(name), "{name}");
        }
        for name in [
            "pytorch_model.bin",
            "tokenizer.json.bak",
            "LICENSE_OLD",
            "x.tiktoken.py",
            "model.gguf",
        ] {
            assert!(!is_companion(name), "{name}");
        }
        assert_eq!(
            not_copied_because("pytorch_model.bin"),
            "a pickle: never copied (it can run code)"
        );
        assert!(not_copied_because("model.gguf").starts_with("weights of another format"));
    }

    #[test]
    fn sorts_a_directory() {
        let dir = crate::scratch::scratch("companions", "listed");
        std::fs::create_dir_all(dir.join("original")).unwrap();
        for name in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "generation_config.json",
            "pytorch_model.bin",
            "notes.txt",
            "modeling_x.py",
        ] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        let sorted = companions(&dir, &|name| name == "modeling_x.py").unwrap();
        assert_eq!(sorted.copied, ["generation_config.json", "tokenizer.json"]);
        let not: Vec<&str> = sorted.not_copied.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(not, ["notes.txt", "original", "pytorch_model.bin"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A companion name that is not a readable file of the input is listed with what it is.
    #[cfg(unix)]
    #[test]
    fn what_is_not_copied_is_described_truly() {
        use std::os::unix::fs::symlink;
        let root = crate::scratch::scratch("companions", "kinds");
        let dir = root.join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(root.join("secret"), "token").unwrap();
        symlink("/proc/self/environ", dir.join("LICENSE")).unwrap();
        symlink(root.join("secret"), dir.join("tokenizer.json")).unwrap();
        symlink("gone", dir.join("README.md")).unwrap();
        symlink("NOTICE", dir.join("NOTICE")).unwrap();
        symlink("/dev/zero", dir.join("vocab.txt")).unwrap();
        std::fs::create_dir(dir.join("merges.txt")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("vocab.json"))
            .status()
            .unwrap();
        assert!(made.success());
        let sorted = companions(&dir, &|_| false).unwrap();
        assert!(sorted.copied.is_empty(), "{:?}", sorted.copied);
        let reason = |name: &str| {
            sorted
                .not_copied
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        };
        assert!(
            reason("LICENSE").contains("/environ`, outside the input"),
            "{}",
            reason("LICENSE")
        );
        assert!(
            reason("tokenizer.json").contains("outside the input"),
            "{}",
            reason("tokenizer.json")
        );
        assert!(
            reason("README.md").starts_with("a dangling symlink"),
            "{}",
            reason("README.md")
        );
        assert!(reason("NOTICE").starts_with("a symlink loop"), "{}", reason("NOTICE"));
        assert!(
            reason("vocab.txt").contains("outside the input"),
            "{}",
            reason("vocab.txt")
        );
        assert_eq!(reason("merges.txt"), "a directory: not converted");
        assert!(reason("vocab.json").starts_with("a FIFO"), "{}", reason("vocab.json"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_companion_past_the_limit_is_not_copied() {
        let dir = crate::scratch::scratch("companions", "huge");
        // Sparse: a terabyte on paper, nothing on disk.
        let file = std::fs::File::create(dir.join("LICENSE")).unwrap();
        file.set_len(1 << 40).unwrap();
        std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        let sorted = companions(&dir, &|_| false).unwrap();
        assert_eq!(sorted.copied, ["tokenizer.json"]);
        assert_eq!(sorted.not_copied.len(), 1);
        assert!(
            sorted.not_copied[0].1.contains("a companion file may have"),
            "{:?}",
            sorted.not_copied
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
