//! One conversion split across machines: `--part K/N` writes the K-th of N disjoint sets of the
//! output's tensor files, `--finalize` checks that every part is there and complete and
//! assembles the output with its documents.
//!
//! * **Which files**: the output's files are the ones a whole conversion writes (same plan, same
//!   sharding), given to parts greedily by size, largest first, each to the part with the fewest
//!   bytes so far (ties: the lower part): deterministic, and balanced by bytes within one file.
//! * **A part** is written beside the output, `NAME.part-K-of-N`, through [`OutputDir`] like any
//!   output, its last file `part.json`: its index, the count, its files with their sizes, and
//!   the plan's fingerprint (a hash of the formats, documents, file names and every tensor's
//!   name, dtype and shape), so parts of different conversions are never assembled together. A
//!   part without its manifest is missing.
//!   - On a filesystem it is a directory that appears only complete, and a retried part replaces
//!     its previous attempt the same way (`--force` semantics, always).
//!   - Beside an object-store output it is a prefix: its files are uploaded as they are written
//!     (`Options::remote_output`, whose target the caller points at the part's prefix after
//!     deleting the previous attempt's manifest, then everything else there), the manifest
//!     last. So an attempt killed half-way leaves no manifest, whatever the attempts before it.
//! * **`--finalize`** plans the same conversion (reading no tensor data), finds the parts
//!   ([`Beside`]: listing the parent directory or prefix), refuses ([`PartsError`]) when one is
//!   missing, incomplete, of another count or another plan, then builds the output (hard links
//!   to the parts' files, copies across filesystems; server-side copies in an object store),
//!   writes the documents and commits it (an object-store output's caller publishes them last);
//!   the parts are removed after the commit. Until then they stay, so a failed finalize can be
//!   retried.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::ConversionError;
use super::plan::OutputTensor;
use crate::CheckpointError;
use crate::destination::RemoteParts;
use crate::policy::{DocumentKind, OutputDir, Protected, open_named};

/// The manifest of a part, its last file.
pub const MANIFEST: &str = "part.json";

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

/// Why `--finalize` refused to assemble the output from its parts. Each names the output or
/// the part's manifest, and the part (`K/N`) to rerun.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error(
        "{}: --finalize: no part found beside it (`{name}.part-K-of-N`, written by --part K/N)",
        .output.display()
    )]
    NoPart { output: PathBuf, name: String },
    #[error(
        "{}: --finalize: parts of different counts ({counts:?}) beside it; remove the stale ones",
        .output.display()
    )]
    MixedCounts { output: PathBuf, counts: Vec<usize> },
    /// Parts never written, or whose manifest is absent (a part killed or failing before its
    /// end writes none).
    #[error(
        "{}: --finalize: {} of {count} part(s) missing: {} (run --part K/N for each)",
        .output.display(), .missing.len(), list(.missing)
    )]
    Missing {
        output: PathBuf,
        count: usize,
        missing: Vec<Part>,
    },
    #[error(
        "{}: --finalize: {} is not a directory written by --part {part} (a symlink or another kind of file); \
         remove it and rerun --part {part}",
        .output.display(), .dir.display()
    )]
    NotAPart { output: PathBuf, dir: PathBuf, part: Part },
    #[error("{}: not a part manifest: {reason}", .manifest.display())]
    BadManifest { manifest: PathBuf, reason: String },
    #[error(
        "{}: part {part} of another conversion (its plan, options or part differ from this one's); rerun \
         --part {part} with the same arguments",
        .manifest.display()
    )]
    OtherConversion { manifest: PathBuf, part: Part },
    #[error("{}: part {part} lists {listed:?}, this plan gives it {expected:?}", .manifest.display())]
    OtherFiles {
        manifest: PathBuf,
        part: Part,
        listed: Vec<String>,
        expected: Vec<String>,
    },
    /// A file of the part is absent, of another size than its manifest says, or (locally) not
    /// the part's own.
    #[error(
        "{}: part {part} is incomplete: {file} has {} bytes, its manifest says {}; rerun --part {part}",
        .manifest.display(),
        .found.map_or_else(|| "no".to_string(), |f| f.to_string()),
        .expected.map_or_else(|| "nothing".to_string(), |s| s.to_string())
    )]
    Incomplete {
        manifest: PathBuf,
        part: Part,
        file: String,
        found: Option<u64>,
        expected: Option<u64>,
    },
}

fn list(parts: &[Part]) -> String {
    parts.iter().map(Part::to_string).collect::<Vec<_>>().join(", ")
}

/// Where the parts of an output are: directories beside a local output, or prefixes beside an
/// object-store output (named by the local path standing for it, `output`).
#[derive(Clone, Copy)]
pub(crate) enum Beside<'a> {
    Local,
    Remote(&'a dyn RemoteParts),
}

/// The file name of `output`, what its parts are named after.
fn name_of(output: &Path) -> String {
    output
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

impl Beside<'_> {
    /// The names beside `output` starting with `start`.
    fn names(self, output: &Path, start: &str) -> Result<Vec<String>, CheckpointError> {
        match self {
            Beside::Remote(parts) => parts.names_beside(start).map_err(|e| CheckpointError::io(output, e)),
            Beside::Local => {
                let parent = match output.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let mut names = Vec::new();
                let entries = std::fs::read_dir(parent).map_err(|e| CheckpointError::io(parent, e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| CheckpointError::io(parent, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(start) {
                        names.push(name);
                    }
                }
                Ok(names)
            }
        }
    }

    /// The counts of the parts beside `output`.
    fn counts(self, output: &Path) -> Result<Vec<usize>, CheckpointError> {
        let prefix = format!("{}.part-", name_of(output));
        let mut counts = Vec::new();
        for name in self.names(output, &prefix)? {
            if let Some(rest) = name.strip_prefix(&prefix)
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

    /// The manifest of `part` of `output`, `None` when the part or its manifest is absent.
    fn manifest(self, output: &Path, part: Part) -> Result<Option<String>, ConversionError> {
        let dir = part.dir(output);
        let manifest = dir.join(MANIFEST);
        match self {
            Beside::Remote(parts) => Ok(parts
                .read(&name_of(&dir), MANIFEST, DocumentKind::Config.limit())
                .map_err(|e| CheckpointError::io(&manifest, e))?),
            Beside::Local => {
                // Only what --part wrote is gathered: a real directory, not a symlink to one.
                match std::fs::symlink_metadata(&dir) {
                    Err(_) => return Ok(None),
                    Ok(meta) if !meta.is_dir() => {
                        return Err(PartsError::NotAPart {
                            output: output.to_path_buf(),
                            dir,
                            part,
                        }
                        .into());
                    }
                    Ok(_) if !manifest.exists() => return Ok(None),
                    Ok(_) => {}
                }
                Ok(Some(open_named(&manifest)?.read_text(DocumentKind::Config)?))
            }
        }
    }

    /// The sizes of the files of `part` of `output` that count as its own (`names`).
    fn sizes(self, output: &Path, part: Part, names: &[&str]) -> Result<BTreeMap<String, u64>, CheckpointError> {
        let dir = part.dir(output);
        match self {
            Beside::Remote(parts) => parts.files(&name_of(&dir)).map_err(|e| CheckpointError::io(&dir, e)),
            Beside::Local => Ok(names
                .iter()
                .filter_map(|name| {
                    // A file --part wrote: regular, and linked nowhere else (a hard link to
                    // another file would put that file into the output).
                    let meta = std::fs::symlink_metadata(dir.join(name)).ok()?;
                    (meta.is_file() && single_link(&meta)).then(|| (name.to_string(), meta.len()))
                })
                .collect()),
        }
    }
}

/// What `--finalize` found: each part with its files and their sizes.
pub(crate) struct Gathered {
    pub parts: Vec<(Part, Vec<(String, u64)>)>,
}

/// The files a plan splits into parts, and the plan's identity.
pub(crate) struct PlannedFiles<'a> {
    /// Each file's name and the range of the plan's outputs it holds.
    pub files: &'a [(String, Range<usize>)],
    /// Each file's size in bytes ([`file_bytes`]), which decides its part ([`assign`]).
    pub bytes: &'a [u64],
    /// The plan's [`fingerprint`].
    pub fingerprint: &'a str,
}

/// Checks that every part of the output at `output` is there (`beside` it), complete and of
/// this plan (`planned`), and returns their files.
pub(crate) fn gather(output: &Path, beside: Beside, planned: &PlannedFiles) -> Result<Gathered, ConversionError> {
    let &PlannedFiles {
        files,
        bytes,
        fingerprint,
    } = planned;
    let count = match beside.counts(output)?.as_slice() {
        [] => {
            return Err(PartsError::NoPart {
                output: output.to_path_buf(),
                name: name_of(output),
            }
            .into());
        }
        [count] => *count,
        counts => {
            return Err(PartsError::MixedCounts {
                output: output.to_path_buf(),
                counts: counts.to_vec(),
            }
            .into());
        }
    };
    let part_of = assign(bytes, count);
    let mut missing = Vec::new();
    let mut gathered = Gathered { parts: Vec::new() };
    for index in 0..count {
        let part = Part { index, count };
        let manifest_path = part.dir(output).join(MANIFEST);
        let Some(text) = beside.manifest(output, part)? else {
            missing.push(part);
            continue;
        };
        let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| PartsError::BadManifest {
            manifest: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.get("fingerprint").and_then(|f| f.as_str()) != Some(fingerprint)
            || manifest.get("part").and_then(|p| p.as_u64()) != Some(index as u64)
            || manifest.get("parts").and_then(|p| p.as_u64()) != Some(count as u64)
        {
            return Err(PartsError::OtherConversion {
                manifest: manifest_path,
                part,
            }
            .into());
        }
        let listed = manifest.get("files").and_then(|f| f.as_object());
        let expected: Vec<&str> = files
            .iter()
            .zip(&part_of)
            .filter(|(_, p)| **p == index)
            .map(|((name, _), _)| name.as_str())
            .collect();
        let listed_names: Vec<String> = listed.map_or_else(Vec::new, |l| l.keys().cloned().collect());
        let mut expected_sorted: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
        expected_sorted.sort_unstable();
        if listed_names != expected_sorted {
            return Err(PartsError::OtherFiles {
                manifest: manifest_path,
                part,
                listed: listed_names,
                expected: expected_sorted,
            }
            .into());
        }
        let found = beside.sizes(output, part, &expected)?;
        let mut held = Vec::new();
        for name in expected {
            let size = listed.and_then(|l| l.get(name)).and_then(|s| s.as_u64());
            let found = found.get(name).copied();
            if found.is_none() || found != size {
                return Err(PartsError::Incomplete {
                    manifest: manifest_path,
                    part,
                    file: name.to_string(),
                    found,
                    expected: size,
                }
                .into());
            }
            held.push((name.to_string(), found.unwrap_or_default()));
        }
        gathered.parts.push((part, held));
    }
    if !missing.is_empty() {
        return Err(PartsError::Missing {
            output: output.to_path_buf(),
            count,
            missing,
        }
        .into());
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

/// Puts `gathered`'s files into `out` (the output at `output`): locally a hard link, or a
/// copy across filesystems; remotely a server-side copy into the publication.
pub(crate) fn link_into(
    out: &OutputDir,
    output: &Path,
    beside: Beside,
    gathered: &Gathered,
) -> Result<(), CheckpointError> {
    for (part, files) in &gathered.parts {
        let dir = part.dir(output);
        match beside {
            Beside::Remote(parts) => parts
                .adopt(&name_of(&dir), files)
                .map_err(|e| CheckpointError::io(&dir, e))?,
            Beside::Local => {
                for (name, _) in files {
                    let (source, target) = (dir.join(name), out.path(name));
                    if std::fs::hard_link(&source, &target).is_err() {
                        std::fs::copy(&source, &target).map_err(|e| CheckpointError::io(&source, e))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Removes the local part directories once the output is committed (their files live on in it).
pub(crate) fn remove_parts(output: &Path, gathered: &Gathered, protected: &Protected) -> Vec<String> {
    gathered
        .parts
        .iter()
        .filter_map(|(part, _)| {
            let dir = part.dir(output);
            protected
                .remove(&dir, None)
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
