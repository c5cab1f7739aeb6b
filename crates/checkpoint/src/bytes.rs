//! Tensor byte transforms: concatenation along dimension 0 is a byte append; a 2-D transpose
//! moves elements in cache-sized tiles (a naive transpose runs at a tenth of memory speed).

/// The shape of a row-major matrix held as bytes: `rows × cols` values of `element` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    /// Rows (the outer dimension).
    pub rows: usize,
    /// Values per row (the inner dimension).
    pub cols: usize,
    /// Bytes per value.
    pub element: usize,
}

/// Transposes the row-major matrix `input`, shaped `matrix`, into `out` (`[cols, rows]`). Large
/// matrices are split by output rows across the machine's cores: the transpose is the one step
/// of a conversion that is compute-bound on a fast disk.
pub fn transpose(input: &[u8], matrix: Matrix, out: &mut [u8]) {
    debug_assert_eq!(out.len(), input.len());
    transpose_band(input, matrix, 0, out);
}

/// Writes rows `first..first + out.len() / (rows * element)` of the transpose of `input` (its
/// columns) into `out`: a band of the transposed matrix, so that a large transpose can be
/// written band by band through a small buffer. Large bands are split across the cores.
pub fn transpose_band(input: &[u8], matrix: Matrix, first: usize, out: &mut [u8]) {
    let Matrix { rows, cols, element } = matrix;
    debug_assert_eq!(input.len(), rows * cols * element);
    let columns = out.len() / (rows * element).max(1);
    debug_assert!(first + columns <= cols);
    let threads = threads();
    if threads < 2 || out.len() < PARALLEL_BYTES || columns < 2 * TILE {
        return transpose_columns(input, matrix, first, out);
    }
    // Whole tiles per thread, so each thread's input columns stay tile-aligned.
    let per_thread = columns.div_ceil(threads).div_ceil(TILE) * TILE;
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(per_thread * rows * element).enumerate() {
            scope.spawn(move || transpose_columns(input, matrix, first + i * per_thread, chunk));
        }
    });
}

/// Writes the transpose of rows `first..first + band.len() / (cols * element)` of the matrix
/// `matrix` (held in `band`, row-major) into their place in `out`, the whole transposed matrix
/// (`[cols, rows]`): columns `first..` of every output row. A matrix read a band of rows at a
/// time (from a file, into a buffer that stays in the cache) is so transposed without its whole
/// input in memory; bands of a multiple of 64 rows write whole cache lines of `out`.
pub fn transpose_rows(band: &[u8], matrix: Matrix, first: usize, out: &mut [u8]) {
    let Matrix { rows, cols, element } = matrix;
    let band_rows = band.len() / (cols * element).max(1);
    debug_assert_eq!(out.len(), rows * cols * element);
    debug_assert!(first + band_rows <= rows);
    let tiles = Tiles {
        rows: band_rows,
        cols,
        columns: 0..cols,
        out_stride: rows,
        out_offset: first,
    };
    transpose_typed(band, element, tiles, out);
}

/// The cores this process may use, asked once: the answer reads cgroup files, a cost that showed
/// in profiles when asked for every chunk of a cast.
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Below this size a transpose is not worth a thread.
const PARALLEL_BYTES: usize = 4 << 20;

/// Writes the output rows `first..first + out.len() / (rows * element)` (input columns) of the
/// transpose into `out`.
fn transpose_columns(input: &[u8], matrix: Matrix, first: usize, out: &mut [u8]) {
    let Matrix { rows, cols, element } = matrix;
    let tiles = Tiles {
        rows,
        cols,
        columns: first..first + out.len() / (rows * element).max(1),
        out_stride: rows,
        out_offset: 0,
    };
    transpose_typed(input, element, tiles, out);
}

/// Tile edge: a 64×64 tile of 4-byte values is 16 KiB, in L1 together with its destination.
const TILE: usize = 64;

type Columns = std::ops::Range<usize>;

/// What a tiled transpose reads and where it writes: input columns `columns` of `rows` rows of
/// `cols` values; input column `c` goes to output row `c - columns.start`, which starts
/// `out_stride` values after the one before, at value `out_offset` of it.
#[derive(Clone)]
struct Tiles {
    rows: usize,
    cols: usize,
    columns: Columns,
    out_stride: usize,
    out_offset: usize,
}

impl Tiles {
    /// The index, in values, at which input column `column`'s output row starts: the one place
    /// the tiled and the byte-wise transposes agree on where a column goes.
    fn out_row_start(&self, column: usize) -> usize {
        (column - self.columns.start) * self.out_stride + self.out_offset
    }
}

fn transpose_typed(input: &[u8], element: usize, tiles: Tiles, out: &mut [u8]) {
    match element {
        2 => transpose_sized::<2>(input, tiles, out),
        4 => transpose_sized::<4>(input, tiles, out),
        8 => transpose_sized::<8>(input, tiles, out),
        1 => transpose_sized::<1>(input, tiles, out),
        _ => {
            for c in tiles.columns.clone() {
                let out_row = tiles.out_row_start(c);
                for r in 0..tiles.rows {
                    let from = (r * tiles.cols + c) * element;
                    let to = (out_row + r) * element;
                    out[to..to + element].copy_from_slice(&input[from..from + element]);
                }
            }
        }
    }
}

fn transpose_sized<const E: usize>(input: &[u8], tiles: Tiles, out: &mut [u8]) {
    // Whole elements as integers when both buffers are aligned for them (a tensor read into a buffer of its own is).
    // SAFETY: every bit pattern is a valid u16/u32/u64, and align_to only yields aligned middles.
    match E {
        2 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u16>() }, unsafe { out.align_to_mut::<u16>() })
            {
                return transpose_elements(i, tiles, o);
            }
        }
        4 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u32>() }, unsafe { out.align_to_mut::<u32>() })
            {
                return transpose_elements(i, tiles, o);
            }
        }
        8 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u64>() }, unsafe { out.align_to_mut::<u64>() })
            {
                return transpose_elements(i, tiles, o);
            }
        }
        _ => {}
    }
    // Unaligned: elements as byte arrays (the buffers' lengths are whole elements).
    let (input, _) = input.as_chunks::<E>();
    let (out, _) = out.as_chunks_mut::<E>();
    transpose_elements(input, tiles, out)
}

/// The tiled transpose on whole elements.
fn transpose_elements<T: Copy>(input: &[T], tiles: Tiles, out: &mut [T]) {
    let (rows, cols) = (tiles.rows, tiles.cols);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in tiles.columns.clone().step_by(TILE) {
            let (r1, c1) = ((r0 + TILE).min(rows), (c0 + TILE).min(tiles.columns.end));
            for c in c0..c1 {
                let to_row = tiles.out_row_start(c);
                let to = &mut out[to_row + r0..to_row + r1];
                for (r, slot) in (r0..r1).zip(to.iter_mut()) {
                    *slot = input[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn naive(input: &[u8], rows: usize, cols: usize, element: usize) -> Vec<u8> {
        let mut out = vec![0; input.len()];
        for r in 0..rows {
            for c in 0..cols {
                for b in 0..element {
                    out[(c * rows + r) * element + b] = input[(r * cols + c) * element + b];
                }
            }
        }
        out
    }

    #[rstest]
    #[case(1, 1, 4)]
    #[case(3, 5, 2)]
    #[case(64, 64, 4)]
    #[case(130, 67, 4)]
    #[case(7, 200, 8)]
    #[case(5, 3, 3)]
    // Large enough to be split across threads (cols not a multiple of the split).
    #[case(1030, 1100, 4)]
    #[case(700, 3001, 2)]
    #[case(1400, 1100, 3)]
    // Bands large enough to be split across threads themselves, the later ones not at column 0.
    #[case(1030, 3300, 4)]
    fn blocked_transpose_matches_naive(#[case] rows: usize, #[case] cols: usize, #[case] element: usize) {
        let input: Vec<u8> = (0..rows * cols * element).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![0; input.len()];
        transpose(&input, Matrix { rows, cols, element }, &mut out);
        assert_eq!(out, naive(&input, rows, cols, element));
        let mut back = vec![0; input.len()];
        let transposed = Matrix {
            rows: cols,
            cols: rows,
            element,
        };
        transpose(&out, transposed, &mut back);
        assert_eq!(back, input);
        // Band by band (of a size that leaves a smaller last band), the same bytes.
        let band = (cols / 3).max(1);
        let mut banded = Vec::new();
        for first in (0..cols).step_by(band) {
            let mut part = vec![0; band.min(cols - first) * rows * element];
            transpose_band(&input, Matrix { rows, cols, element }, first, &mut part);
            banded.extend(part);
        }
        assert_eq!(banded, out);
        // Read a band of input rows at a time (a smaller last band, and a band of one row),
        // each transposed into its place: the same bytes.
        for band in [(rows / 3).max(1), 1] {
            let mut by_rows = vec![0xA5; input.len()];
            let row = cols * element;
            for first in (0..rows).step_by(band) {
                let part = &input[first * row..(first + band).min(rows) * row];
                transpose_rows(part, Matrix { rows, cols, element }, first, &mut by_rows);
            }
            assert_eq!(by_rows, out, "bands of {band} rows");
        }
    }

    // Buffers one byte off their allocation's alignment take the byte-array path.
    #[rstest]
    #[case(3, 5, 2)]
    #[case(130, 67, 4)]
    #[case(7, 200, 8)]
    fn unaligned_transpose_matches_naive(#[case] rows: usize, #[case] cols: usize, #[case] element: usize) {
        let len = rows * cols * element;
        let mut input = vec![0u8; len + 1];
        for (i, byte) in input[1..].iter_mut().enumerate() {
            *byte = (i * 31 % 251) as u8;
        }
        let mut out = vec![0u8; len + 1];
        transpose(&input[1..], Matrix { rows, cols, element }, &mut out[1..]);
        assert_eq!(out[1..], naive(&input[1..], rows, cols, element));
    }
}
