//! What may be read: the files of an input directory under the containment rule, and files a
//! user names on the command line, each a regular file checked on its open handle.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::limits::DocumentKind;
use crate::CheckpointError;

/// A file's identity: device and inode (what a path cannot fake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId {
                dev: metadata.dev(),
                ino: metadata.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            FileId { dev: 0, ino: 0 }
        }
    }
}

/// What a file type is, in words, for a message: "a FIFO (named pipe)", "a directory", ...
pub fn describe(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// A directory entry as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Nothing by that name.
    Missing,
    /// A regular file the policy lets us read (at `resolved`, symlinks followed).
    Readable { resolved: PathBuf },
    /// Something that is not read, and why: "a FIFO (named pipe)", "a symlink to
    /// `/proc/self/environ`, outside the input", "a dangling symlink (to `x`)".
    Refused { reason: String },
}

impl Entry {
    /// Whether something is there (readable or not).
    pub fn exists(&self) -> bool {
        !matches!(self, Entry::Missing)
    }

    /// Whether it is a directory (not followed through a symlink).
    pub fn is_directory(&self) -> bool {
        matches!(self, Entry::Refused { reason } if reason == "a directory")
    }
}

/// An opened input file: its handle (a regular file, checked on the handle), size and identity.
///
/// Every read of an input file's bytes after it is opened goes through it
/// ([`Opened::read_exact_at`], [`Opened::read_text`], [`Opened::copy_to`]): bounded by the size
/// it had when opened and checked, so a file another process cuts or rewrites meanwhile is a
/// [`CheckpointError::InputChanged`] naming it, never a signal (as a memory map's page past the
/// new end would be) nor bytes silently taken from two versions of the file.
pub struct Opened {
    pub file: File,
    pub size: u64,
    pub id: FileId,
    /// Its permission bits (Unix; 0o644 elsewhere).
    pub mode: u32,
    /// The path as the user would name it (the input directory joined with the name).
    pub path: PathBuf,
    /// Its size and change times when opened, against which [`Opened::check_unchanged`] checks.
    stamp: Stamp,
}

/// What of a file's state changes when its bytes do: size, modification and status-change times
/// (the change time moves on every write and truncation, and cannot be set back by the writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(metadata: &Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stamp {
                size: metadata.len(),
                modified: (metadata.mtime(), metadata.mtime_nsec()),
                changed: (metadata.ctime(), metadata.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let modified = (metadata.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (d.as_secs() as i64, i64::from(d.subsec_nanos())));
            Stamp {
                size: metadata.len(),
                modified,
                changed: modified,
            }
        }
    }
}

impl Opened {
    /// Reads bytes `offset..offset + out.len()` of the file into `out` (`pread`: the file's
    /// position and any other reader are untouched). A range past the size the file had when
    /// opened, or a read that comes back short (the file cut since), is
    /// [`CheckpointError::InputChanged`] or [`CheckpointError::Io`], naming the file.
    pub fn read_exact_at(&self, offset: u64, out: &mut [u8]) -> Result<(), CheckpointError> {
        let end = offset.checked_add(out.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(CheckpointError::invalid(
                &self.path,
                format!(
                    "bytes {offset}..{} are past the end of the file ({} bytes)",
                    offset.saturating_add(out.len() as u64),
                    self.size
                ),
            ));
        }
        let mut filled = 0;
        while filled < out.len() {
            match read_at(&self.file, &mut out[filled..], offset + filled as u64) {
                Ok(0) => {
                    return Err(self.changed(format!(
                        "{} bytes when opened, but a read at byte {} found its end",
                        self.size,
                        offset + filled as u64
                    )));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CheckpointError::io(&self.path, e)),
            }
        }
        Ok(())
    }

    /// Whether the file is as it was opened (size, modification and change times, on the
    /// handle): a conversion checks this after its last read, so a file rewritten in place at
    /// the same size, whose bytes no read could tell apart, is refused too.
    pub fn check_unchanged(&self) -> Result<(), CheckpointError> {
        let now = self.file.metadata().map_err(|e| CheckpointError::io(&self.path, e))?;
        let now = Stamp::of(&now);
        if now == self.stamp {
            return Ok(());
        }
        Err(self.changed(if now.size == self.stamp.size {
            format!("{} bytes, rewritten in place since it was opened", self.size)
        } else {
            format!("{} bytes when opened, {} now", self.stamp.size, now.size)
        }))
    }

    fn changed(&self, detail: String) -> CheckpointError {
        CheckpointError::InputChanged {
            path: self.path.clone(),
            detail,
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, out, offset)
}

#[cfg(windows)]
fn read_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, out, offset)
}

impl Opened {
    /// The whole file as text, refusing more than `kind`'s limit (checked on the handle's size,
    /// then again while reading: a file that grows after the open is still cut off).
    pub fn read_text(mut self, kind: DocumentKind) -> Result<String, CheckpointError> {
        let limit = kind.limit();
        let too_big = |size: u64| CheckpointError::invalid(&self.path, kind.too_big(size));
        if self.size > limit {
            return Err(too_big(self.size));
        }
        // Room for the whole file up front: growing by doubling would hold up to twice its size.
        let mut bytes = Vec::with_capacity(self.size as usize);
        (&mut self.file)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CheckpointError::io(&self.path, e))?;
        if bytes.len() as u64 != self.size && bytes.len() as u64 <= limit {
            return Err(self.changed(format!("{} bytes when opened, {} read", self.size, bytes.len())));
        }
        self.check_unchanged()?;
        document_text(&self.path, bytes, kind)
    }
}

/// The text of a document of `kind` whose bytes were read (from a file, or an object store's
/// object), checked as [`Opened::read_text`] checks a file's: within the kind's limit, UTF-8.
pub fn document_text(path: &Path, bytes: Vec<u8>, kind: DocumentKind) -> Result<String, CheckpointError> {
    if bytes.len() as u64 > kind.limit() {
        return Err(CheckpointError::invalid(path, kind.too_big(bytes.len() as u64)));
    }
    String::from_utf8(bytes).map_err(|e| {
        CheckpointError::invalid(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

impl Opened {
    /// Copies the file to the new file `destination`, byte for byte, with the output's mode
    /// (0644) narrowed to the source's: a copy never widens access (a file only its owner could
    /// read stays so).
    pub fn copy_to(self, destination: &Path) -> Result<(), CheckpointError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mode = 0o644 & self.mode;
            options.mode(mode);
            std::fs::Permissions::from_mode(mode)
        };
        let mut written = options
            .open(destination)
            .map_err(|e| CheckpointError::io(destination, e))?;
        // One byte past the size the file was opened at: a file that grew is caught too.
        let copied = io::copy(&mut (&self.file).take(self.size + 1), &mut written)
            .map_err(|e| CheckpointError::io(&self.path, e))?;
        if copied != self.size {
            return Err(self.changed(format!("{} bytes when opened, {copied} read", self.size)));
        }
        self.check_unchanged()?;
        // Exactly that mode, whatever the umask made of it.
        #[cfg(unix)]
        std::fs::set_permissions(destination, mode).map_err(|e| CheckpointError::io(destination, e))?;
        Ok(())
    }
}

/// The most entries a checkpoint directory is listed with: a training checkpoint of 10,000
/// ranks has 10,001 files.
pub const MAX_ENTRIES: usize = 100_000;

/// A checkpoint directory, the one way its files are opened.
#[derive(Debug, Clone)]
pub struct InputDir {
    /// As the user named it: what messages show.
    given: PathBuf,
    /// Canonical: what containment is checked against.
    root: PathBuf,
    /// The Hugging Face cache's `blobs/` beside the snapshot the input is, if it is one.
    blobs: Option<PathBuf>,
}

impl InputDir {
    /// The input directory at `dir`, which must exist and be a directory (after symlinks).
    pub fn new(dir: &Path) -> Result<InputDir, CheckpointError> {
        let root = std::fs::canonicalize(dir).map_err(|e| CheckpointError::io(dir, e))?;
        let metadata = std::fs::metadata(&root).map_err(|e| CheckpointError::io(dir, e))?;
        if !metadata.is_dir() {
            return Err(CheckpointError::invalid(
                dir,
                format!("{}, not a checkpoint directory", describe(metadata.file_type())),
            ));
        }
        Ok(InputDir {
            given: dir.to_path_buf(),
            blobs: cache_blobs(&root),
            root,
        })
    }

    /// The directory as the user named it.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// The canonical directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `name` in the directory, as the user would name it (for messages).
    pub fn join(&self, name: &str) -> PathBuf {
        self.given.join(name)
    }

    /// Whether `resolved` (canonical) is a place files may be read from.
    fn allows(&self, resolved: &Path) -> bool {
        resolved.starts_with(&self.root) || self.blobs.as_deref().is_some_and(|b| resolved.starts_with(b))
    }

    /// What the entry `name` of the directory is, under the containment rule.
    pub fn entry(&self, name: &str) -> Entry {
        let path = self.root.join(name);
        let refused = |reason: String| Entry::Refused { reason };
        let link = match path.symlink_metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Entry::Missing,
            Err(e) => return refused(format!("unreadable ({e})")),
        };
        if !link.file_type().is_symlink() {
            return if link.is_file() {
                Entry::Readable { resolved: path }
            } else {
                refused(describe(link.file_type()).to_string())
            };
        }
        let target = std::fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let resolved = match std::fs::canonicalize(&path) {
            Ok(resolved) => resolved,
            Err(e) if is_loop(&e) => return refused(format!("a symlink loop (through `{target}`)")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return refused(format!("a dangling symlink (to `{target}`)"));
            }
            Err(e) => return refused(format!("a symlink to `{target}` that does not resolve ({e})")),
        };
        if !self.allows(&resolved) {
            return refused(format!("a symlink to `{}`, outside the input", resolved.display()));
        }
        match std::fs::symlink_metadata(&resolved) {
            Ok(metadata) if metadata.is_file() => Entry::Readable { resolved },
            Ok(metadata) => refused(format!(
                "a symlink to {} (`{}`)",
                describe(metadata.file_type()),
                resolved.display()
            )),
            Err(e) => refused(format!("a symlink to `{}` ({e})", resolved.display())),
        }
    }

    /// Opens the entry `name` for reading, refusing anything [`Self::entry`] refuses.
    pub fn open(&self, name: &str) -> Result<Opened, CheckpointError> {
        let path = self.join(name);
        let opened = match self.entry(name) {
            Entry::Readable { resolved } => open_regular(&resolved, &path)?,
            Entry::Missing => return Err(CheckpointError::invalid(path, "missing (No such file or directory)")),
            Entry::Refused { reason } => return Err(CheckpointError::invalid(path, format!("not read: {reason}"))),
        };
        // The check above was on paths; a link swapped in since then is caught on the handle.
        match opened_path(&opened.file) {
            Some(actual) if !self.allows(&actual) => Err(CheckpointError::invalid(
                path,
                format!(
                    "not read: `{}`, outside the input (swapped in while opening)",
                    actual.display()
                ),
            )),
            _ => Ok(opened),
        }
    }

    /// The names of the directory's entries (not `.` and `..`), sorted; more than
    /// [`MAX_ENTRIES`] is refused (no checkpoint directory has a fraction of that).
    pub fn names(&self) -> Result<Vec<String>, CheckpointError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| CheckpointError::io(&self.given, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CheckpointError::io(&self.given, e))?;
            if names.len() == MAX_ENTRIES {
                return Err(CheckpointError::invalid(
                    &self.given,
                    format!("more than {MAX_ENTRIES} entries: not a checkpoint directory (not listed)"),
                ));
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// Opens a file the user named (a `config` command's argument): any regular file on a real
/// filesystem, symlinks followed.
pub fn open_named(path: &Path) -> Result<Opened, CheckpointError> {
    open_regular(path, path).map_err(|e| match e {
        CheckpointError::Io { path, source } => CheckpointError::invalid(path, format!("cannot read: {source}")),
        other => other,
    })
}

/// Where an open file really is (Linux: `/proc/self/fd/N`), when that can be told.
fn opened_path(file: &File) -> Option<PathBuf> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok()
            .filter(|p| p.is_absolute())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = file;
        None
    }
}

/// `…/models--org--name/blobs` when `root` is `…/models--org--name/snapshots/REV`.
fn cache_blobs(root: &Path) -> Option<PathBuf> {
    let snapshots = root.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let blobs = std::fs::canonicalize(snapshots.parent()?.join("blobs")).ok()?;
    blobs.is_dir().then_some(blobs)
}

fn is_loop(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// Opens `resolved` without blocking and checks the handle: a regular file, on a filesystem
/// holding files (not a kernel pseudo-filesystem). `shown` names it.
fn open_regular(resolved: &Path, shown: &Path) -> Result<Opened, CheckpointError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: opening a FIFO swapped in after the check must not hang.
        options.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(resolved).map_err(|e| CheckpointError::io(shown, e))?;
    let metadata = file.metadata().map_err(|e| CheckpointError::io(shown, e))?;
    if !metadata.is_file() {
        return Err(CheckpointError::invalid(
            shown,
            format!("{}, not a regular file: not read", describe(metadata.file_type())),
        ));
    }
    if let Some(filesystem) = pseudo_filesystem(&file) {
        return Err(CheckpointError::invalid(
            shown,
            format!("a file of the kernel's {filesystem} filesystem, not a checkpoint file: not read"),
        ));
    }
    let size = metadata.len();
    #[cfg(unix)]
    let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
    #[cfg(not(unix))]
    let mode = 0o644;
    Ok(Opened {
        mode,
        id: FileId::of(&metadata),
        stamp: Stamp::of(&metadata),
        file,
        size,
        path: shown.to_path_buf(),
    })
}

/// The name of the kernel pseudo-filesystem `file` is on, if it is on one: their "regular"
/// files (`/proc/self/environ`, `/sys/...`) are views of the kernel, never checkpoint data.
fn pseudo_filesystem(file: &File) -> Option<&'static str> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        const PSEUDO: &[(i64, &str)] = &[
            (0x9fa0, "proc"),
            (0x6265_6572, "sysfs"),
            (0x6462_6720, "debugfs"),
            (0x7472_6163, "tracefs"),
            (0x7365_6373, "securityfs"),
            (0x0027_e0eb, "cgroup"),
            (0x6367_7270, "cgroup2"),
            (0xcafe_4a11, "bpf"),
            (0x1cd1, "devpts"),
            (0x6265_6570, "configfs"),
            (0xde5e_81e4, "efivarfs"),
            (0x6165_676c, "pstore"),
            (0x4249_4e4d, "binfmt_misc"),
            (0xf97c_ff8c, "selinuxfs"),
            (0x6573_5543, "fusectl"),
        ];
        let kind = rustix::fs::fstatfs(file).ok()?.f_type as i64;
        PSEUDO.iter().find(|(magic, _)| *magic == kind).map(|(_, name)| *name)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = file;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = crate::scratch::scratch("policy-read", name);
        std::fs::create_dir_all(dir.join("in")).unwrap();
        dir
    }

    pub(crate) fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    }

    fn reason(entry: Entry) -> String {
        match entry {
            Entry::Refused { reason } => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn entries_are_described_truly() {
        let root = scratch("kinds");
        let input = root.join("in");
        std::fs::write(input.join("plain"), "x").unwrap();
        std::fs::write(root.join("outside"), "secret").unwrap();
        std::fs::create_dir(input.join("sub")).unwrap();
        std::fs::write(input.join("sub/inner"), "y").unwrap();
        symlink("sub/inner", input.join("inside-link")).unwrap();
        symlink("../outside", input.join("outside-link")).unwrap();
        symlink("/proc/self/environ", input.join("environ")).unwrap();
        symlink("nowhere", input.join("dangling")).unwrap();
        symlink("loop-b", input.join("loop-a")).unwrap();
        symlink("loop-a", input.join("loop-b")).unwrap();
        symlink("sub", input.join("dir-link")).unwrap();
        mkfifo(&input.join("fifo"));
        let dir = InputDir::new(&input).unwrap();
        assert!(matches!(dir.entry("plain"), Entry::Readable { .. }));
        assert!(matches!(dir.entry("inside-link"), Entry::Readable { .. }));
        assert_eq!(dir.entry("absent"), Entry::Missing);
        assert_eq!(reason(dir.entry("sub")), "a directory");
        assert_eq!(reason(dir.entry("fifo")), "a FIFO (named pipe)");
        assert!(reason(dir.entry("outside-link")).contains("outside the input"));
        assert!(reason(dir.entry("environ")).contains("outside the input"));
        assert_eq!(reason(dir.entry("dangling")), "a dangling symlink (to `nowhere`)");
        assert!(reason(dir.entry("loop-a")).starts_with("a symlink loop"));
        assert!(reason(dir.entry("dir-link")).starts_with("a symlink to a directory"));
        // Opening a FIFO fails on the handle's type, not by hanging.
        let error = open_named(&input.join("fifo")).err().unwrap().to_string();
        assert!(error.contains("a FIFO"), "{error}");
    }

    #[test]
    fn a_cache_snapshot_reads_its_blobs_and_nothing_else() {
        let root = scratch("cache");
        let model = root.join("models--org--name");
        let snapshot = model.join("snapshots/abc");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(model.join("blobs")).unwrap();
        std::fs::write(model.join("blobs/hash"), "weights").unwrap();
        std::fs::write(model.join("refs"), "abc").unwrap();
        symlink("../../blobs/hash", snapshot.join("model.safetensors")).unwrap();
        symlink("../../refs", snapshot.join("LICENSE")).unwrap();
        let dir = InputDir::new(&snapshot).unwrap();
        assert!(matches!(dir.entry("model.safetensors"), Entry::Readable { .. }));
        assert!(reason(dir.entry("LICENSE")).contains("outside the input"));
        // The same layout not under `snapshots/` gets no blobs.
        let plain = InputDir::new(&root).unwrap();
        assert!(plain.blobs.is_none());
    }

    #[test]
    fn pseudo_filesystems_and_devices_are_never_read() {
        let error = open_named(Path::new("/proc/self/environ")).err().unwrap().to_string();
        assert!(error.contains("proc filesystem"), "{error}");
        let error = open_named(Path::new("/dev/zero")).err().unwrap().to_string();
        assert!(error.contains("a character device"), "{error}");
    }

    /// How a test changes a file after it was opened.
    #[derive(Clone, Copy, Debug)]
    enum Change {
        Cut,
        Grow,
        RewriteSame,
    }

    /// How a test reads the opened file.
    #[derive(Clone, Copy, Debug)]
    enum Reading {
        Text,
        Copy,
        /// `read_exact_at` of the bytes it had, then the check a conversion makes after its last
        /// read.
        AtThenCheck,
    }

    #[rstest::rstest]
    fn a_file_changed_after_it_was_opened_is_an_error_naming_it(
        #[values(Change::Cut, Change::Grow, Change::RewriteSame)] change: Change,
        #[values(Reading::Text, Reading::Copy, Reading::AtThenCheck)] reading: Reading,
    ) {
        use std::io::Write;
        let root = scratch(&format!("changed-{change:?}-{reading:?}"));
        let path = root.join("in/tokenizer.json");
        let text = "{\"x\": 1}\n".repeat(400);
        std::fs::write(&path, &text).unwrap();
        // A change within the filesystem's timestamp granularity of the file's last write would
        // keep its change time (the rule's documented limit): the file is older than that here.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let opened = InputDir::new(&root.join("in")).unwrap().open("tokenizer.json").unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        match change {
            Change::Cut => file.set_len(100).unwrap(),
            Change::Grow => {
                std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).unwrap();
                file.write_all(b" ").unwrap();
            }
            Change::RewriteSame => {
                file.set_len(0).unwrap();
                file.write_all(text.as_bytes()).unwrap();
            }
        }
        let result = match reading {
            Reading::Text => opened.read_text(DocumentKind::Config).map(drop),
            Reading::Copy => opened.copy_to(&root.join("copy")),
            Reading::AtThenCheck => {
                let mut out = vec![0u8; text.len()];
                (opened.read_exact_at(0, &mut out)).and_then(|()| opened.check_unchanged())
            }
        };
        match result {
            Err(CheckpointError::InputChanged { path: named, .. }) => assert_eq!(named, path),
            other => panic!("{change:?} then {reading:?}: {other:?}"),
        }
    }

    #[test]
    fn a_document_is_bounded_on_the_handle() {
        let root = scratch("bound");
        let limit = DocumentKind::Config.limit();
        // Sparse: past the limit on paper, nothing on disk.
        let file = std::fs::File::create(root.join("in/big")).unwrap();
        file.set_len(limit + 1).unwrap();
        let dir = InputDir::new(&root.join("in")).unwrap();
        let error = dir
            .open("big")
            .unwrap()
            .read_text(DocumentKind::Config)
            .unwrap_err()
            .to_string();
        let expected = format!("{} bytes, more than the {limit} a config document may have", limit + 1);
        assert!(error.contains(&expected), "{error}");
        file.set_len(100).unwrap();
        assert_eq!(
            dir.open("big").unwrap().read_text(DocumentKind::Config).unwrap().len(),
            100
        );
    }

    #[test]
    fn a_directory_of_too_many_entries_is_not_listed() {
        let root = scratch("many");
        let dir = root.join("in");
        for i in 0..=MAX_ENTRIES {
            std::fs::File::create(dir.join(i.to_string())).unwrap();
        }
        let error = InputDir::new(&dir).unwrap().names().unwrap_err().to_string();
        assert!(error.contains("more than 100000 entries"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
