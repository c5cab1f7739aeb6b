//! Output files written straight to the disk, on a thread of their own.
//!
//! A buffered write costs the kernel a copy into the page cache and, at the fsync, the writeback
//! of every page: in profiles of an export, a third of its CPU time, spent on the thread that also
//! reads and casts. Opened with Linux's `O_DIRECT`, a file's bytes go from our buffers to the
//! device with no copy, and a thread of its own waits for them while the conversion prepares the
//! next chunk: the disk and the CPU work at once, and the fsync before the commit has nothing
//! left to write but metadata.
//!
//! `O_DIRECT` wants whole blocks from aligned memory at aligned offsets: the bytes are gathered
//! into [`CHUNK`]-sized, [`BLOCK`]-aligned buffers, and the file's last partial block is written
//! zero-padded, then cut to its length. A filesystem that refuses `O_DIRECT` (at the open or at
//! the first write: tmpfs, some network filesystems) gets the buffered writes of
//! [`crate::writeback::WriteBehind`] instead, on the same thread.

use std::fs::File;
use std::io::Write;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
#[cfg(target_os = "linux")]
use std::thread::JoinHandle;

use crate::writeback::WriteBehind;

#[cfg(target_os = "linux")]
/// The alignment `O_DIRECT` asks of memory, offsets and lengths (a page: at least any device's
/// logical block).
const BLOCK: usize = 4096;

#[cfg(target_os = "linux")]
/// Bytes handed to the writing thread at a time.
const CHUNK: usize = 4 << 20;

#[cfg(target_os = "linux")]
/// Chunks in all: one being filled, the others queued or being written.
const CHUNKS: usize = 3;

/// How a [`SequentialFile`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writing {
    /// `O_DIRECT` from a thread of its own where the filesystem allows it: the fastest, for
    /// three 4 MiB buffers and a thread.
    Direct,
    /// Buffered and written behind ([`WriteBehind`]) through [`SMALL_BUFFER`] bytes, on the
    /// caller's thread: for the many files of one output written at once, whose buffers and
    /// threads would otherwise grow with their number.
    Buffered,
}

/// The buffer of a [`Writing::Buffered`] file: large writes (a tensor's slice) pass through it
/// unbuffered, so it only gathers the small ones.
const SMALL_BUFFER: usize = 64 << 10;

/// A file written from its start in order (see the module doc).
pub(crate) enum SequentialFile {
    #[cfg(target_os = "linux")]
    Direct(Direct),
    Buffered(std::io::BufWriter<WriteBehind>),
}

impl SequentialFile {
    /// Creates (or truncates) `path` for writing as `writing` says.
    pub(crate) fn create(path: &Path, writing: Writing) -> std::io::Result<Self> {
        if writing == Writing::Buffered {
            return Self::buffered(path, SMALL_BUFFER);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(path);
            match opened {
                Ok(file) => return Ok(SequentialFile::Direct(Direct::new(file))),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        Self::buffered(path, 1 << 20)
    }

    /// Creates `path` for buffered writes through `buffer` bytes, whatever the filesystem allows.
    fn buffered(path: &Path, buffer: usize) -> std::io::Result<Self> {
        let file = File::create(path)?;
        Ok(SequentialFile::Buffered(std::io::BufWriter::with_capacity(
            buffer,
            WriteBehind::new(file),
        )))
    }

    /// Writes what is left and returns the file, every byte written (not yet synced).
    pub(crate) fn finish(self) -> std::io::Result<File> {
        match self {
            #[cfg(target_os = "linux")]
            SequentialFile::Direct(direct) => direct.finish(),
            SequentialFile::Buffered(buffered) => Ok(buffered.into_inner().map_err(|e| e.into_error())?.into_inner()),
        }
    }
}

impl Write for SequentialFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            #[cfg(target_os = "linux")]
            SequentialFile::Direct(direct) => direct.write(buf),
            SequentialFile::Buffered(buffered) => buffered.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            SequentialFile::Direct(_) => Ok(()),
            SequentialFile::Buffered(buffered) => buffered.flush(),
        }
    }
}

#[cfg(target_os = "linux")]
/// [`CHUNK`] bytes at a [`BLOCK`]-aligned address inside an owned allocation (which moving the
/// value does not move).
struct Aligned {
    memory: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Self {
        let memory = vec![0u8; CHUNK + BLOCK];
        let start = memory.as_ptr().align_offset(BLOCK);
        Aligned { memory, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.memory[self.start..self.start + CHUNK]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + CHUNK]
    }
}

#[cfg(target_os = "linux")]
/// A chunk handed to the writing thread, with how many of its bytes are the file's.
struct Filled {
    chunk: Aligned,
    len: usize,
}

#[cfg(target_os = "linux")]
/// The `O_DIRECT` writer: the caller fills chunks, a thread writes them.
pub(crate) struct Direct {
    chunk: Aligned,
    filled: usize,
    to_writer: Option<SyncSender<Filled>>,
    spare: Receiver<Aligned>,
    writer: Option<JoinHandle<std::io::Result<File>>>,
}

#[cfg(target_os = "linux")]
impl Direct {
    fn new(file: File) -> Self {
        let (to_writer, filled) = sync_channel::<Filled>(CHUNKS - 1);
        let (give_back, spare) = sync_channel::<Aligned>(CHUNKS - 1);
        for _ in 0..CHUNKS - 1 {
            give_back.send(Aligned::new()).expect("room for every chunk");
        }
        let writer = std::thread::spawn(move || write_chunks(file, filled, give_back));
        Direct {
            chunk: Aligned::new(),
            filled: 0,
            to_writer: Some(to_writer),
            spare,
            writer: Some(writer),
        }
    }

    /// Hands the chunk being filled to the writing thread and takes a written one back.
    fn hand_over(&mut self) -> std::io::Result<()> {
        // Waits while every other chunk is queued or being written.
        let sent = self.spare.recv().is_ok_and(|next| {
            let chunk = std::mem::replace(&mut self.chunk, next);
            let filled = Filled {
                chunk,
                len: std::mem::take(&mut self.filled),
            };
            self.to_writer.as_ref().is_some_and(|to| to.send(filled).is_ok())
        });
        if sent {
            return Ok(());
        }
        // The thread stopped on an error: that error is the answer.
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| std::io::Error::other("the writing thread stopped")))
    }

    fn join(&mut self) -> std::io::Result<File> {
        self.to_writer = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the writing thread panicked")),
            None => Err(std::io::Error::other("the writing thread already stopped")),
        }
    }

    fn finish(mut self) -> std::io::Result<File> {
        if self.filled > 0 {
            // The padding of the last block goes to disk: zeros, not a previous chunk's bytes.
            let (filled, padded) = (self.filled, self.filled.next_multiple_of(BLOCK));
            self.chunk.bytes_mut()[filled..padded].fill(0);
            self.hand_over()?;
        }
        self.join()
    }
}

#[cfg(target_os = "linux")]
impl Write for Direct {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK - self.filled);
        self.chunk.bytes_mut()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Nothing: [`Direct::finish`] writes the rest (a flush would write a partial block).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl Drop for Direct {
    fn drop(&mut self) {
        // Dropped unfinished (an error elsewhere): stop the thread; the file is discarded.
        if self.writer.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(target_os = "linux")]
/// The writing thread: each chunk at its place in the file, whole blocks (the last one padded,
/// then cut), and back to the caller for refilling.
fn write_chunks(file: File, chunks: Receiver<Filled>, give_back: SyncSender<Aligned>) -> std::io::Result<File> {
    let mut at = 0u64;
    let mut padded = false;
    for Filled { chunk, len } in chunks {
        let whole = len.next_multiple_of(BLOCK);
        write_at(&file, &chunk.bytes()[..whole], at)?;
        padded |= whole != len;
        at += len as u64;
        // The caller may be gone (it failed): the chunk is then dropped.
        let _ = give_back.send(chunk);
    }
    if padded {
        file.set_len(at)?;
    }
    Ok(file)
}

#[cfg(target_os = "linux")]
/// Writes `bytes` at `at`; a filesystem that accepted `O_DIRECT` at the open but refuses the
/// write gets it (and every later one) buffered.
fn write_at(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    match file.write_all_at(bytes, at) {
        #[cfg(target_os = "linux")]
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let flags = rustix::fs::fcntl_getfl(file)?;
            rustix::fs::fcntl_setfl(file, flags - rustix::fs::OFlags::DIRECT)?;
            file.write_all_at(bytes, at)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// The bytes of a file written in odd-sized writes, of each length around the chunk and block
    /// boundaries, read back: what was written, no padding.
    #[rstest]
    fn a_file_holds_what_was_written(
        #[values(0, 1, 4095, 4096, 4097, (4 << 20) - 1, 4 << 20, (4 << 20) + 1, (8 << 20) + 12_345)] len: usize,
        #[values(true, false)] direct: bool,
    ) {
        let dir = crate::scratch::scratch("direct", &format!("{len}-{direct}"));
        let path = dir.join("file");
        let bytes: Vec<u8> = (0..len as u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut file = if direct {
            SequentialFile::create(&path, Writing::Direct).unwrap()
        } else {
            SequentialFile::buffered(&path, 1 << 20).unwrap()
        };
        #[cfg(target_os = "linux")]
        if direct {
            // This machine's filesystem takes O_DIRECT: the test is of that path.
            assert!(matches!(file, SequentialFile::Direct(_)));
        }
        for piece in bytes.chunks(1_000_003) {
            file.write_all(piece).unwrap();
        }
        file.finish().unwrap().sync_all().unwrap();
        let read = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.len(), len);
        assert!(read == bytes);
    }
}
