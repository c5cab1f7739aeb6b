//! What may be removed: never the input, anything in it or on its path, and never across a
//! mount point. [`Protected`] holds the identities (device, inode) of everything an input
//! reads or is made of; every removal a conversion makes goes through [`Protected::remove`].

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::read::FileId;
use crate::CheckpointError;

/// How many entries of an input tree are recorded. A checkpoint directory has tens; past this
/// the record is incomplete and every removal is refused rather than risked.
const MAX_INPUT_ENTRIES: usize = 100_000;

/// The identities a conversion must never remove: every directory on the input's path, every
/// entry of the input tree and every target its symlinks resolve to.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// Identity → the input path it was found at (named in refusals).
    ids: HashMap<FileId, PathBuf>,
    /// The input tree had more than [`MAX_INPUT_ENTRIES`] entries: nothing may be removed.
    incomplete: Option<PathBuf>,
}

/// Why a removal is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `entry` (inside what would be removed) is the input's `input`.
    HoldsInput { entry: PathBuf, input: PathBuf },
    /// `entry` is a mount point: removing through it would reach another filesystem.
    MountPoint { entry: PathBuf },
    /// The input tree was too large to record.
    InputTooLarge { input: PathBuf },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::HoldsInput { entry, input } if entry == input => {
                write!(f, "`{}` is part of the input", entry.display())
            }
            Refusal::HoldsInput { entry, input } => write!(
                f,
                "`{}` is the input's `{}` (the same file or directory)",
                entry.display(),
                input.display()
            ),
            Refusal::MountPoint { entry } => write!(
                f,
                "`{}` is a mount point (a removal never crosses into another mount)",
                entry.display()
            ),
            Refusal::InputTooLarge { input } => write!(
                f,
                "the input `{}` has more than {MAX_INPUT_ENTRIES} entries, too many to prove a removal spares it",
                input.display()
            ),
        }
    }
}

impl Protected {
    /// Nothing protected: for writers with no input (synthetic checkpoints, tests).
    pub fn nothing() -> Protected {
        Protected::default()
    }

    /// Records the input at `input`: the path as given (a symlink itself), every directory from
    /// the filesystem root down to it, every entry of its tree (not following symlinks into
    /// other trees) and every symlink's final target.
    pub fn of_input(input: &Path) -> Result<Protected, CheckpointError> {
        let mut protected = Protected::default();
        if let Ok(link) = input.symlink_metadata() {
            protected.add(&link, input);
        }
        let root = std::fs::canonicalize(input).map_err(|e| CheckpointError::io(input, e))?;
        for ancestor in root.ancestors() {
            if let Ok(metadata) = ancestor.symlink_metadata() {
                protected.add(&metadata, ancestor);
            }
        }
        let mut pending = vec![root.clone()];
        let mut seen = 0usize;
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_INPUT_ENTRIES {
                    protected.incomplete = Some(input.to_path_buf());
                    return Ok(protected);
                }
                let path = entry.path();
                let Ok(metadata) = path.symlink_metadata() else {
                    continue;
                };
                protected.add(&metadata, &path);
                if metadata.is_dir() {
                    pending.push(path);
                } else if metadata.file_type().is_symlink()
                    && let Ok(target) = std::fs::metadata(&path)
                {
                    protected.add(&target, &path);
                }
            }
        }
        Ok(protected)
    }

    fn add(&mut self, metadata: &std::fs::Metadata, path: &Path) {
        self.ids
            .entry(FileId::of(metadata))
            .or_insert_with(|| path.to_path_buf());
    }

    /// Whether `path` (not followed) is part of the input.
    pub fn holds(&self, path: &Path) -> bool {
        path.symlink_metadata()
            .is_ok_and(|m| self.ids.contains_key(&FileId::of(&m)))
    }

    /// Checks that `path` and everything under it (symlinks not followed) may be removed: no
    /// entry is part of the input, none is a mount point, and `path` itself is not one.
    pub fn check_removable(&self, path: &Path) -> Result<(), Refusal> {
        if let Some(input) = &self.incomplete {
            return Err(Refusal::InputTooLarge { input: input.clone() });
        }
        let Ok(top) = path.symlink_metadata() else {
            return Ok(());
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mount = mount_of(parent);
        let mut pending = vec![(path.to_path_buf(), top)];
        while let Some((entry, metadata)) = pending.pop() {
            if let Some(input) = self.ids.get(&FileId::of(&metadata)) {
                return Err(Refusal::HoldsInput {
                    entry,
                    input: input.clone(),
                });
            }
            if !metadata.is_dir() {
                continue;
            }
            if mount.is_some() && mount_of(&entry) != mount {
                return Err(Refusal::MountPoint { entry });
            }
            let Ok(children) = std::fs::read_dir(&entry) else {
                continue;
            };
            for child in children.flatten() {
                let child = child.path();
                if let Ok(metadata) = child.symlink_metadata() {
                    pending.push((child, metadata));
                }
            }
        }
        Ok(())
    }

    /// Removes `path` (a tree, a file or a symlink, never followed) after
    /// [`Self::check_removable`]; `expected`, when given, is the identity recorded when this
    /// process created or checked it, and a different file now at `path` is left alone.
    pub fn remove(&self, path: &Path, expected: Option<FileId>) -> Result<(), RemoveError> {
        let metadata = match path.symlink_metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RemoveError::Io(e)),
        };
        if expected.is_some_and(|id| id != FileId::of(&metadata)) {
            return Err(RemoveError::Replaced);
        }
        self.check_removable(path).map_err(RemoveError::Refused)?;
        if metadata.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        }
        .map_err(RemoveError::Io)
    }
}

/// Why [`Protected::remove`] removed nothing, or not everything.
#[derive(Debug)]
pub enum RemoveError {
    /// Refused by the policy.
    Refused(Refusal),
    /// Something other than what this process recorded is at the path now.
    Replaced,
    Io(io::Error),
}

impl std::fmt::Display for RemoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoveError::Refused(refusal) => refusal.fmt(f),
            RemoveError::Replaced => f.write_str("replaced by another file since it was created"),
            RemoveError::Io(e) => e.fmt(f),
        }
    }
}

/// The mount `path` is on (Linux's mount id, which tells bind mounts of one filesystem apart;
/// elsewhere the device), or `None` when it cannot be read.
fn mount_of(path: &Path) -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
        if let Ok(stat) = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)
            && StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::MNT_ID)
        {
            return Some(stat.stx_mnt_id);
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        path.symlink_metadata().ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        crate::scratch::scratch("policy-protect", name)
    }

    #[test]
    fn what_the_input_reads_is_never_removed() {
        let root = scratch("cache");
        // A Hugging Face cache: the snapshot's files link to blobs.
        let model = root.join("models--org--name");
        std::fs::create_dir_all(model.join("snapshots/rev")).unwrap();
        std::fs::create_dir_all(model.join("blobs")).unwrap();
        std::fs::write(model.join("blobs/hash"), "weights").unwrap();
        symlink("../../blobs/hash", model.join("snapshots/rev/model.safetensors")).unwrap();
        let protected = Protected::of_input(&model.join("snapshots/rev")).unwrap();
        let refusal = protected.check_removable(&model.join("blobs")).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::HoldsInput { entry, .. } if entry.ends_with("blobs/hash")),
            "{refusal}"
        );
        // Every ancestor of the input, and the input itself.
        assert!(protected.check_removable(&model).is_err());
        assert!(protected.check_removable(&model.join("snapshots/rev")).is_err());
        // A hard link to an input file, anywhere.
        std::fs::create_dir_all(root.join("old")).unwrap();
        std::fs::hard_link(model.join("blobs/hash"), root.join("old/linked")).unwrap();
        assert!(protected.check_removable(&root.join("old")).is_err());
        std::fs::remove_file(root.join("old/linked")).unwrap();
        protected.check_removable(&root.join("old")).unwrap();
        protected.remove(&root.join("old"), None).unwrap();
        assert!(!root.join("old").exists());
        assert_eq!(std::fs::read(model.join("blobs/hash")).unwrap(), b"weights");
    }

    #[test]
    fn a_replaced_path_is_left_alone() {
        let root = scratch("replaced");
        std::fs::create_dir_all(root.join("ours")).unwrap();
        let id = FileId::of(&root.join("ours").symlink_metadata().unwrap());
        std::fs::remove_dir(root.join("ours")).unwrap();
        std::fs::create_dir_all(root.join("ours")).unwrap();
        std::fs::write(root.join("ours/theirs"), "x").unwrap();
        // A new directory may reuse the inode; only a different one is proof of replacement.
        let now = FileId::of(&root.join("ours").symlink_metadata().unwrap());
        if now != id {
            assert!(matches!(
                Protected::nothing().remove(&root.join("ours"), Some(id)),
                Err(RemoveError::Replaced)
            ));
            assert!(root.join("ours/theirs").exists());
        }
    }
}
