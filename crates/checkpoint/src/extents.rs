//! Streaming byte ranges of local input files to a writer, read ahead on a thread of its own.
//!
//! A streamed tensor was written from its file's map: every page faulted in (or mapped by
//! `MADV_POPULATE_READ`) and unmapped again, and a cast that followed read each value from
//! memory for the first time (in profiles of the bf16 export, 70 % of the cast's samples waited
//! on those loads, and the mapping and unmapping were a third of the time). Read with `pread`
//! into a few reused blocks of [`BLOCK`] bytes instead, the kernel copies the bytes from the page
//! cache (one pass, no page table touched) into memory that the cast or the writer then reads
//! from the cache; and the reading runs on a second core while the caller's thread casts and
//! writes the block before.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::cast::{Dtype, Overflow, Source, cast_buffer, cast_into};
use crate::read::TensorFile;

/// Bytes `start..start + len` of a local input file.
#[derive(Clone, Copy)]
pub(crate) struct Extent<'a> {
    pub file: &'a TensorFile,
    pub start: usize,
    pub len: usize,
}

/// Bytes read at a time: a block and the cast of it stay in a core's cache.
const BLOCK: usize = 512 << 10;

/// Below this many bytes in all, the extents are read on the caller's thread: a thread would
/// cost more than it saves.
const THREAD_BYTES: usize = 2 * BLOCK;

/// Output buffers of each reading thread: one being filled, one queued or being written.
const BUFFERS: usize = 2;

/// Blocks kept between streams (two reading threads' buffers and their input blocks).
const SPARE: usize = 6;

/// The blocks of the last stream, kept for the next: fresh ones would be page-faulted and zeroed
/// for every tensor.
static SPARE_BLOCKS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Writes the bytes of `extents` to `sink`, in order (see [`write_cast_extents`]).
pub(crate) fn write_extents(extents: &[Extent], sink: &mut dyn Write) -> io::Result<()> {
    write_cast_extents(extents, None, sink).map(|_| ())
}

/// Writes the bytes of `extents` to `sink`, in order, cast on their way when `cast` says
/// (`from`, `to`: every extent whole elements of `from`); returns the cast's overflow.
///
/// Up to [`THREAD_BYTES`], on this thread. Above, read ahead in blocks: by one thread of its own
/// when nothing is cast (this thread copying each block to the writer while the next is read);
/// when something is, by two threads taking alternate blocks, each casting the block it has just
/// read while it is in its cache, so the reading and the cast run on both cores and this thread
/// only hands the cast blocks to the writer, in order. Every extent's file must be local; a
/// read error names the file (an [`io::Error`] wrapping the
/// [`crate::CheckpointError`]), and a failed write stops the reading.
pub(crate) fn write_cast_extents(
    extents: &[Extent],
    cast: Option<(Source, Dtype)>,
    sink: &mut dyn Write,
) -> io::Result<Overflow> {
    let blocks = Blocks::new(extents, cast);
    if blocks.total < THREAD_BYTES {
        let mut buffers = take_blocks(2);
        let (mut out, mut scratch) = (buffers.pop().expect("two"), buffers.pop().expect("two"));
        let mut overflow = Overflow::default();
        let result = (|| {
            for index in 0..blocks.count() {
                let (len, block_overflow) = blocks.produce(index, &mut out, &mut scratch)?;
                overflow.add(block_overflow);
                sink.write_all(&out[..len])?;
            }
            Ok(overflow)
        })();
        give_back(vec![out, scratch]);
        return result;
    }
    let readers = if cast.is_some() {
        crate::bytes::threads().clamp(1, 2)
    } else {
        1
    };
    std::thread::scope(|scope| {
        let mut free = Vec::new();
        let mut done = Vec::new();
        let mut handles = Vec::new();
        for first in 0..readers {
            let (give, free_buffers) = sync_channel::<Vec<u8>>(BUFFERS);
            for buffer in take_blocks(BUFFERS) {
                give.send(buffer).expect("room for every buffer");
            }
            let (produced, produced_blocks) = sync_channel(BUFFERS);
            let reader = Reader {
                blocks: &blocks,
                first,
                step: readers,
            };
            handles.push(scope.spawn(move || reader.run(free_buffers, produced)));
            free.push(give);
            done.push(produced_blocks);
        }
        let mut overflow = Overflow::default();
        let mut written = Ok(());
        let mut returned = Vec::new();
        for index in 0..blocks.count() {
            let reader = index % readers;
            let (buffer, len, block_overflow) = match done[reader].recv() {
                Ok(Ok(block)) => block,
                Ok(Err(e)) => {
                    written = Err(e);
                    break;
                }
                Err(_) => {
                    written = Err(io::Error::other("a reading thread stopped"));
                    break;
                }
            };
            overflow.add(block_overflow);
            if let Err(e) = sink.write_all(&buffer[..len]) {
                written = Err(e);
                returned.push(buffer);
                break;
            }
            // The reader may have finished: the buffer is then kept here.
            if let Err(unsent) = free[reader].send(buffer) {
                returned.push(unsent.0);
            }
        }
        // Unblocks the readers waiting for a buffer or to hand one over.
        drop(free);
        for produced in done {
            returned.extend(produced.try_iter().filter_map(Result::ok).map(|(buffer, _, _)| buffer));
        }
        for handle in handles {
            returned.extend(handle.join().expect("reading does not panic"));
        }
        give_back(returned);
        written.map(|()| overflow)
    })
}

/// A cast block: its buffer, the bytes of it to write, and the overflow it found.
type Produced = io::Result<(Vec<u8>, usize, Overflow)>;

/// One reading thread: blocks `first`, `first + step`, ... of `blocks`.
struct Reader<'b, 'e, 'a> {
    blocks: &'b Blocks<'e, 'a>,
    first: usize,
    step: usize,
}

impl Reader<'_, '_, '_> {
    /// Fills each free buffer with its next block and hands it over, until the last block, an
    /// error, or the writing stopping; returns the buffers it still holds.
    fn run(self, free: Receiver<Vec<u8>>, produced: SyncSender<Produced>) -> Vec<Vec<u8>> {
        let mut scratch = take_blocks(1);
        let mut index = self.first;
        while index < self.blocks.count() {
            // Fails once the writing has stopped: nothing more to read.
            let Ok(mut buffer) = free.recv() else { break };
            let block = self.blocks.produce(index, &mut buffer, &mut scratch[0]);
            let failed = block.is_err();
            if produced
                .send(block.map(|(len, overflow)| (buffer, len, overflow)))
                .is_err()
                || failed
            {
                break;
            }
            index += self.step;
        }
        scratch.extend(free.try_iter());
        scratch
    }
}

/// The bytes of a list of extents as numbered blocks of [`BLOCK`] bytes, each read (and cast)
/// alone.
struct Blocks<'e, 'a> {
    extents: &'e [Extent<'a>],
    /// Where each extent starts in the bytes of all.
    starts: Vec<usize>,
    total: usize,
    cast: Option<(Source, Dtype)>,
}

impl<'e, 'a> Blocks<'e, 'a> {
    fn new(extents: &'e [Extent<'a>], cast: Option<(Source, Dtype)>) -> Self {
        let mut starts = Vec::with_capacity(extents.len());
        let mut total = 0;
        for extent in extents {
            starts.push(total);
            total += extent.len;
        }
        Blocks {
            extents,
            starts,
            total,
            cast,
        }
    }

    fn count(&self) -> usize {
        self.total.div_ceil(BLOCK)
    }

    /// Block `index` in `out` (read into `scratch`, then cast, when there is a cast); returns the
    /// bytes of `out` it fills and the cast's overflow.
    fn produce(&self, index: usize, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> io::Result<(usize, Overflow)> {
        match self.cast {
            None => Ok((self.read(index, cast_buffer(out, BLOCK))?, Overflow::default())),
            Some((from, to)) => {
                let n = self.read(index, cast_buffer(scratch, BLOCK))?;
                let len = n / from.size() * to.size();
                let overflow = cast_into(&scratch[..n], from, to, cast_buffer(out, len));
                Ok((len, overflow))
            }
        }
    }

    /// Reads block `index` into `block` ([`BLOCK`] bytes); returns how many bytes it holds (fewer
    /// for the last).
    fn read(&self, index: usize, block: &mut [u8]) -> io::Result<usize> {
        let start = index * BLOCK;
        let end = (start + BLOCK).min(self.total);
        // The last extent starting at or before `start` (an empty one may share its start).
        let mut at = self.starts.partition_point(|&s| s <= start).saturating_sub(1);
        let mut filled = 0;
        while start + filled < end {
            let (extent, offset) = (self.extents[at], start + filled - self.starts[at]);
            let n = (extent.len.saturating_sub(offset)).min(end - start - filled);
            if n > 0 {
                let read = (extent.file)
                    .read_local(extent.start + offset, &mut block[filled..filled + n])
                    .unwrap_or_else(|| Err(crate::CheckpointError::invalid(&extent.file.name, "not a local file")));
                read.map_err(io::Error::other)?;
                filled += n;
            }
            at += 1;
        }
        Ok(filled)
    }
}

/// `n` buffers, the spare ones first (new ones empty: they grow to what they hold).
fn take_blocks(n: usize) -> Vec<Vec<u8>> {
    let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let keep = spare.len().saturating_sub(n);
    let mut blocks = spare.split_off(keep);
    blocks.resize_with(n, Vec::new);
    blocks
}

/// Keeps `blocks` for the next stream (at most [`SPARE`]).
fn give_back(blocks: Vec<Vec<u8>>) {
    let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    spare.extend(blocks);
    spare.truncate(SPARE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HeaderBudget, InputDir};
    use crate::writer::{TensorSpec, write_safetensors};
    use rstest::rstest;

    /// A safetensors file of one U8 tensor of `len` random bytes, opened; and those bytes.
    fn file(name: &str, len: usize) -> (TensorFile, Vec<u8>, std::path::PathBuf) {
        let dir = crate::scratch::scratch("extents", name);
        // Random bits: as float32, some values past BF16's and F16's range, some NaN.
        let mut state = 0x2545_F491_4F6C_DD1Du64 ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        // And every so often the largest float32, which overflows both.
        let mut bytes = bytes;
        for word in bytes.chunks_exact_mut(4).step_by(4099) {
            word.copy_from_slice(&f32::MAX.to_le_bytes());
        }
        let spec = TensorSpec {
            name: "t".into(),
            dtype: "U8".into(),
            shape: vec![len],
        };
        write_safetensors(&dir.join("f.safetensors"), &Default::default(), &[spec], |_, out| {
            out.write_all(&bytes)
        })
        .unwrap();
        let input = InputDir::new(&dir).unwrap();
        let mapped = TensorFile::open(&input, "f.safetensors", &mut HeaderBudget::new()).unwrap();
        (mapped, bytes, dir)
    }

    /// `ranges` (offset into the tensor `t`, length) of `file` as extents, and the bytes of
    /// `bytes` (the tensor's) they cover, in order.
    fn pieces_of<'m>(file: &'m TensorFile, bytes: &[u8], ranges: &[(usize, usize)]) -> (Vec<Extent<'m>>, Vec<u8>) {
        let base = file.meta("t").unwrap().start;
        let extents = (ranges.iter())
            .map(|&(start, len)| Extent {
                file,
                start: base + start,
                len,
            })
            .collect();
        let covered = ranges.iter().flat_map(|&(s, l)| bytes[s..s + l].to_vec()).collect();
        (extents, covered)
    }

    /// Every byte of `extents` in order, whatever their sizes against a block (empty, one byte,
    /// a block and around, several blocks; and many small pieces, as a tensor-parallel split of
    /// every row makes): read on the caller's thread below [`THREAD_BYTES`], ahead on a thread
    /// above.
    #[rstest]
    #[case::empty(&[])]
    #[case::one_byte(&[(5, 1)])]
    #[case::below_the_thread(&[(0, BLOCK - 1), (BLOCK, 3)])]
    #[case::a_block_each(&[(0, BLOCK), (BLOCK, BLOCK), (2 * BLOCK, 1)])]
    #[case::around_blocks(&[(3, BLOCK + 1), (7, 0), (1, 2 * BLOCK + 5), (BLOCK * 3 + 9, BLOCK - 1)])]
    #[case::more_blocks_than_the_pool(&[(1, 9 * BLOCK + 123)])]
    fn the_bytes_of_every_extent_in_order(#[case] ranges: &[(usize, usize)]) {
        let (mapped, bytes, dir) = file(
            &format!("{ranges:?}").replace([' ', '(', ')', '[', ']', ','], "_"),
            10 * BLOCK,
        );
        let (extents, expected) = pieces_of(&mapped, &bytes, ranges);
        let mut out = Vec::new();
        write_extents(&extents, &mut out).unwrap();
        assert!(out == expected, "{} bytes, {} expected", out.len(), expected.len());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Many small pieces (a row split across ranks gives one per row and rank), gathered into
    /// blocks across their boundaries.
    #[test]
    fn many_small_pieces_are_gathered() {
        let (mapped, bytes, dir) = file("small", 4 * BLOCK);
        let pieces: Vec<(usize, usize)> = (0..10_000).map(|i| ((i * 977) % (3 * BLOCK), 100 + i % 300)).collect();
        let (extents, expected) = pieces_of(&mapped, &bytes, &pieces);
        assert!(expected.len() > THREAD_BYTES);
        let mut out = Vec::new();
        write_extents(&extents, &mut out).unwrap();
        assert!(out == expected);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Cast on their way by the threads reading them (alternate blocks on two threads above
    /// [`THREAD_BYTES`]), the extents give the bytes and the overflow of one cast of their bytes:
    /// overflows are counted in every block, each block ends on an element, and the blocks are
    /// written in order.
    #[rstest]
    fn a_cast_stream_equals_one_cast_of_the_bytes(
        #[values((Source::Float(Dtype::F32), Dtype::BF16), (Source::Float(Dtype::F32), Dtype::F16), (Source::Float(Dtype::BF16), Dtype::F32))]
        cast: (Source, Dtype),
        #[values(BLOCK / 2, 7 * BLOCK + 4096)] len: usize,
    ) {
        let (from, to) = cast;
        let (mapped, bytes, dir) = file(&format!("cast-{from:?}-{to:?}-{len}"), len + 64);
        // Pieces of whole elements, cut anywhere else (as tensor-parallel pieces are).
        let size = from.size();
        let mut ranges = Vec::new();
        let mut at = 0;
        while at < len {
            let piece = ((at * 31 + 12_345) % (BLOCK + 999) / size * size)
                .max(size)
                .min(len - at);
            ranges.push((at + 16, piece));
            at += piece;
        }
        let (extents, input) = pieces_of(&mapped, &bytes, &ranges);
        let mut expected = Vec::new();
        let expected_overflow = crate::cast::cast(&input, from, to, &mut expected);
        if to != Dtype::F32 {
            assert!(expected_overflow.count > 0, "the bytes hold values past {to:?}'s range");
        }
        let mut out = Vec::new();
        let overflow = write_cast_extents(&extents, Some(cast), &mut out).unwrap();
        assert_eq!(overflow, expected_overflow);
        assert!(out == expected, "{} bytes, {} expected", out.len(), expected.len());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Takes `limit` bytes, then fails every write.
    struct Full {
        taken: usize,
        limit: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.taken >= self.limit {
                return Err(io::Error::other("disk full"));
            }
            self.taken += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A failed write is the answer, at once; the reading stops (the scope would otherwise wait
    /// for it), and the next stream works.
    #[test]
    fn a_failed_write_stops_the_reading() {
        let (mapped, bytes, dir) = file("full", 8 * BLOCK);
        let base = mapped.meta("t").unwrap().start;
        let extent = Extent {
            file: &mapped,
            start: base,
            len: bytes.len(),
        };
        let mut sink = Full {
            taken: 0,
            limit: 2 * BLOCK,
        };
        let error = write_extents(&[extent], &mut sink).unwrap_err();
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(sink.taken, 2 * BLOCK);
        let mut out = Vec::new();
        write_extents(&[extent], &mut out).unwrap();
        assert!(out == bytes);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A file cut after it was opened (its tensor's bytes now past its end): the read fails,
    /// naming the file, where reading the map would have killed the process (SIGBUS).
    #[rstest]
    fn a_cut_file_is_a_read_error_naming_it(#[values(BLOCK / 2, 6 * BLOCK)] len: usize) {
        let (mapped, _, dir) = file(&format!("cut-{len}"), len);
        let meta = mapped.meta("t").unwrap();
        let extent = Extent {
            file: &mapped,
            start: meta.start,
            len: meta.end - meta.start,
        };
        let path = dir.join("f.safetensors");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len((meta.start + len / 2) as u64)
            .unwrap();
        let error = write_extents(&[extent], &mut Vec::new()).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with(&path.display().to_string()), "{message}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
