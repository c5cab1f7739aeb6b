#!/usr/bin/env python3
"""Reference digests of f32 -> f16 (numpy) and f32 -> bf16 (ml_dtypes) over all 2^32 f32 bit
patterns, for `crates/checkpoint/tests/cast_reference.rs` (an ignored test: run it with
`cargo test --release -p fastllm-checkpoint --test cast_reference -- --ignored`).

Not run by CI. Needs numpy and ml_dtypes (torch is too heavy to install here; numpy's float16 is
IEEE round-to-nearest-even like torch's, ml_dtypes' bfloat16 rounds to nearest even like
c10::BFloat16):

    python3 -m venv venv && venv/bin/pip install numpy ml_dtypes
    venv/bin/python scripts/cast_reference.py [--sample] > scripts/cast_reference.json

The 2^32 inputs are cut into 256 chunks of 2^24 consecutive bit patterns (with --sample, one run
of 2^20 consecutive patterns in each chunk, at an offset that varies by chunk: every pattern of
the low 20 bits, where the rounding happens, under each top byte); each range's digest is
sum(output * (input_bits * 0x9E3779B97F4A7C15 + 1)) mod 2^64. NaN outputs are first replaced
by what `fastllm_checkpoint::cast` writes (torch's scalar path: bf16 0x7FC0, f16 sign | 0x7E00),
since these libraries write other NaNs; how many NaN bit patterns each library writes
differently is reported in `nan_differences` (the non-NaN outputs are compared exactly).
"""

import json
import sys
import warnings

import ml_dtypes
import numpy as np

CHUNK = 1 << 24
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def digest(output: np.ndarray, bits: np.ndarray) -> int:
    weights = bits.astype(np.uint64) * MULTIPLIER + np.uint64(1)
    return int(np.sum(output.astype(np.uint64) * weights, dtype=np.uint64))


def main() -> None:
    sample = "--sample" in sys.argv[1:]
    length = 1 << 20 if sample else CHUNK
    f16_digests, bf16_digests, starts = [], [], []
    nan_f16 = nan_bf16 = 0
    warnings.simplefilter("ignore")  # overflow to inf is expected
    for chunk in range(1 << 32 >> 24):
        start = chunk * CHUNK + ((chunk * 7) % 16) * length if sample else chunk * CHUNK
        starts.append(start)
        bits = np.arange(start, start + length, dtype=np.uint64).astype(np.uint32)
        values = bits.view(np.float32)
        nan = np.isnan(values)
        f16 = values.astype(np.float16).view(np.uint16)
        bf16 = values.astype(ml_dtypes.bfloat16).view(np.uint16)
        ours_f16 = ((bits[nan] >> 16) & 0x8000).astype(np.uint16) | np.uint16(0x7E00)
        nan_f16 += int(np.count_nonzero(f16[nan] != ours_f16))
        nan_bf16 += int(np.count_nonzero(bf16[nan] != 0x7FC0))
        f16[nan] = ours_f16
        bf16[nan] = 0x7FC0
        f16_digests.append(f"{digest(f16, bits):016x}")
        bf16_digests.append(f"{digest(bf16, bits):016x}")
        print(f"chunk {chunk}/256", file=sys.stderr, end="\r")
    json.dump(
        {
            "numpy": np.__version__,
            "ml_dtypes": ml_dtypes.__version__,
            "length": length,
            "starts": starts,
            "nan_differences": {"f16_numpy": nan_f16, "bf16_ml_dtypes": nan_bf16},
            "f16": f16_digests,
            "bf16": bf16_digests,
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
