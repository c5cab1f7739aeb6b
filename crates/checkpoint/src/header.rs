//! Naming the tensor behind a rejected safetensors header. HF's `safetensors` crate validates a
//! header as a whole and says what is wrong (an unknown dtype, a shape that does not match its
//! bytes, an overflow) but not where; on that error path only, the header (at most the crate's
//! 100 MB) is read again here, entry by entry, to find the first offending tensor.

use fastllm_config::Value;

/// A dtype's size in bits, for every dtype safetensors 0.8 knows.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ" | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "C64" | "F64" | "I64" | "U64" => 64,
        _ => return None,
    })
}

/// The first tensor entry of `header` (the JSON text) that breaks the format, as "tensor `name`:
/// what is wrong", given `data_len` bytes of tensor data after the header. `None` when the
/// problem is not a single tensor's.
pub(crate) fn offending_tensor(header: &[u8], data_len: usize) -> Option<String> {
    let text = std::str::from_utf8(header).ok()?;
    let entries = match Value::from_json_str(text.trim_end()) {
        Ok(Value::Map(entries)) => entries,
        Ok(_) => return None,
        // A syntax error inside an entry names it by its key path (`name.dtype`).
        Err(error) => {
            let path = error.path()?;
            let name = path.split('.').next()?;
            return Some(format!("tensor `{name}`: {error}"));
        }
    };
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        match check_entry(entry) {
            Ok((start, end)) => spans.push((start, end, name)),
            Err(problem) => return Some(format!("tensor `{name}`: {problem}")),
        }
    }
    spans.sort();
    let mut expected_start = 0u64;
    for (start, end, name) in &spans {
        if *start != expected_start {
            let what = if *start < expected_start {
                "overlaps the tensor before it"
            } else {
                "leaves a gap after the tensor before it"
            };
            return Some(format!("tensor `{name}`: data_offsets [{start}, {end}] {what}"));
        }
        expected_start = *end;
    }
    if let Some((start, end, name)) = spans.last()
        && *end != data_len as u64
    {
        let what = if *end > data_len as u64 {
            format!("ends past the file's {data_len} data bytes (a truncated file?)")
        } else {
            format!("is the last tensor, but {} data bytes follow it", data_len as u64 - end)
        };
        return Some(format!("tensor `{name}`: data_offsets [{start}, {end}] {what}"));
    }
    None
}

/// One entry's data range, or what is wrong with it.
fn check_entry(entry: &Value) -> Result<(u64, u64), String> {
    let Value::Map(entry) = entry else {
        return Err(format!("expected a dict, found {}", entry.describe()));
    };
    let field = |key: &str| entry.get(key).ok_or_else(|| format!("no `{key}`"));
    let dtype = match field("dtype")? {
        Value::Str(dtype) => dtype,
        other => return Err(format!("dtype is {}", other.describe())),
    };
    let bits = dtype_bits(dtype).ok_or_else(|| format!("unknown dtype `{dtype}`"))?;
    let shape = ints(field("shape")?).ok_or("shape is not a list of non-negative ints")?;
    let offsets = ints(field("data_offsets")?).ok_or("data_offsets is not a list of non-negative ints")?;
    let [start, end] = offsets[..] else {
        return Err(format!("data_offsets has {} entries, expected 2", offsets.len()));
    };
    if start > end {
        return Err(format!("data_offsets [{start}, {end}] run backwards"));
    }
    let bytes = shape
        .iter()
        .try_fold(bits, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if !bytes.is_multiple_of(8) || bytes / 8 != end - start {
        return Err(format!(
            "shape {shape:?} of {dtype} is {} bytes, but data_offsets [{start}, {end}] hold {}",
            bytes as f64 / 8.0,
            end - start
        ));
    }
    Ok((start, end))
}

fn ints(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| match item {
                Value::Int(i) => u64::try_from(*i).ok(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::unknown_dtype(r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "Q7", "shape": [1], "data_offsets": [4, 5]}}"#, 5, "tensor `b`: unknown dtype `Q7`")]
    #[case::size_mismatch(
        r#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#,
        8,
        "tensor `w`: shape [3] of F32 is 12 bytes, but data_offsets [0, 8] hold 8"
    )]
    #[case::overflow(
        r#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#,
        8,
        "tensor `w`: shape [4294967296, 4294967296] overflows"
    )]
    #[case::overlap(r#"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}"#, 6, "tensor `b`: data_offsets [2, 6] overlaps")]
    #[case::truncated(
        r#"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}"#,
        3,
        "tensor `a`: data_offsets [0, 4] ends past the file's 3 data bytes"
    )]
    #[case::syntax(r#"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4}}"#, 4, "tensor `a`:")]
    #[case::negative_shape(
        r#"{"a": {"dtype": "U8", "shape": [-4], "data_offsets": [0, 4]}}"#,
        4,
        "tensor `a`: shape is not a list"
    )]
    fn the_offending_tensor_is_named(#[case] header: &str, #[case] data_len: usize, #[case] expected: &str) {
        let found = offending_tensor(header.as_bytes(), data_len).unwrap();
        assert!(found.starts_with(expected), "{found}");
    }

    #[test]
    fn a_valid_header_has_no_offender() {
        let header =
            r#"{"__metadata__": {"format": "pt"}, "a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}"#;
        assert_eq!(offending_tensor(header.as_bytes(), 1), None);
    }
}
