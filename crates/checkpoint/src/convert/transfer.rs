//! Byte transforms between HF tensors and Fast-LLM parameters, both directions of each
//! [`Transform`]: a copy or a concatenation borrows, a transpose fills one tensor-sized buffer.

use std::borrow::Cow;

use fastllm_core::weights::Transform;

use crate::bytes::transpose;
use crate::{TensorRef, dtype_size};

/// The byte size of one element of `dtype` (1 for a dtype the reader already refused).
pub(crate) fn element(dtype: &str) -> usize {
    dtype_size(dtype).unwrap_or(1)
}

/// The Fast-LLM parameter of shape `shape` made of HF tensors `parts` (import direction).
pub(crate) fn to_fast_llm<'a>(
    parts: &[TensorRef<'a>],
    shape: &[usize],
    transform: Transform,
    dtype: &str,
) -> Cow<'a, [u8]> {
    let concatenated = || {
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for part in parts {
            out.extend_from_slice(part.data);
        }
        out
    };
    match transform {
        Transform::Copy | Transform::Reshape => Cow::Borrowed(parts[0].data),
        Transform::Concat => Cow::Owned(concatenated()),
        Transform::Transpose => {
            let data = parts[0].data;
            let mut out = vec![0; data.len()];
            // The HF tensor is [shape[1], shape[0]].
            transpose(data, shape[1], shape[0], element(dtype), &mut out);
            Cow::Owned(out)
        }
        Transform::TransposeExperts => {
            let tensor = &parts[0];
            let (experts, rows, cols) = (tensor.shape[0], tensor.shape[1], tensor.shape[2]);
            let element = element(dtype);
            let block = rows * cols * element;
            let mut out = vec![0; tensor.data.len()];
            for e in 0..experts {
                let range = e * block..(e + 1) * block;
                transpose(&tensor.data[range.clone()], rows, cols, element, &mut out[range]);
            }
            Cow::Owned(out)
        }
        Transform::TransposeConcat => {
            let rows = shape[0] / parts.len();
            let mut out = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
            for part in parts {
                let mut block = vec![0; part.data.len()];
                transpose(part.data, shape[1], rows, element(dtype), &mut block);
                out.extend_from_slice(&block);
            }
            Cow::Owned(out)
        }
    }
}

/// Part `i` of the `parts` HF tensors of a Fast-LLM parameter (export direction). `shape` is the
/// Fast-LLM shape, but the HF shape for [`Transform::TransposeExperts`].
pub(crate) fn hf_part<'a>(
    fast_llm: &'a [u8],
    shape: &[usize],
    transform: Transform,
    i: usize,
    parts: usize,
    element: usize,
) -> Cow<'a, [u8]> {
    match transform {
        Transform::Copy | Transform::Reshape => Cow::Borrowed(fast_llm),
        Transform::Concat => {
            let len = fast_llm.len() / parts;
            Cow::Borrowed(&fast_llm[i * len..(i + 1) * len])
        }
        Transform::Transpose => {
            let mut out = vec![0; fast_llm.len()];
            transpose(fast_llm, shape[0], shape[1], element, &mut out);
            Cow::Owned(out)
        }
        Transform::TransposeConcat => {
            let len = fast_llm.len() / parts;
            let slice = &fast_llm[i * len..(i + 1) * len];
            let mut out = vec![0; len];
            transpose(slice, shape[0] / parts, shape[1], element, &mut out);
            Cow::Owned(out)
        }
        Transform::TransposeExperts => {
            // `shape` is the HF shape [E, H, I]; each Fast-LLM block is [I, H].
            let (experts, rows, cols) = (shape[0], shape[1], shape[2]);
            let block = rows * cols * element;
            let mut out = vec![0; fast_llm.len()];
            for e in 0..experts {
                let range = e * block..(e + 1) * block;
                transpose(&fast_llm[range.clone()], cols, rows, element, &mut out[range]);
            }
            Cow::Owned(out)
        }
    }
}
