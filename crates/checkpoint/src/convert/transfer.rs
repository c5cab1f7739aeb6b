//! Byte transforms between HF tensors and Fast-LLM parameters, both directions of each
//! [`Transform`]: a copy or a concatenation borrows, a transpose fills one tensor-sized buffer.

use std::borrow::Cow;

use fastllm_core::weights::Transform;

use crate::bytes::{Matrix, transpose, transpose_band};
use crate::{TensorRef, dtype_size};

/// The byte size of one element of `dtype` (1 for a dtype the reader already refused).
pub(crate) fn element(dtype: &str) -> usize {
    dtype_size(dtype).unwrap_or(1)
}

/// How a Fast-LLM parameter is made of HF tensors (import direction).
pub(crate) struct FastLlmParameter<'s> {
    /// The Fast-LLM shape.
    pub shape: &'s [usize],
    pub transform: Transform,
    /// The HF tensors' dtype.
    pub dtype: &'s str,
}

impl FastLlmParameter<'_> {
    /// The parameter's bytes from the HF tensors `parts`: borrowed when they are one tensor's
    /// bytes as they are, else built in `buffer`, whose memory is reused (a transpose into fresh
    /// pages spent a quarter of an import's CPU zeroing them).
    pub(crate) fn bytes<'a>(&self, parts: &[TensorRef<'a>], mut buffer: Vec<u8>) -> Cow<'a, [u8]> {
        let &FastLlmParameter {
            shape,
            transform,
            dtype,
        } = self;
        let element = element(dtype);
        buffer.clear();
        match transform {
            Transform::Copy | Transform::Reshape => return Cow::Borrowed(parts[0].data),
            Transform::Concat => {
                for part in parts {
                    buffer.extend_from_slice(part.data);
                }
            }
            Transform::Transpose => {
                let data = parts[0].data;
                // The HF tensor is [shape[1], shape[0]].
                let matrix = Matrix {
                    rows: shape[1],
                    cols: shape[0],
                    element,
                };
                transpose(data, matrix, fill(&mut buffer, data.len()));
            }
            Transform::TransposeExperts => {
                let tensor = &parts[0];
                let (experts, rows, cols) = (tensor.shape[0], tensor.shape[1], tensor.shape[2]);
                let block = rows * cols * element;
                let out = fill(&mut buffer, tensor.data.len());
                for e in 0..experts {
                    let range = e * block..(e + 1) * block;
                    transpose(
                        &tensor.data[range.clone()],
                        Matrix { rows, cols, element },
                        &mut out[range],
                    );
                }
            }
            Transform::TransposeConcat => {
                let rows = shape[0] / parts.len();
                let out = fill(&mut buffer, parts.iter().map(|p| p.data.len()).sum());
                let matrix = Matrix {
                    rows: shape[1],
                    cols: rows,
                    element,
                };
                let mut at = 0;
                for part in parts {
                    let len = part.data.len();
                    transpose(part.data, matrix, &mut out[at..at + len]);
                    at += len;
                }
            }
        }
        Cow::Owned(buffer)
    }
}

/// `buffer` resized to `len` bytes, to be overwritten whole: a transpose writes every byte, so
/// reused memory is not zeroed first.
fn fill(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buffer.truncate(len);
    buffer.resize(len, 0);
    buffer
}

/// Which HF tensor of a Fast-LLM parameter to make (export direction), and how.
pub(crate) struct HfPart<'s> {
    /// The Fast-LLM shape, but the HF shape for [`Transform::TransposeExperts`].
    pub shape: &'s [usize],
    pub transform: Transform,
    /// Which of the `parts` HF tensors.
    pub index: usize,
    pub parts: usize,
    /// Bytes per element.
    pub element: usize,
}

/// The bytes of a transposed part written at a time: a band of its rows, in a buffer reused from
/// band to band and part to part (a whole transposed tensor in fresh pages cost its page faults
/// and zeroing for every down-projection: a tenth of a bf16 export's CPU time), which a cast
/// then reads from the cache.
pub(crate) const BAND_BYTES: usize = 4 << 20;

impl HfPart<'_> {
    /// Writes the part's bytes to `sink`: a slice of `fast_llm` as it is, a [`Transform::Transpose`]
    /// band by band through `scratch` (at most [`BAND_BYTES`] of it), any other transform built
    /// whole in `scratch` ([`Self::bytes`]).
    pub(crate) fn write(
        &self,
        fast_llm: &[u8],
        scratch: &mut Vec<u8>,
        sink: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        if self.transform != Transform::Transpose {
            return sink.write_all(self.bytes(fast_llm, scratch));
        }
        let matrix = Matrix {
            rows: self.shape[0],
            cols: self.shape[1],
            element: self.element,
        };
        let row = matrix.rows * matrix.element;
        let band = (BAND_BYTES / row.max(1)).max(1);
        for first in (0..matrix.cols).step_by(band) {
            let out = fill(scratch, band.min(matrix.cols - first) * row);
            transpose_band(fast_llm, matrix, first, out);
            sink.write_all(out)?;
        }
        Ok(())
    }

    /// The part's bytes: borrowed from `fast_llm` when they are a slice of it, else transposed
    /// into `scratch`, whose memory the next transposed part reuses (no fresh pages to fault in
    /// for every layer's projection).
    pub(crate) fn bytes<'a>(&self, fast_llm: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let &HfPart {
            shape,
            transform,
            index: i,
            parts,
            element,
        } = self;
        match transform {
            Transform::Copy | Transform::Reshape => fast_llm,
            Transform::Concat => {
                let len = fast_llm.len() / parts;
                &fast_llm[i * len..(i + 1) * len]
            }
            Transform::Transpose => {
                let out = fill(scratch, fast_llm.len());
                let matrix = Matrix {
                    rows: shape[0],
                    cols: shape[1],
                    element,
                };
                transpose(fast_llm, matrix, out);
                out
            }
            Transform::TransposeConcat => {
                let len = fast_llm.len() / parts;
                let slice = &fast_llm[i * len..(i + 1) * len];
                let out = fill(scratch, len);
                let matrix = Matrix {
                    rows: shape[0] / parts,
                    cols: shape[1],
                    element,
                };
                transpose(slice, matrix, out);
                out
            }
            Transform::TransposeExperts => {
                // `shape` is the HF shape [E, H, I]; each Fast-LLM block is [I, H].
                let (experts, rows, cols) = (shape[0], shape[1], shape[2]);
                let block = rows * cols * element;
                let out = fill(scratch, fast_llm.len());
                let matrix = Matrix {
                    rows: cols,
                    cols: rows,
                    element,
                };
                for e in 0..experts {
                    let range = e * block..(e + 1) * block;
                    transpose(&fast_llm[range.clone()], matrix, &mut out[range]);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Distinct 2-byte elements, `offset` apart between tensors.
    fn tensor(shape: &[usize], offset: u16) -> Vec<u8> {
        let n: usize = shape.iter().product();
        (0..n as u16).flat_map(|i| (i + offset).to_le_bytes()).collect()
    }

    #[rstest]
    #[case::copy(Transform::Copy, vec![vec![3, 4]], vec![3, 4])]
    #[case::reshape(Transform::Reshape, vec![vec![2, 3, 2]], vec![2, 6])]
    #[case::concat(Transform::Concat, vec![vec![2, 4], vec![2, 4]], vec![4, 4])]
    #[case::transpose(Transform::Transpose, vec![vec![4, 3]], vec![3, 4])]
    #[case::transpose_concat(Transform::TransposeConcat, vec![vec![4, 2], vec![4, 2], vec![4, 2]], vec![6, 4])]
    #[case::transpose_experts(Transform::TransposeExperts, vec![vec![2, 3, 4]], vec![8, 3])]
    fn export_gives_back_every_imported_part(
        #[case] transform: Transform,
        #[case] hf_shapes: Vec<Vec<usize>>,
        #[case] fast_llm_shape: Vec<usize>,
    ) {
        let data: Vec<Vec<u8>> = hf_shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| tensor(shape, 1000 * i as u16))
            .collect();
        let parts: Vec<TensorRef> = hf_shapes
            .iter()
            .zip(&data)
            .map(|(shape, data)| TensorRef {
                name: "t",
                dtype: "BF16",
                shape,
                data,
                file: "f",
            })
            .collect();
        let import = FastLlmParameter {
            shape: &fast_llm_shape,
            transform,
            dtype: "BF16",
        };
        // Built in a dirty buffer of another size, as an import reuses one.
        let fast_llm = import.bytes(&parts, vec![0xA5; 5]);
        let shape = if transform == Transform::TransposeExperts {
            &hf_shapes[0]
        } else {
            &fast_llm_shape
        };
        // One scratch buffer for every part, as an export uses it: dirty, and of another size.
        let mut scratch = vec![0xA5; 7];
        for (i, part) in data.iter().enumerate() {
            let hf = HfPart {
                shape,
                transform,
                index: i,
                parts: data.len(),
                element: 2,
            };
            let back = hf.bytes(&fast_llm, &mut scratch);
            assert!(back == part.as_slice(), "part {i}");
        }
    }

    #[test]
    fn fast_llm_stores_down_projections_transposed() {
        // HF [2, 3] rows (0 1 2) (3 4 5) is Fast-LLM [3, 2] rows (0 3) (1 4) (2 5).
        let hf = tensor(&[2, 3], 0);
        let part = TensorRef {
            name: "t",
            dtype: "BF16",
            shape: &[2, 3],
            data: &hf,
            file: "f",
        };
        let import = FastLlmParameter {
            shape: &[3, 2],
            transform: Transform::Transpose,
            dtype: "BF16",
        };
        let fast_llm = import.bytes(&[part], Vec::new());
        let elements: Vec<u16> = fast_llm.chunks(2).map(|e| u16::from_le_bytes([e[0], e[1]])).collect();
        assert_eq!(elements, [0, 3, 1, 4, 2, 5]);
    }
}
