//! Tensor byte transforms: concatenation along dimension 0 is a byte append; a 2-D transpose
//! moves elements in cache-sized tiles (a naive transpose runs at a tenth of memory speed).

/// Transposes a row-major `[rows, cols]` matrix of `element`-byte values into `out`
/// (`[cols, rows]`).
pub fn transpose(input: &[u8], rows: usize, cols: usize, element: usize, out: &mut [u8]) {
    debug_assert_eq!(input.len(), rows * cols * element);
    debug_assert_eq!(out.len(), input.len());
    match element {
        2 => transpose_typed::<2>(input, rows, cols, out),
        4 => transpose_typed::<4>(input, rows, cols, out),
        8 => transpose_typed::<8>(input, rows, cols, out),
        1 => transpose_typed::<1>(input, rows, cols, out),
        _ => {
            for r in 0..rows {
                for c in 0..cols {
                    let from = (r * cols + c) * element;
                    let to = (c * rows + r) * element;
                    out[to..to + element].copy_from_slice(&input[from..from + element]);
                }
            }
        }
    }
}

/// Tile edge: a 64×64 tile of 4-byte values is 16 KiB, in L1 together with its destination.
const TILE: usize = 64;

fn transpose_typed<const E: usize>(input: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    // Whole elements as integers when both buffers are aligned for them (mmapped tensors are).
    // SAFETY: every bit pattern is a valid u16/u32/u64, and align_to only yields aligned middles.
    match E {
        2 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u16>() }, unsafe { out.align_to_mut::<u16>() })
            {
                return transpose_elements(i, rows, cols, o);
            }
        }
        4 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u32>() }, unsafe { out.align_to_mut::<u32>() })
            {
                return transpose_elements(i, rows, cols, o);
            }
        }
        8 => {
            if let (([], i, []), ([], o, [])) =
                (unsafe { input.align_to::<u64>() }, unsafe { out.align_to_mut::<u64>() })
            {
                return transpose_elements(i, rows, cols, o);
            }
        }
        _ => {}
    }
    transpose_bytes::<E>(input, rows, cols, out)
}

/// The tiled transpose on whole elements.
fn transpose_elements<T: Copy>(input: &[T], rows: usize, cols: usize, out: &mut [T]) {
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let (r1, c1) = ((r0 + TILE).min(rows), (c0 + TILE).min(cols));
            for c in c0..c1 {
                let to = &mut out[c * rows + r0..c * rows + r1];
                for (r, slot) in (r0..r1).zip(to.iter_mut()) {
                    *slot = input[r * cols + c];
                }
            }
        }
    }
}

fn transpose_bytes<const E: usize>(input: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let (r1, c1) = ((r0 + TILE).min(rows), (c0 + TILE).min(cols));
            // Writes are contiguous along `r` inside the tile.
            for c in c0..c1 {
                let to_row = c * rows;
                for r in r0..r1 {
                    let from = (r * cols + c) * E;
                    let to = (to_row + r) * E;
                    let value: [u8; E] = input[from..from + E].try_into().expect("E bytes");
                    out[to..to + E].copy_from_slice(&value);
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
    fn blocked_transpose_matches_naive(#[case] rows: usize, #[case] cols: usize, #[case] element: usize) {
        let input: Vec<u8> = (0..rows * cols * element).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![0; input.len()];
        transpose(&input, rows, cols, element, &mut out);
        assert_eq!(out, naive(&input, rows, cols, element));
        let mut back = vec![0; input.len()];
        transpose(&out, cols, rows, element, &mut back);
        assert_eq!(back, input);
    }
}
