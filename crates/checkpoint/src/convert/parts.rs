//! One conversion split across machines: `--part K/N` writes the K-th of N disjoint sets of the
//! output's tensor files, `--finalize` checks that every part is there and complete and
//! assembles the output with its documents.
//!
//! * **Which files**: the output's files are the ones a whole conversion writes (same plan, same
//!   sharding), given to parts greedily by size, largest first, each to the part with the fewest
//!   bytes so far (ties: the lower part): deterministic, and balanced by bytes within one file.
//! * **A part** is a directory beside the output, `NAME.part-K-of-N`, written through
//!   [`OutputDir`] like any output: it appears only complete, and a retried part replaces its
//!   previous attempt the same way (`--force` semantics, always). Beside its files it holds
//!   `part.json`: its index, the count, its files with their sizes, and the plan's fingerprint
//!   (a hash of the formats, documents, file names and every tensor's name, dtype and shape), so
//!   parts of different conversions are never assembled together.
//! * **`--finalize`** plans the same conversion (reading no tensor data), finds the part
//!   directories, refuses when one is missing, incomplete, of another count or another plan,
//!   then builds the output (hard links to the parts' files, copies across filesystems), writes
//!   the documents and commits it; the part directories are removed after the commit. Until then
//!   the parts stay, so a failed finalize can be retried.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::ConversionError;
use super::plan::OutputTensor;
use crate::CheckpointError;
use crate::policy::{DocumentKind, OutputDir, Protected, open_named};

/// The manifest of a part, its last file.
pub(crate) const MANIFEST: &str = "part.json";

/// The most parts a conversion may be split into.
const MAX_PARTS: usize = 10_000;

/// The K-th of N parts of a conversion (`--part K/N`, K from 0 to N − 1, as a Slurm array task
/// id or a Kubernetes completion index counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub count: usize,
}

impl Part {
    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Part, String> {
        let bad = || format!("`{text}`: expected K/N with 0 <= K < N <= {MAX_PARTS} (e.g. 0/4)");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            index.trim().parse::<usize>().map_err(|_| bad())?,
            count.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || count > MAX_PARTS || index >= count {
            return Err(bad());
        }
        Ok(Part { index, count })
    }

    /// The directory of this part of the output at `output`.
    pub fn dir(self, output: &Path) -> PathBuf {
        let name = output
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        output.with_file_name(format!("{name}.part-{}-of-{}", self.index, self.count))
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The part of each file: largest first, each to the least-loaded part.
pub(crate) fn assign(sizes: &[u64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; count];
    let mut part_of = vec![0; sizes.len()];
    for file in order {
        let part = (0..count).min_by_key(|&p| (load[p], p)).expect("count > 0");
        load[part] = load[part].saturating_add(sizes[file]);
        part_of[file] = part;
    }
    part_of
}

/// The bytes of tensor data of each file.
pub(crate) fn file_bytes(files: &[(String, Range<usize>)], outputs: &[OutputTensor]) -> Vec<u64> {
    files
        .iter()
        .map(|(_, range)| outputs[range.clone()].iter().map(|o| o.tensor.bytes).sum())
        .collect()
}

/// A stable hash (FNV-1a, 64 bits) of what the parts of one conversion share.
pub(crate) fn fingerprint<'a>(
    formats: (&str, &str),
    documents: impl Iterator<Item = &'a str>,
    files: &[(String, Range<usize>)],
    outputs: &[OutputTensor],
) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain([&0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(formats.0.as_bytes());
    feed(formats.1.as_bytes());
    documents.for_each(|text| feed(text.as_bytes()));
    for (name, range) in files {
        feed(name.as_bytes());
        for output in &outputs[range.clone()] {
            let tensor = &output.tensor;
            feed(tensor.name.as_bytes());
            feed(tensor.dtype.as_bytes());
            feed(format!("{:?}", tensor.shape).as_bytes());
        }
    }
    format!("{hash:016x}")
}

/// The manifest of part `part`: its files (name → size) and the plan's fingerprint.
pub(crate) fn manifest(part: Part, fingerprint: &str, files: &BTreeMap<String, u64>) -> String {
    let files: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(name, size)| (name.clone(), (*size).into()))
        .collect();
    let value = serde_json::json!({
        "part": part.index,
        "parts": part.count,
        "fingerprint": fingerprint,
        "files": files,
    });
    serde_json::to_string_pretty(&value).expect("plain JSON") + "\n"
}

/// The parts of the output at `output` found beside it, by count.
fn find_counts(output: &Path) -> Result<Vec<usize>, CheckpointError> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = output
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let prefix = format!("{name}.part-");
    let mut counts = Vec::new();
    let entries = std::fs::read_dir(parent).map_err(|e| CheckpointError::io(parent, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io(parent, e))?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = entry_name.strip_prefix(&prefix)
            && let Some((_, count)) = rest.split_once("-of-")
            && let Ok(count) = count.parse::<usize>()
            && !counts.contains(&count)
        {
            counts.push(count);
        }
    }
    counts.sort_unstable();
    Ok(counts)
}

/// What `--finalize` found: for each output file, where it is.
pub(crate) struct Gathered {
    pub files: Vec<(String, PathBuf)>,
    pub dirs: Vec<PathBuf>,
}

/// Checks that every part of the output at `output` is there, complete and of this plan
/// (`files`, their part by [`assign`], `fingerprint`), and returns where each file is.
pub(crate) fn gather(
    output: &Path,
    files: &[(String, Range<usize>)],
    bytes: &[u64],
    fingerprint: &str,
) -> Result<Gathered, ConversionError> {
    let invalid = |message: String| ConversionError::from(CheckpointError::invalid(output, message));
    let count = match find_counts(output)?.as_slice() {
        [] => {
            return Err(invalid(format!(
                "--finalize: no part found beside it (`{}.part-K-of-N` directories, written by --part K/N)",
                output
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            )));
        }
        [count] => *count,
        counts => {
            return Err(invalid(format!(
                "--finalize: parts of different counts ({counts:?}) beside it; remove the stale ones"
            )));
        }
    };
    let part_of = assign(bytes, count);
    let mut missing = Vec::new();
    let mut gathered = Gathered {
        files: Vec::new(),
        dirs: Vec::new(),
    };
    for index in 0..count {
        let part = Part { index, count };
        let dir = part.dir(output);
        // Only what --part wrote is gathered: a real directory, not a symlink to one elsewhere.
        match std::fs::symlink_metadata(&dir) {
            Err(_) => {
                missing.push(part.to_string());
                continue;
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(invalid(format!(
                    "--finalize: {} is not a directory written by --part {part} (a symlink or another kind of file); \
                     remove it and rerun --part {part}",
                    dir.display()
                )));
            }
            Ok(_) if !dir.join(MANIFEST).exists() => {
                missing.push(part.to_string());
                continue;
            }
            Ok(_) => {}
        }
        let text = open_named(&dir.join(MANIFEST))?.read_text(DocumentKind::Config)?;
        let manifest: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CheckpointError::invalid(dir.join(MANIFEST), format!("not a part manifest: {e}")))?;
        let wrong = |message: String| ConversionError::from(CheckpointError::invalid(dir.join(MANIFEST), message));
        if manifest.get("fingerprint").and_then(|f| f.as_str()) != Some(fingerprint)
            || manifest.get("part").and_then(|p| p.as_u64()) != Some(index as u64)
            || manifest.get("parts").and_then(|p| p.as_u64()) != Some(count as u64)
        {
            return Err(wrong(format!(
                "part {part} of another conversion (its plan, options or part differ from this one's); rerun \
                 --part {part} with the same arguments"
            )));
        }
        let listed = manifest.get("files").and_then(|f| f.as_object());
        let expected: Vec<&str> = files
            .iter()
            .zip(&part_of)
            .filter(|(_, p)| **p == index)
            .map(|((name, _), _)| name.as_str())
            .collect();
        let listed_names: Vec<&str> = listed.map_or_else(Vec::new, |l| l.keys().map(String::as_str).collect());
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_unstable();
        if listed_names != expected_sorted {
            return Err(wrong(format!(
                "part {part} lists {listed_names:?}, this plan gives it {expected_sorted:?}"
            )));
        }
        for name in expected {
            let path = dir.join(name);
            let size = listed.and_then(|l| l.get(name)).and_then(|s| s.as_u64());
            // A file --part wrote: regular, and linked nowhere else (a hard link to another file
            // would put that file into the output).
            let found = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.is_file() && single_link(m))
                .map(|m| m.len());
            if found.is_none() || found != size {
                return Err(wrong(format!(
                    "part {part} is incomplete: {name} has {} bytes, its manifest says {}; rerun --part {part}",
                    found.map_or_else(|| "no".to_string(), |f| f.to_string()),
                    size.map_or_else(|| "nothing".to_string(), |s| s.to_string()),
                )));
            }
            gathered.files.push((name.to_string(), path));
        }
        gathered.dirs.push(dir);
    }
    if !missing.is_empty() {
        return Err(invalid(format!(
            "--finalize: {} of {count} part(s) missing: {} (run --part K/N for each)",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(gathered)
}

#[cfg(unix)]
fn single_link(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::MetadataExt::nlink(meta) == 1
}

#[cfg(not(unix))]
fn single_link(_: &std::fs::Metadata) -> bool {
    true
}

/// Puts `gathered`'s files into `out`: a hard link, or a copy across filesystems.
pub(crate) fn link_into(out: &OutputDir, gathered: &Gathered) -> Result<(), CheckpointError> {
    for (name, source) in &gathered.files {
        let target = out.path(name);
        if std::fs::hard_link(source, &target).is_err() {
            std::fs::copy(source, &target).map_err(|e| CheckpointError::io(source, e))?;
        }
    }
    Ok(())
}

/// Removes the part directories once the output is committed (their files live on in it).
pub(crate) fn remove_parts(gathered: &Gathered, protected: &Protected) -> Vec<String> {
    gathered
        .dirs
        .iter()
        .filter_map(|dir| {
            protected
                .remove(dir, None)
                .err()
                .map(|e| format!("{}: {e}", dir.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("0/4", Some((0, 4)))]
    #[case("3/4", Some((3, 4)))]
    #[case("4/4", None)]
    #[case("0/0", None)]
    #[case("1", None)]
    #[case("-1/2", None)]
    #[case("0/10001", None)]
    fn parts_parse(#[case] text: &str, #[case] expected: Option<(usize, usize)>) {
        assert_eq!(Part::parse(text).ok().map(|p| (p.index, p.count)), expected, "{text}");
    }

    #[rstest]
    #[case(&[10, 10, 10, 10], 2, &[0, 1, 0, 1])]
    #[case(&[40, 10, 10, 10, 10], 2, &[0, 1, 1, 1, 1])]
    #[case(&[1, 2, 3], 5, &[2, 1, 0])]
    #[case(&[5, 5], 1, &[0, 0])]
    fn files_go_largest_first_to_the_least_loaded_part(
        #[case] sizes: &[u64],
        #[case] count: usize,
        #[case] expected: &[usize],
    ) {
        assert_eq!(assign(sizes, count), expected);
    }

    #[test]
    fn part_directories_are_siblings_of_the_output() {
        let part = Part { index: 2, count: 8 };
        assert_eq!(
            part.dir(Path::new("/data/out/llama")),
            Path::new("/data/out/llama.part-2-of-8")
        );
    }
}
