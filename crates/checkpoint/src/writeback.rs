//! Handing written bytes to the disk while the conversion goes on.
//!
//! Every output file is fsynced before the output is committed. Left to itself, the kernel keeps
//! a conversion's writes in the page cache (a 24 GiB machine does not start writing back 1 GB of
//! dirty pages), so the final fsync waited for the whole file: the disk idled while the
//! conversion computed, and the conversion waited while the disk wrote. Asking for the writeback
//! of each window as soon as it is written (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`,
//! which starts the writes and does not wait for them) overlaps the two; the fsync then waits
//! for the last window only. Elsewhere this is a no-op and the fsync does it all, as before.
//!
//! A failed request is ignored: it is a hint, and the fsync that follows every file reports any
//! error of the writes themselves.

use std::fs::File;
use std::io::Write;

/// Bytes written between two writeback requests: large enough that the requests cost nothing,
/// small enough that the disk starts early.
pub(crate) const WINDOW: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes of `file` at `offset` to disk, without waiting.
pub(crate) fn start(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain syscall on an open descriptor; it reads no memory of ours.
        unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// A file written from its start in order, whose bytes go to disk a [`WINDOW`] at a time.
pub(crate) struct WriteBehind {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Bytes whose writeback was asked for.
    requested: u64,
}

impl WriteBehind {
    pub(crate) fn new(file: File) -> Self {
        WriteBehind {
            file,
            written: 0,
            requested: 0,
        }
    }

    /// The file, its last window's writeback not yet asked for (the fsync that follows does it).
    pub(crate) fn into_inner(self) -> File {
        self.file
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.requested >= WINDOW {
            start(&self.file, self.requested, self.written - self.requested);
            self.requested = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_behind_holds_every_byte_and_asks_per_window() {
        let dir = crate::scratch::scratch("writeback", "file");
        let path = dir.join("file");
        let bytes: Vec<u8> = (0..(2 * WINDOW + 12345) as u32).map(|i| (i % 251) as u8).collect();
        let mut out = WriteBehind::new(File::create(&path).unwrap());
        // Writes of an odd size: windows end mid-write.
        for chunk in bytes.chunks(1_000_003) {
            out.write_all(chunk).unwrap();
        }
        assert_eq!(out.written, bytes.len() as u64);
        // At most a window is left to the fsync.
        assert!(
            out.requested > 0 && out.written - out.requested < WINDOW,
            "{}",
            out.requested
        );
        out.into_inner().sync_all().unwrap();
        let read = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read == bytes);
    }
}
