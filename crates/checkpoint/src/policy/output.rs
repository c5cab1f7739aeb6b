//! The output directory of a conversion: built in a hidden staging directory beside its final
//! path and moved into place only once complete, so the output path holds either nothing, the
//! previous output, or the complete new one — also when the process is killed at any moment.
//!
//! * A staging directory is `.{name}.partial-{pid}-{token}` (hidden, so never mistaken for the
//!   output; `token` is 16 random hex digits, so no name a user chose is taken for one) and is held under an exclusive `flock` for its whole life. The kernel drops the lock
//!   when its process dies, so a later run can tell a killed run's leftovers (lock free) from a
//!   live run's staging (locked) and removes only the former, under the policy's removal rule.
//!   On a filesystem without locks nothing is swept.
//! * `--force` swaps the new directory in with one `renameat2(RENAME_EXCHANGE)` where the
//!   filesystem supports it, then removes the old output: at every instant the output path holds
//!   a complete checkpoint. Elsewhere the old output is first moved aside (locked, to
//!   `.{name}.replaced-{pid}-{token}`), the new one renamed in, then the old one removed; a run killed
//!   between the two renames leaves the old output aside, and the next run puts it back.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::protect::{Protected, RemoveError};
use super::read::FileId;
use crate::CheckpointError;

/// An output directory built beside its final path and renamed into place by [`commit`]; dropped
/// uncommitted, it is removed (with the parent directories it created), so nothing appears at
/// the output path unless everything succeeded.
///
/// [`commit`]: OutputDir::commit
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    /// The staging directory, opened and exclusively locked: it marks the directory as live.
    _lock: Option<File>,
    force: bool,
    committed: bool,
    /// What the conversion must never remove (the input).
    protected: Protected,
    /// This run's own directories: the staging directory and the parents it created.
    own: Own,
}

/// The directories a run created, by identity, so that only they are ever removed as its own.
#[derive(Debug, Clone)]
struct Own {
    /// A key in the registry of live outputs.
    key: u64,
    staging: (PathBuf, FileId),
    /// Parent directories created for the output, outermost first.
    parents: Vec<(PathBuf, FileId)>,
}

impl Own {
    /// Removes the staging directory, then the parents it created while empty. A writer thread
    /// may still be adding files when this runs for a signal, so the removal is retried briefly.
    fn remove(&self, protected: &Protected) {
        let (staging, id) = &self.staging;
        for _ in 0..50 {
            match protected.remove(staging, Some(*id)) {
                Err(RemoveError::Io(e)) if e.kind() != io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => break,
            }
        }
        for (parent, id) in self.parents.iter().rev() {
            if parent.symlink_metadata().is_ok_and(|m| FileId::of(&m) == *id) {
                // Only while empty: something else may have been put there meanwhile.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// The outputs being built by this process, for [`abandon_live_outputs`].
static LIVE: Mutex<Vec<(Own, Protected)>> = Mutex::new(Vec::new());

/// Keys of [`LIVE`] entries.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// Set once the process is being interrupted: no output may be committed any more.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn live() -> MutexGuard<'static, Vec<(Own, Protected)>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes every output this process is still building (staging directories and the parents
/// created for them) and forbids any further commit; returns the output paths abandoned. What a
/// SIGINT or SIGTERM handler calls before exiting: an output being committed finishes first
/// (the commit holds the same lock), so the output path holds the old output or the new one.
pub fn abandon_live_outputs() -> Vec<PathBuf> {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let mut live = live();
    let mut abandoned = Vec::new();
    for (own, protected) in live.drain(..) {
        own.remove(&protected);
        abandoned.push(own.staging.0);
    }
    abandoned
}

/// The hidden sibling names of `name`'s staging and set-aside directories: a prefix, then the
/// process id and a random token (`{pid}-{16 hex digits}`), so that no name a user chose is
/// taken for a leftover.
fn staging_prefix(name: &str) -> String {
    format!(".{name}.partial-")
}

fn aside_prefix(name: &str) -> String {
    format!(".{name}.replaced-")
}

/// `{pid}-{16 hex digits}`, unpredictable and unique within the process.
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` is seeded from the OS's randomness (per thread, then stepped).
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    format!("{}-{:016x}", std::process::id(), hasher.finish())
}

/// Whether `file_name` is `prefix` followed by a suffix [`unique_suffix`] makes.
fn is_generated(file_name: &str, prefix: &str) -> bool {
    let Some(suffix) = file_name.strip_prefix(prefix) else {
        return false;
    };
    let Some((pid, token)) = suffix.split_once('-') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && token.len() == 16
        && token.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What [`OutputDir::create`] does with a target that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuses it: an error naming the target.
    Refuse,
    /// Replaces it, once the new output is complete (`--force`).
    Replace,
}

impl OutputDir {
    /// Starts an output at `target`; an existing `target` is an error unless `existing` says
    /// to replace it, and then it must be removable without touching anything `protected` holds
    /// (checked now, and again before it is replaced). Leftovers of killed runs for the same
    /// target are cleaned up first, under the same rule.
    pub fn create(target: &Path, existing: Existing, protected: &Protected) -> Result<Self, CheckpointError> {
        let force = existing == Existing::Replace;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CheckpointError::invalid(target, "not a directory name"))?
            .to_string();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let parents = create_parents(&parent)?;
        let fail = |error: CheckpointError| {
            remove_created(&parents);
            Err(error)
        };
        // First, as it may put a killed run's old output back in place.
        sweep(&parent, &name, target, protected);
        if target.symlink_metadata().is_ok() {
            if !force {
                return fail(CheckpointError::OutputExists {
                    path: target.to_path_buf(),
                });
            }
            if let Err(refusal) = protected.check_removable(target) {
                return fail(CheckpointError::RemovalRefused {
                    path: target.to_path_buf(),
                    reason: refusal.to_string(),
                });
            }
        }
        loop {
            let staging = parent.join(format!("{}{}", staging_prefix(&name), unique_suffix()));
            match create_private_dir(&staging) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return fail(CheckpointError::io(&staging, e)),
            }
            match lock_live(&staging) {
                Ok(Locked::Held(lock, id)) => {
                    let own = Own {
                        key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
                        staging: (staging.clone(), id),
                        parents,
                    };
                    live().push((own.clone(), protected.clone()));
                    return Ok(OutputDir {
                        target: target.to_path_buf(),
                        staging,
                        _lock: lock,
                        force,
                        committed: false,
                        protected: protected.clone(),
                        own,
                    });
                }
                // Another run's sweep took it for stale between our mkdir and our lock.
                Ok(Locked::Lost) => continue,
                Err(e) => return fail(CheckpointError::io(&staging, e)),
            }
        }
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

    /// Moves the finished output to its final path (with `force`, replacing what is there, once
    /// it is proven removable). If the old output cannot then be removed entirely, the new one
    /// is in place and the error says where the rest of the old one is.
    pub fn commit(mut self) -> Result<PathBuf, CheckpointError> {
        let mut live = live();
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(CheckpointError::Interrupted);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.staging, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| CheckpointError::io(&self.staging, e))?;
        }
        let occupied = self.target.symlink_metadata().ok();
        if occupied.is_some() && !self.force {
            return Err(CheckpointError::OutputExists {
                path: self.target.clone(),
            });
        }
        let mut leftover = None;
        if let Some(old) = occupied {
            self.protected
                .check_removable(&self.target)
                .map_err(|refusal| CheckpointError::RemovalRefused {
                    path: self.target.clone(),
                    reason: refusal.to_string(),
                })?;
            let old_at = replace(&self.staging, &self.target, Strategy::best())?;
            if let Err(e) = self.protected.remove(&old_at, Some(FileId::of(&old))) {
                leftover = Some((old_at, e.to_string()));
            }
        } else {
            rename_new(&self.staging, &self.target).map_err(|e| CheckpointError::io(&self.target, e))?;
        }
        self.committed = true;
        live.retain(|(own, _)| own.key != self.own.key);
        match leftover {
            None => Ok(self.target.clone()),
            Some((left, reason)) => Err(CheckpointError::OldOutputLeft {
                output: self.target.clone(),
                left,
                reason,
            }),
        }
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            live().retain(|(own, _)| own.key != self.own.key);
            // Still locked by us: no sweep of another run touches it meanwhile.
            self.own.remove(&self.protected);
        }
    }
}

/// Creates the missing directories of `dir`, outermost first; returns the ones this call
/// created (a directory another process created meanwhile is not ours).
fn create_parents(dir: &Path) -> Result<Vec<(PathBuf, FileId)>, CheckpointError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && a.symlink_metadata().is_err())
        .collect();
    let mut created = Vec::new();
    for path in missing.into_iter().rev() {
        match std::fs::create_dir(path) {
            Ok(()) => {
                if let Ok(metadata) = path.symlink_metadata() {
                    created.push((path.to_path_buf(), FileId::of(&metadata)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) => {
                remove_created(&created);
                return Err(CheckpointError::io(path, e));
            }
        }
    }
    Ok(created)
}

/// Removes directories [`create_parents`] created, innermost first, while they are empty and
/// still the ones created.
fn remove_created(created: &[(PathBuf, FileId)]) {
    for (path, id) in created.iter().rev() {
        if path.symlink_metadata().is_ok_and(|m| FileId::of(&m) == *id) {
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// A directory only this user can enter until the output is complete.
fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
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

/// Puts `staging` at `target` (which exists); returns where the old `target` now is (hidden
/// beside it), for the caller to remove once the new one is in place.
fn replace(staging: &Path, target: &Path, strategy: Strategy) -> Result<PathBuf, CheckpointError> {
    if strategy == Strategy::Exchange {
        match exchange(staging, target) {
            // The old output now sits at the staging path.
            Ok(()) => return Ok(staging.to_path_buf()),
            // The filesystem cannot exchange: fall back.
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(CheckpointError::io(target, e)),
        }
    }
    let parent = staging.parent().unwrap_or(Path::new("."));
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    let aside = loop {
        let aside = parent.join(format!("{}{}", aside_prefix(name), unique_suffix()));
        if aside.symlink_metadata().is_err() {
            break aside;
        }
    };
    // Locked while aside, so that another run's sweep does not take it for a killed run's.
    let _lock = lock_existing(target);
    std::fs::rename(target, &aside).map_err(|e| CheckpointError::io(target, e))?;
    if let Err(e) = std::fs::rename(staging, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(CheckpointError::io(target, e));
    }
    Ok(aside)
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

/// The outcome of locking a fresh staging directory.
enum Locked {
    /// Ours (the handle holding the lock, none where directories cannot be locked; and the
    /// directory's identity).
    Held(Option<File>, FileId),
    /// Another process holds the lock or removed the directory first (a sweep that took it
    /// for stale): try another name.
    Lost,
}

/// Opens and exclusively locks the fresh directory `dir`.
fn lock_live(dir: &Path) -> io::Result<Locked> {
    let file = File::open(dir)?;
    let held = FileId::of(&file.metadata()?);
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Locked::Lost),
        // A filesystem without locks (some network and FUSE ones): the staging directory
        // goes unlocked, and sweeps, which cannot lock it either, leave it alone.
        Err(std::fs::TryLockError::Error(_)) => return Ok(Locked::Held(None, held)),
    }
    // Locked: a sweep can no longer start on it. Is it still the directory at `dir`?
    match dir.symlink_metadata() {
        Ok(m) if FileId::of(&m) == held => Ok(Locked::Held(Some(file), held)),
        _ => Ok(Locked::Lost),
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
/// set-aside old output is put back if `target` is missing (else removed). Only names this tool
/// generates are considered; a directory whose lock is held belongs to a live run, and one that
/// is or holds part of the input, or a mount point, is left alone whatever its name.
fn sweep(parent: &Path, name: &str, target: &Path, protected: &Protected) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let (staging, aside) = (staging_prefix(name), aside_prefix(name));
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let is_aside = is_generated(file_name, &aside);
        if !is_aside && !is_generated(file_name, &staging) {
            continue;
        }
        let path = entry.path();
        // Only directories: a lock on a file or symlink proves nothing about a run.
        let Ok(metadata) = path.symlink_metadata() else {
            continue;
        };
        if !metadata.is_dir() || protected.check_removable(&path).is_err() {
            continue;
        }
        let Ok(lock) = File::open(&path) else { continue };
        if lock.try_lock().is_err() {
            continue;
        }
        if is_aside && target.symlink_metadata().is_err() {
            let _ = std::fs::rename(&path, target);
        } else {
            let _ = protected.remove(&path, Some(FileId::of(&metadata)));
        }
        drop(lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn scratch(name: &str) -> PathBuf {
        crate::scratch::scratch("output", name)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    const DEAD: &str = "999999-0123456789abcdef";

    /// The output directory for `target` of a conversion whose input holds nothing near it.
    fn unprotected_output(target: &Path, existing: Existing) -> OutputDir {
        OutputDir::create(target, existing, &Protected::nothing()).unwrap()
    }

    /// Creates the directory `dir` holding the one file `file` (its contents: its name).
    fn directory_holding(dir: &Path, file: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), file).unwrap();
    }

    #[rstest]
    #[case::exchange(Strategy::Exchange)]
    #[case::aside(Strategy::Aside)]
    fn replacing_keeps_only_the_new_output(#[case] strategy: Strategy) {
        let root = scratch(&format!("replace-{strategy:?}"));
        let (target, staging) = (root.join("out"), root.join(format!(".out.partial-{DEAD}")));
        directory_holding(&target, "old");
        directory_holding(&staging, "new");
        let old = replace(&staging, &target, strategy).unwrap();
        Protected::nothing().remove(&old, None).unwrap();
        assert_eq!(entries(&target), ["new"]);
        assert_eq!(entries(&root), ["out"], "nothing left beside the output");
    }

    #[test]
    fn a_file_output_is_replaced_too() {
        let root = scratch("replace-file");
        let target = root.join("out");
        std::fs::write(&target, "a file").unwrap();
        let output = unprotected_output(&target, Existing::Replace);
        output.commit().unwrap();
        assert!(target.is_dir());
        assert_eq!(entries(&root), ["out"]);
    }

    #[test]
    fn a_sweep_removes_dead_staging_and_keeps_live_staging() {
        let root = scratch("sweep");
        let target = root.join("out");
        let dead = root.join(format!(".out.partial-{DEAD}"));
        std::fs::create_dir_all(dead.join("sub")).unwrap();
        // A live run: its staging directory is locked.
        let live = unprotected_output(&target, Existing::Refuse);
        live.write_text("x", "y").unwrap();
        // Names this tool does not generate stay, whatever they resemble.
        let kept = [
            ".other.partial-1-0",
            "out.partial-1-0",
            ".out.partial-1-0",
            ".out.partial-1-0123456789ABCDEF",
        ];
        for name in kept {
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        let second = unprotected_output(&target, Existing::Refuse);
        assert!(!dead.exists(), "a dead run's staging is removed");
        assert!(live.path("x").is_file(), "a live run's staging is left alone");
        drop(second);
        drop(live);
        let mut expected = kept.to_vec();
        expected.sort();
        assert_eq!(entries(&root), expected);
    }

    #[test]
    fn a_sweep_never_removes_the_input() {
        let root = scratch("sweep-input");
        let target = root.join("out");
        // An input that happens to carry a generated name, and one holding an input file.
        let input = root.join(format!(".out.partial-{DEAD}"));
        directory_holding(&input, "config.json");
        let holder = root.join(".out.replaced-999999-fedcba9876543210");
        std::fs::create_dir_all(&holder).unwrap();
        std::fs::hard_link(input.join("config.json"), holder.join("linked")).unwrap();
        let protected = Protected::of_input(&input).unwrap();
        drop(OutputDir::create(&target, Existing::Refuse, &protected).unwrap());
        assert!(input.join("config.json").is_file() && holder.join("linked").is_file());
        assert!(!target.exists(), "the holder was not put back as the output");
    }

    #[test]
    fn a_sweep_puts_a_set_aside_output_back() {
        let root = scratch("restore");
        let target = root.join("out");
        let aside = root.join(format!(".out.replaced-{DEAD}"));
        directory_holding(&aside, "old");
        drop(unprotected_output(&target, Existing::Replace));
        assert_eq!(entries(&target), ["old"], "the killed run's old output is back");
        // With an output in place, a stale set-aside copy is removed instead.
        std::fs::create_dir_all(&aside).unwrap();
        drop(unprotected_output(&target, Existing::Replace));
        assert_eq!(entries(&root), ["out"]);
    }

    #[test]
    fn commit_refuses_an_output_that_appeared_meanwhile() {
        let root = scratch("appeared");
        let target = root.join("out");
        let output = unprotected_output(&target, Existing::Refuse);
        std::fs::create_dir_all(&target).unwrap();
        assert!(matches!(output.commit(), Err(CheckpointError::OutputExists { .. })));
        assert_eq!(entries(&root), ["out"]);
    }

    #[test]
    fn parents_created_for_a_failed_output_are_removed() {
        let root = scratch("parents");
        let target = root.join("a/b/c/out");
        let output = unprotected_output(&target, Existing::Refuse);
        output.write_text("x", "y").unwrap();
        drop(output);
        assert!(entries(&root).is_empty(), "{:?}", entries(&root));
        // Committed, they stay.
        unprotected_output(&target, Existing::Refuse).commit().unwrap();
        assert!(target.is_dir());
    }

    #[test]
    fn force_never_removes_what_the_input_holds() {
        let root = scratch("force-input");
        let input = root.join("in");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(root.join("blob"), "weights").unwrap();
        std::os::unix::fs::symlink("../old/blob", input.join("model.safetensors")).unwrap();
        std::fs::create_dir_all(root.join("old")).unwrap();
        std::fs::rename(root.join("blob"), root.join("old/blob")).unwrap();
        let protected = Protected::of_input(&input).unwrap();
        let error = OutputDir::create(&root.join("old"), Existing::Replace, &protected)
            .err()
            .unwrap();
        assert!(matches!(error, CheckpointError::RemovalRefused { .. }), "{error}");
        assert!(error.to_string().contains("model.safetensors"), "{error}");
        assert_eq!(std::fs::read(root.join("old/blob")).unwrap(), b"weights");
        assert_eq!(entries(&root), ["in", "old"]);
    }
}
