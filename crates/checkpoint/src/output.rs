//! The output directory of a conversion: built in a hidden staging directory beside its final
//! path and moved into place only once complete, so the output path holds either nothing, the
//! previous output, or the complete new one — also when the process is killed at any moment.
//!
//! * A staging directory is `.{name}.partial-{pid}-{n}` (hidden, so never mistaken for the
//!   output) and is held under an exclusive `flock` for its whole life. The kernel drops the lock
//!   when its process dies, so a later run can tell a killed run's leftovers (lock free) from a
//!   live run's staging (locked) and removes only the former. On a filesystem without locks
//!   nothing is swept.
//! * `--force` swaps the new directory in with one `renameat2(RENAME_EXCHANGE)` where the
//!   filesystem supports it, then removes the old output: at every instant the output path holds
//!   a complete checkpoint. Elsewhere the old output is first moved aside (locked, to
//!   `.{name}.replaced-{pid}-{n}`), the new one renamed in, then the old one removed; a run killed
//!   between the two renames leaves the old output aside, and the next run puts it back.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::CheckpointError;

/// An output directory built beside its final path and renamed into place by [`commit`]; dropped
/// uncommitted, it is removed, so nothing appears at the output path unless everything succeeded.
///
/// [`commit`]: OutputDir::commit
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    /// The staging directory, opened and exclusively locked: it marks the directory as live.
    _lock: Option<File>,
    force: bool,
    committed: bool,
}

/// The hidden sibling names of `name`'s staging and set-aside directories.
fn staging_prefix(name: &str) -> String {
    format!(".{name}.partial-")
}

fn aside_prefix(name: &str) -> String {
    format!(".{name}.replaced-")
}

impl OutputDir {
    /// Starts an output at `target`; an existing `target` is an error unless `force`. Leftovers of
    /// killed runs for the same target are cleaned up first.
    pub fn create(target: &Path, force: bool) -> Result<Self, CheckpointError> {
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CheckpointError::invalid(target, "not a directory name"))?
            .to_string();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| CheckpointError::io(&parent, e))?;
        // First, as it may put a killed run's old output back in place.
        sweep(&parent, &name, target);
        if target.symlink_metadata().is_ok() && !force {
            return Err(CheckpointError::OutputExists {
                path: target.to_path_buf(),
            });
        }
        for attempt in 0u32.. {
            let staging = parent.join(format!("{}{}-{attempt}", staging_prefix(&name), std::process::id()));
            match std::fs::create_dir(&staging) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CheckpointError::io(&staging, e)),
            }
            match lock_live(&staging) {
                Ok(Locked::Held(lock)) => {
                    return Ok(OutputDir {
                        target: target.to_path_buf(),
                        staging,
                        _lock: lock,
                        force,
                        committed: false,
                    });
                }
                // Another run's sweep took it for stale between our mkdir and our lock.
                Ok(Locked::Lost) => continue,
                Err(e) => return Err(CheckpointError::io(&staging, e)),
            }
        }
        unreachable!("u32 attempts")
    }

    /// Where to write a file of the output.
    pub fn path(&self, file: &str) -> PathBuf {
        self.staging.join(file)
    }

    /// Writes a small text file of the output.
    pub fn write_text(&self, file: &str, text: &str) -> Result<(), CheckpointError> {
        let path = self.path(file);
        std::fs::write(&path, text).map_err(|e| CheckpointError::io(&path, e))?;
        crate::writer::readable_by_all(&path)
    }

    /// Moves the finished output to its final path (with `force`, replacing what is there).
    pub fn commit(mut self) -> Result<PathBuf, CheckpointError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.staging, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| CheckpointError::io(&self.staging, e))?;
        }
        let occupied = self.target.symlink_metadata().is_ok();
        if occupied && !self.force {
            return Err(CheckpointError::OutputExists {
                path: self.target.clone(),
            });
        }
        if occupied {
            replace(&self.staging, &self.target, Strategy::best())?;
        } else {
            rename_new(&self.staging, &self.target).map_err(|e| CheckpointError::io(&self.target, e))?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            // Still locked by us: no sweep of another run touches it meanwhile.
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// How an existing output is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// One atomic exchange of the two directories (Linux `renameat2(RENAME_EXCHANGE)`).
    Exchange,
    /// The old output moved aside, the new one renamed in, the old one removed.
    Aside,
}

impl Strategy {
    fn best() -> Self {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Strategy::Exchange
        } else {
            Strategy::Aside
        }
    }
}

/// Puts `staging` at `target` (which exists), removing the old `target` only once the new one is
/// in place.
fn replace(staging: &Path, target: &Path, strategy: Strategy) -> Result<(), CheckpointError> {
    if strategy == Strategy::Exchange {
        match exchange(staging, target) {
            Ok(()) => {
                // The old output now sits at the staging path, hidden; a failed removal leaves it
                // there for the next run's sweep.
                let _ = remove_any(staging);
                return Ok(());
            }
            // The filesystem cannot exchange: fall back.
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(CheckpointError::io(target, e)),
        }
    }
    let parent = staging.parent().unwrap_or(Path::new("."));
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    let (aside, _lock) = (0u32..)
        .map(|n| parent.join(format!("{}{}-{n}", aside_prefix(name), std::process::id())))
        .find(|p| p.symlink_metadata().is_err())
        .map(|p| (p, lock_existing(target)))
        .expect("u32 names");
    std::fs::rename(target, &aside).map_err(|e| CheckpointError::io(target, e))?;
    if let Err(e) = std::fs::rename(staging, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(CheckpointError::io(target, e));
    }
    let _ = remove_any(&aside);
    Ok(())
}

/// Whether a rename flag failed because the filesystem (or platform) lacks it.
fn unsupported(e: &io::Error) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::io::Errno;
        let code = e.raw_os_error();
        if [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP]
            .iter()
            .any(|errno| code == Some(errno.raw_os_error()))
        {
            return true;
        }
    }
    e.kind() == io::ErrorKind::Unsupported
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Renames `staging` to `target`, failing if something appeared at `target` meanwhile (a plain
/// rename would silently replace an empty directory).
fn rename_new(staging: &Path, target: &Path) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, staging, CWD, target, RenameFlags::NOREPLACE) {
            Err(e) if unsupported(&e.into()) => {}
            other => return other.map_err(io::Error::from),
        }
    }
    std::fs::rename(staging, target)
}

/// Removes a directory tree, or a file or symlink (an old output may be either).
fn remove_any(path: &Path) -> io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// The outcome of locking a fresh staging directory.
enum Locked {
    /// Ours (the handle holding the lock; none where directories cannot be locked).
    Held(Option<File>),
    /// Another process holds the lock or removed the directory first (a sweep that took it
    /// for stale): try another name.
    Lost,
}

/// Opens and exclusively locks the fresh directory `dir`.
fn lock_live(dir: &Path) -> io::Result<Locked> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(dir)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Locked::Lost),
            // A filesystem without locks (some network and FUSE ones): the staging directory
            // goes unlocked, and sweeps, which cannot lock it either, leave it alone.
            Err(std::fs::TryLockError::Error(_)) => return Ok(Locked::Held(None)),
        }
        // Locked: a sweep can no longer start on it. Is it still the directory at `dir`?
        let (held, at_path) = (file.metadata()?, dir.symlink_metadata());
        match at_path {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => Ok(Locked::Held(Some(file))),
            _ => Ok(Locked::Lost),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(Locked::Held(None))
    }
}

/// Locks an existing output directory while it is set aside (best effort: a file output or a
/// platform without directory locks goes unlocked).
fn lock_existing(dir: &Path) -> Option<File> {
    let file = File::open(dir).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Cleans up after killed runs writing `target`: their staging directories are removed, and a
/// set-aside old output is put back if `target` is missing (else removed). Directories whose lock
/// is held belong to a live run and are left alone.
fn sweep(parent: &Path, name: &str, target: &Path) {
    #[cfg(unix)]
    {
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        let (staging, aside) = (staging_prefix(name), aside_prefix(name));
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            let is_aside = file_name.starts_with(&aside);
            if !file_name.starts_with(&staging) && !is_aside {
                continue;
            }
            let path = entry.path();
            // Only directories: a lock on a file or symlink proves nothing about a run.
            if !path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let Ok(lock) = File::open(&path) else { continue };
            if lock.try_lock().is_err() {
                continue;
            }
            if is_aside && target.symlink_metadata().is_err() {
                let _ = std::fs::rename(&path, target);
            } else {
                let _ = std::fs::remove_dir_all(&path);
            }
            drop(lock);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (parent, name, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("fastllm-output-{}", std::process::id()))
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[rstest]
    #[case::exchange(Strategy::Exchange)]
    #[case::aside(Strategy::Aside)]
    fn replacing_keeps_only_the_new_output(#[case] strategy: Strategy) {
        let root = scratch(&format!("replace-{strategy:?}"));
        let (target, staging) = (root.join("out"), root.join(".out.partial-1-0"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("old"), "old").unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("new"), "new").unwrap();
        replace(&staging, &target, strategy).unwrap();
        assert_eq!(entries(&target), ["new"]);
        assert_eq!(entries(&root), ["out"], "nothing left beside the output");
    }

    #[test]
    fn a_file_output_is_replaced_too() {
        let root = scratch("replace-file");
        let (target, staging) = (root.join("out"), root.join(".out.partial-1-0"));
        std::fs::write(&target, "a file").unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        replace(&staging, &target, Strategy::best()).unwrap();
        assert!(target.is_dir());
        assert_eq!(entries(&root), ["out"]);
    }

    #[test]
    fn a_sweep_removes_dead_staging_and_keeps_live_staging() {
        let root = scratch("sweep");
        let target = root.join("out");
        let dead = root.join(".out.partial-999999-0");
        std::fs::create_dir_all(dead.join("sub")).unwrap();
        // A live run: its staging directory is locked.
        let live = OutputDir::create(&target, false).unwrap();
        live.write_text("x", "y").unwrap();
        // Unrelated names stay.
        std::fs::create_dir_all(root.join(".other.partial-1-0")).unwrap();
        std::fs::create_dir_all(root.join("out.partial-1-0")).unwrap();
        let second = OutputDir::create(&target, false).unwrap();
        assert!(!dead.exists(), "a dead run's staging is removed");
        assert!(live.path("x").is_file(), "a live run's staging is left alone");
        assert!(root.join(".other.partial-1-0").exists() && root.join("out.partial-1-0").exists());
        drop(second);
        drop(live);
        assert_eq!(entries(&root), [".other.partial-1-0", "out.partial-1-0"]);
    }

    #[test]
    fn a_sweep_puts_a_set_aside_output_back() {
        let root = scratch("restore");
        let target = root.join("out");
        let aside = root.join(".out.replaced-999999-0");
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("old"), "old").unwrap();
        drop(OutputDir::create(&target, true).unwrap());
        assert_eq!(entries(&target), ["old"], "the killed run's old output is back");
        // With an output in place, a stale set-aside copy is removed instead.
        std::fs::create_dir_all(&aside).unwrap();
        drop(OutputDir::create(&target, true).unwrap());
        assert_eq!(entries(&root), ["out"]);
    }

    #[test]
    fn commit_refuses_an_output_that_appeared_meanwhile() {
        let root = scratch("appeared");
        let target = root.join("out");
        let output = OutputDir::create(&target, false).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        assert!(matches!(output.commit(), Err(CheckpointError::OutputExists { .. })));
        assert_eq!(entries(&root), ["out"]);
    }
}
