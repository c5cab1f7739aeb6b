//! Casting tensors between floating-point dtypes (`convert --dtype`): F32, BF16 and F16 (and F64
//! input), exactly as torch's `tensor.to(dtype)` rounds, which is what Fast-LLM's `data_type`
//! does.
//!
//! # What torch does, and what this module does
//!
//! Read from torch's source (`c10/util/BFloat16.h`, `c10/util/Half.h`, and the CPU kernels of
//! `aten/src/ATen/cpu/vec/vec256/vec256_bfloat16.h` and `vec512/vec512_bfloat16.h`):
//!
//! * **f32 → bf16** is round-to-nearest-even on the bits: `(x + 0x7FFF + ((x >> 16) & 1)) >> 16`.
//!   A finite value past the largest bf16 (after rounding) becomes `±inf`, subnormals round like
//!   any other value, `-0.0` stays `-0.0`. For **NaN** torch has two answers: the scalar
//!   `c10::round_to_nearest_even` gives `0x7FC0` (positive quiet NaN, payload dropped), but the
//!   AVX2 and AVX-512 kernels that convert the bulk of a large CPU tensor give `0xFFFF` (a
//!   negative NaN, all payload bits set); which one an element gets depends on its position (the
//!   tail past the last whole vector goes through the scalar path). We write `0x7FC0`, the type's
//!   own definition (`c10::BFloat16(float)`), for every NaN.
//! * **f32 → f16** is IEEE round-to-nearest-even (c10's software path is the FP16 library's
//!   `fp16_ieee_from_fp32_value`, ported below; the x86 kernels use `vcvtps2ph`, which rounds
//!   the same way): a finite value of magnitude 65520 or more becomes `±inf`, values below the
//!   smallest normal become subnormals (or `±0`) with one rounding. For **NaN**, the scalar path
//!   gives the input's sign with `0x7E00`; `vcvtps2ph` keeps the sign and the top 10 payload
//!   bits, quieted. They agree on the usual quiet NaN (`0x7FC00000` → `0x7E00`); we write the
//!   scalar path's `sign | 0x7E00` for every NaN.
//! * **bf16 / f16 → f32** is exact (a NaN keeps its sign and payload, quieted).
//! * **bf16 ↔ f16** goes through f32, as torch does (`c10::Half(float(bf16))`): one rounding.
//! * **f64 → anything** goes through f32, as torch's `BFloat16(double)` / `Half(double)` do
//!   (`static_cast<float>` first): round-to-nearest-even to f32, then to the target; a NaN keeps
//!   its sign and top payload bits, quieted, as `cvtsd2ss` does.
//!
//! A finite value that becomes `±inf` is an *overflow*: counted, with the largest magnitude, so
//! the conversion can refuse it by tensor (or, with `--allow-overflow`, report it).
//!
//! `scripts/cast_reference.py` checks the two narrowings against numpy (f16) and `ml_dtypes`
//! (bf16) on 2^28 f32 inputs, every low-20-bit pattern under each top byte (or all 2^32), NaNs
//! aside: numpy keeps a NaN's payload in f16, ml_dtypes a NaN's sign in bf16; torch's scalar path
//! does neither. `tests/cast_reference.rs` compares with its digests.

use std::io::Write;
use std::sync::mpsc::sync_channel;

/// A dtype `--dtype` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    BF16,
    F16,
}

impl Dtype {
    /// Every castable target, by the name `--dtype` takes.
    pub const ALL: [Dtype; 3] = [Dtype::BF16, Dtype::F16, Dtype::F32];

    /// `--dtype` name: `bf16`, `f16`, `f32` (torch's `bfloat16`, `float16`, `float32` too).
    pub fn parse(name: &str) -> Option<Dtype> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Dtype::BF16,
            "f16" | "fp16" | "float16" | "half" => Dtype::F16,
            "f32" | "fp32" | "float32" | "float" => Dtype::F32,
            _ => return None,
        })
    }

    /// The safetensors name (`BF16`).
    pub fn safetensors(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::BF16 => "BF16",
            Dtype::F16 => "F16",
        }
    }

    /// The name torch and transformers' `torch_dtype` / `dtype` use (`bfloat16`).
    pub fn torch(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::BF16 => "bfloat16",
            Dtype::F16 => "float16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::BF16 | Dtype::F16 => 2,
        }
    }
}

/// The dtypes a cast reads: the targets and F64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    F64,
    Float(Dtype),
}

impl Source {
    /// The source dtype of safetensors dtype `name`, if castable.
    pub fn of(name: &str) -> Option<Source> {
        Some(match name {
            "F64" => Source::F64,
            "F32" => Source::Float(Dtype::F32),
            "BF16" => Source::Float(Dtype::BF16),
            "F16" => Source::Float(Dtype::F16),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Source::F64 => 8,
            Source::Float(dtype) => dtype.size(),
        }
    }
}

/// f32 (bits) → bf16 (bits), as `c10::BFloat16(float)`.
#[inline(always)]
pub fn f32_to_bf16(x: u32) -> u16 {
    let rounded = (x.wrapping_add(0x7FFF + ((x >> 16) & 1)) >> 16) as u16;
    // Compared as i32 (both sides are below 2^31): a signed compare is one SIMD instruction.
    if (x & 0x7FFF_FFFF) as i32 > 0x7F80_0000 {
        0x7FC0
    } else {
        rounded
    }
}

/// f32 → f16 (bits), as the FP16 library's `fp16_ieee_from_fp32_value` (c10's `Half(float)`):
/// the float multiplications do the rounding, in IEEE round-to-nearest-even.
#[inline(always)]
pub fn f32_to_f16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let base = (f.abs() * scale_to_inf) * scale_to_zero;
    let w = f.to_bits();
    let sign = w & 0x8000_0000;
    // The library's `max(shl1_w & 0xFF000000, 0x71000000) >> 1` and `shl1_w > 0xFF000000`, as
    // signed compares of values below 2^31 (one SIMD instruction each).
    let half_bias = ((w & 0x7F80_0000) as i32).max(0x3880_0000) as u32;
    let base = f32::from_bits(half_bias + 0x0780_0000) + base;
    let bits = base.to_bits();
    let nonsign = ((bits >> 13) & 0x7C00) + (bits & 0x0FFF);
    let nan = (w & 0x7FFF_FFFF) as i32 > 0x7F80_0000;
    ((sign >> 16) | if nan { 0x7E00 } else { nonsign }) as u16
}

/// bf16 → f32 (bits): exact.
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> u32 {
    (h as u32) << 16
}

/// f16 → f32 (bits): exact; a NaN keeps its sign and payload, quieted.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> u32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exponent = ((h >> 10) & 0x1F) as u32;
    let mantissa = (h & 0x03FF) as u32;
    sign | match exponent {
        0x1F if mantissa == 0 => 0x7F80_0000,
        0x1F => 0x7FC0_0000 | (mantissa << 13),
        // Subnormal (or zero): mantissa × 2^-24, exact in f32.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    }
}

/// f64 → f32 (bits): round-to-nearest-even; a NaN keeps its sign and top payload bits, quieted.
#[inline(always)]
pub fn f64_to_f32(x: f64) -> u32 {
    if x.is_nan() {
        let bits = x.to_bits();
        ((bits >> 32) as u32 & 0x8000_0000) | 0x7FC0_0000 | ((bits >> 29) as u32 & 0x003F_FFFF)
    } else {
        (x as f32).to_bits()
    }
}

/// What a cast found: finite values that became infinite, and the largest such magnitude.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overflow {
    pub count: u64,
    pub largest: f64,
}

impl Overflow {
    /// Adds what another part of the same tensor found.
    pub fn add(&mut self, other: Overflow) {
        self.count += other.count;
        self.largest = self.largest.max(other.largest);
    }
}

/// Elements cast per block: 64 KiB of f32, in L2 with its output.
const BLOCK: usize = 16 << 10;

/// Casts `input` (whole elements of `from`) to `to`, appending to `out`; returns the overflow.
pub fn cast(input: &[u8], from: Source, to: Dtype, out: &mut Vec<u8>) -> Overflow {
    let start = out.len();
    let elements = input.len() / from.size();
    out.resize(start + elements * to.size(), 0);
    cast_into(input, from, to, &mut out[start..])
}

/// Casts `input` into `out`, whose length is the cast's; large casts are split across the cores.
pub(crate) fn cast_into(input: &[u8], from: Source, to: Dtype, out: &mut [u8]) -> Overflow {
    let elements = input.len() / from.size();
    let threads = crate::bytes::threads();
    if threads < 2 || input.len() < PARALLEL_BYTES {
        return cast_blocks(input, from, to, out);
    }
    let per_thread = elements.div_ceil(threads).div_ceil(BLOCK) * BLOCK;
    std::thread::scope(|scope| {
        let handles: Vec<_> = input
            .chunks(per_thread * from.size())
            .zip(out.chunks_mut(per_thread * to.size()))
            .map(|(input, out)| scope.spawn(move || cast_blocks(input, from, to, out)))
            .collect();
        let mut overflow = Overflow::default();
        for handle in handles {
            overflow.add(handle.join().expect("a cast does not panic"));
        }
        overflow
    })
}

/// Below this many input bytes a cast is not worth a thread.
const PARALLEL_BYTES: usize = 4 << 20;

fn cast_blocks(input: &[u8], from: Source, to: Dtype, out: &mut [u8]) -> Overflow {
    let mut overflow = Overflow::default();
    let mut wide = Vec::new();
    for (input, out) in input.chunks(BLOCK * from.size()).zip(out.chunks_mut(BLOCK * to.size())) {
        // To f32 bits first (exact, but from F64), then to the target. Aligned little-endian F32
        // is read in place: the export of a training checkpoint makes no intermediate copy.
        let words: &[u32] = match from {
            // SAFETY: every bit pattern is a valid u32; align_to only yields aligned middles.
            Source::Float(Dtype::F32) => match unsafe { input.align_to::<u32>() } {
                ([], words, []) if cfg!(target_endian = "little") => words,
                _ => {
                    wide.clear();
                    wide.extend(
                        input
                            .chunks_exact(4)
                            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]])),
                    );
                    &wide
                }
            },
            Source::F64 => {
                wide.clear();
                let values = || {
                    input
                        .chunks_exact(8)
                        .map(|x| f64::from_le_bytes(x.try_into().expect("8 bytes")))
                };
                wide.extend(values().map(f64_to_f32));
                overflow.add(overflows(
                    values(),
                    wide.iter().map(|&w| w & 0x7FFF_FFFF == 0x7F80_0000),
                ));
                &wide
            }
            Source::Float(Dtype::BF16) => {
                wide.clear();
                wide.extend(
                    input
                        .chunks_exact(2)
                        .map(|x| bf16_to_f32(u16::from_le_bytes([x[0], x[1]]))),
                );
                &wide
            }
            Source::Float(Dtype::F16) => {
                wide.clear();
                wide.extend(
                    input
                        .chunks_exact(2)
                        .map(|x| f16_to_f32(u16::from_le_bytes([x[0], x[1]]))),
                );
                &wide
            }
        };
        match to {
            Dtype::F32 => {
                for (o, &w) in out.chunks_exact_mut(4).zip(words) {
                    o.copy_from_slice(&w.to_le_bytes());
                }
            }
            Dtype::BF16 | Dtype::F16 => overflow.add(narrow_into(words, to, out)),
        }
    }
    overflow
}

/// Narrows f32 bits `words` to `to` (BF16 or F16) into the bytes `out`; returns the finite values
/// made infinite. In place when `out` is aligned for u16 (this module's buffers are), through a
/// block-sized buffer otherwise.
fn narrow_into(words: &[u32], to: Dtype, out: &mut [u8]) -> Overflow {
    // SAFETY: every bit pattern is a valid u16; align_to_mut only yields aligned middles.
    if let ([], narrow, []) = unsafe { out.align_to_mut::<u16>() } {
        return narrow_words(words, narrow, to);
    }
    let mut narrow = vec![0u16; words.len()];
    let overflow = narrow_words(words, &mut narrow, to);
    for (o, h) in out.chunks_exact_mut(2).zip(narrow) {
        o.copy_from_slice(&h.to_ne_bytes());
    }
    overflow
}

/// Narrows f32 bits to BF16 or F16 little-endian bits, with AVX2 where the CPU has it.
fn narrow_words(words: &[u32], narrow: &mut [u16], to: Dtype) -> Overflow {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { narrow_words_avx2(words, narrow, to) };
    }
    narrow_words_portable(words, narrow, to)
}

/// [`narrow_words_portable`] compiled for AVX2: eight elements per instruction, not four.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn narrow_words_avx2(words: &[u32], narrow: &mut [u16], to: Dtype) -> Overflow {
    narrow_words_portable(words, narrow, to)
}

/// The narrowing in one pass the compiler vectorises: each value is rounded, and the finite ones
/// that became infinite are counted and their largest magnitude kept (as bits: for finite
/// non-negative floats, the order of the bits is the order of the values), so no second pass
/// looks for them.
#[inline(always)]
fn narrow_words_portable(words: &[u32], narrow: &mut [u16], to: Dtype) -> Overflow {
    let (mut count, mut largest) = (0u32, 0u32);
    let pairs = words.iter().map(|&w| u32::from_le(w)).zip(narrow.iter_mut());
    match to {
        Dtype::BF16 => {
            for (w, o) in pairs {
                let h = f32_to_bf16(w);
                let made = (h & 0x7FFF == 0x7F80) & (w & 0x7FFF_FFFF != 0x7F80_0000);
                count += made as u32;
                largest = largest.max(if made { w & 0x7FFF_FFFF } else { 0 });
                *o = h.to_le();
            }
        }
        Dtype::F16 => {
            for (w, o) in pairs {
                let h = f32_to_f16(f32::from_bits(w));
                let made = (h & 0x7FFF == 0x7C00) & (w & 0x7FFF_FFFF != 0x7F80_0000);
                count += made as u32;
                largest = largest.max(if made { w & 0x7FFF_FFFF } else { 0 });
                *o = h.to_le();
            }
        }
        Dtype::F32 => unreachable!("a narrowing"),
    }
    Overflow {
        count: count.into(),
        largest: if count > 0 { f32::from_bits(largest).into() } else { 0.0 },
    }
}

/// The finite `inputs` whose output `infinite` says is infinite.
fn overflows(inputs: impl Iterator<Item = f64>, infinite: impl Iterator<Item = bool>) -> Overflow {
    let mut overflow = Overflow::default();
    for (x, infinite) in inputs.zip(infinite) {
        if infinite && x.is_finite() {
            overflow.count += 1;
            overflow.largest = overflow.largest.max(x.abs());
        }
    }
    overflow
}

/// A writer casting the bytes written to it (elements of `from`) to `to` before passing them on;
/// an element split across writes is kept until its last byte arrives.
///
/// A write of more than one chunk ([`CHUNK_BYTES`]) is cast on a helper thread one chunk ahead
/// of the writing: the next chunk is cast while the previous one is written, in [`BUFFERS`]
/// output buffers kept between writes, so the cast's time hides behind the IO's. The inner
/// writer is only ever called on the caller's thread (it reports progress), and a failed write
/// stops the helper before the write returns.
pub struct CastWriter<'a> {
    inner: &'a mut dyn Write,
    from: Source,
    to: Dtype,
    partial: Vec<u8>,
    buffers: Vec<Vec<u8>>,
    overflow: Overflow,
}

/// Input bytes cast at a time: the unit of the overlap, and what bounds each output buffer.
const CHUNK_BYTES: usize = 4 << 20;

/// Output buffers of a [`CastWriter`]: one being written while the other is being filled.
const BUFFERS: usize = 2;

impl<'a> CastWriter<'a> {
    pub fn new(inner: &'a mut dyn Write, from: Source, to: Dtype) -> Self {
        CastWriter {
            inner,
            from,
            to,
            partial: Vec::new(),
            buffers: Vec::new(),
            overflow: Overflow::default(),
        }
    }

    /// The overflow so far, and whether the bytes written ended on an element boundary.
    pub fn finish(self) -> (Overflow, bool) {
        (self.overflow, self.partial.is_empty())
    }

    /// Casts and writes whole elements.
    fn pass(&mut self, elements: &[u8]) -> std::io::Result<()> {
        let chunk = CHUNK_BYTES / self.from.size() * self.from.size();
        if elements.len() <= chunk {
            // One chunk: nothing to overlap its cast with.
            if self.buffers.is_empty() {
                self.buffers.push(Vec::new());
            }
            let out = cast_buffer(&mut self.buffers[0], elements.len() / self.from.size() * self.to.size());
            self.overflow.add(cast_into(elements, self.from, self.to, out));
            return self.inner.write_all(out);
        }
        let (from, to, inner) = (self.from, self.to, &mut *self.inner);
        let (free, free_buffers) = sync_channel::<Vec<u8>>(BUFFERS);
        let (cast_tx, cast_chunks) = sync_channel::<(Vec<u8>, usize, Overflow)>(BUFFERS);
        self.buffers.resize_with(BUFFERS, Vec::new);
        for buffer in self.buffers.drain(..) {
            free.send(buffer).expect("the channel holds every buffer");
        }
        let mut overflow = Overflow::default();
        let written = std::thread::scope(|scope| {
            let caster = scope.spawn(move || {
                for input in elements.chunks(chunk) {
                    // Fails once the writing has stopped: nothing more to cast.
                    let Ok(mut buffer) = free_buffers.recv() else { break };
                    let len = input.len() / from.size() * to.size();
                    let overflow = cast_into(input, from, to, cast_buffer(&mut buffer, len));
                    if cast_tx.send((buffer, len, overflow)).is_err() {
                        break;
                    }
                }
                free_buffers
            });
            let mut written = Ok(());
            for (buffer, len, chunk_overflow) in &cast_chunks {
                overflow.add(chunk_overflow);
                written = inner.write_all(&buffer[..len]);
                if written.is_err() {
                    break;
                }
                free.send(buffer).expect("the channel holds every buffer");
            }
            // Unblocks a caster waiting for a buffer or to hand one over.
            drop((free, cast_chunks));
            let free_buffers = caster.join().expect("a cast does not panic");
            (written, free_buffers.try_iter().collect::<Vec<_>>())
        });
        self.overflow.add(overflow);
        self.buffers = written.1;
        written.0
    }
}

/// The first `len` bytes of `buffer`, grown to hold them: a cast overwrites every byte, so a
/// buffer kept from one cast to the next is not zeroed again (that was 3 % of the bf16 export).
pub(crate) fn cast_buffer(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    &mut buffer[..len]
}

impl Write for CastWriter<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let written = buf.len();
        let size = self.from.size();
        if !self.partial.is_empty() {
            let take = (size - self.partial.len()).min(buf.len());
            self.partial.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.partial.len() < size {
                return Ok(written);
            }
            let element = std::mem::take(&mut self.partial);
            self.pass(&element)?;
        }
        let whole = buf.len() / size * size;
        if whole > 0 {
            self.pass(&buf[..whole])?;
        }
        self.partial.extend_from_slice(&buf[whole..]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::one(0x3F80_0000, 0x3F80)]
    #[case::negative_zero(0x8000_0000, 0x8000)]
    #[case::zero(0, 0)]
    // Ties: the bits below are exactly half an ulp; even stays, odd rounds up.
    #[case::tie_to_even_down(0x3F80_8000, 0x3F80)]
    #[case::tie_to_even_up(0x3F81_8000, 0x3F82)]
    #[case::above_tie(0x3F80_8001, 0x3F81)]
    #[case::below_tie(0x3F80_7FFF, 0x3F80)]
    #[case::max_finite_stays(0x7F7F_0000, 0x7F7F)]
    #[case::max_f32_overflows(0x7F7F_FFFF, 0x7F80)]
    #[case::halfway_to_inf_overflows(0x7F7F_8000, 0x7F80)]
    #[case::just_below_halfway(0x7F7F_7FFF, 0x7F7F)]
    #[case::inf(0x7F80_0000, 0x7F80)]
    #[case::minus_inf(0xFF80_0000, 0xFF80)]
    #[case::smallest_subnormal_rounds_to_zero(0x0000_0001, 0x0000)]
    #[case::subnormal(0x0001_8000, 0x0002)]
    #[case::subnormal_tie(0x0000_8000, 0x0000)]
    #[case::quiet_nan(0x7FC0_0000, 0x7FC0)]
    #[case::negative_nan(0xFFC0_0000, 0x7FC0)]
    #[case::nan_payload(0x7F80_0001, 0x7FC0)]
    #[case::nan_that_would_round_to_inf(0x7F80_7FFF, 0x7FC0)]
    #[case::all_ones_nan(0xFFFF_FFFF, 0x7FC0)]
    fn f32_to_bf16_rounds_like_torch(#[case] input: u32, #[case] expected: u16) {
        assert_eq!(f32_to_bf16(input), expected, "{input:#010x}");
    }

    #[rstest]
    #[case::one(1.0, 0x3C00)]
    #[case::negative_zero(-0.0, 0x8000)]
    #[case::max_finite(65504.0, 0x7BFF)]
    // 65504 + half an ulp (16) is a tie with an odd mantissa: rounds up to infinity.
    #[case::tie_to_inf(65520.0, 0x7C00)]
    #[case::below_tie(65519.996, 0x7BFF)]
    #[case::overflow(1e6, 0x7C00)]
    #[case::negative_overflow(-1e6, 0xFC00)]
    #[case::inf(f32::INFINITY, 0x7C00)]
    #[case::tie_to_even_down(f32::from_bits(0x3F80_1000), 0x3C00)]
    #[case::tie_to_even_up(f32::from_bits(0x3F80_3000), 0x3C02)]
    #[case::smallest_normal(6.103_515_6e-5, 0x0400)]
    #[case::largest_subnormal(6.097_555e-5, 0x03FF)]
    #[case::smallest_subnormal(5.960_464_5e-8, 0x0001)]
    #[case::half_the_smallest_subnormal_ties_to_zero(2.980_232_2e-8, 0x0000)]
    #[case::above_half_the_smallest_subnormal(2.980_233e-8, 0x0001)]
    #[case::one_and_a_half_subnormals_tie_to_even(8.940_697e-8, 0x0002)]
    #[case::tiny_negative(-1e-30, 0x8000)]
    #[case::quiet_nan(f32::from_bits(0x7FC0_0000), 0x7E00)]
    #[case::negative_nan_keeps_its_sign(f32::from_bits(0xFFC0_0000), 0xFE00)]
    #[case::nan_payload_dropped(f32::from_bits(0x7F80_2001), 0x7E00)]
    fn f32_to_f16_rounds_like_torch(#[case] input: f32, #[case] expected: u16) {
        assert_eq!(f32_to_f16(input), expected, "{input:e} ({:#010x})", input.to_bits());
    }

    #[test]
    fn widening_is_exact_and_narrowing_gives_it_back() {
        for h in 0..=u16::MAX {
            let is_nan_f16 = h & 0x7C00 == 0x7C00 && h & 0x3FF != 0;
            let wide = f16_to_f32(h);
            if is_nan_f16 {
                assert!(f32::from_bits(wide).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(f32_to_f16(f32::from_bits(wide)), h, "f16 {h:#06x}");
            }
            let is_nan_bf16 = h & 0x7F80 == 0x7F80 && h & 0x7F != 0;
            if !is_nan_bf16 {
                assert_eq!(f32_to_bf16(bf16_to_f32(h)), h, "bf16 {h:#06x}");
            }
        }
    }

    #[test]
    fn f16_widens_subnormals_exactly() {
        assert_eq!(f32::from_bits(f16_to_f32(0x0001)), 2f32.powi(-24));
        assert_eq!(f32::from_bits(f16_to_f32(0x83FF)), -1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7E00), 0x7FC0_0000);
    }

    #[rstest]
    #[case::rounds(1.0 + f64::EPSILON, 0x3F80_0000)]
    #[case::overflows(1e300, 0x7F80_0000)]
    #[case::nan_keeps_sign(f64::from_bits(0xFFF8_0000_0000_0000), 0xFFC0_0000)]
    fn f64_narrows_to_f32(#[case] input: f64, #[case] expected: u32) {
        assert_eq!(f64_to_f32(input), expected);
    }

    fn bytes_f32(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn overflow_is_counted_with_the_largest_magnitude() {
        let input = bytes_f32(&[1.0, 70000.0, -1e9, f32::INFINITY, f32::NAN, 65504.0]);
        let mut out = Vec::new();
        let overflow = cast(&input, Source::Float(Dtype::F32), Dtype::F16, &mut out);
        assert_eq!(overflow, Overflow { count: 2, largest: 1e9 });
        let mut out = Vec::new();
        let overflow = cast(&input, Source::Float(Dtype::F32), Dtype::BF16, &mut out);
        assert_eq!(overflow.count, 0);
        let big = bytes_f32(&[f32::MAX, -f32::MAX]);
        let overflow = cast(&big, Source::Float(Dtype::F32), Dtype::BF16, &mut out);
        assert_eq!(overflow.count, 2);
        assert_eq!(overflow.largest, f32::MAX as f64);
        let double: Vec<u8> = [1e300f64, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let overflow = cast(&double, Source::F64, Dtype::F32, &mut out);
        assert_eq!(
            overflow,
            Overflow {
                count: 1,
                largest: 1e300
            }
        );
    }

    /// Property: for random f32 bits (a quarter of them near the top of the range, where
    /// narrowing overflows), aligned in memory or not, the cast writes what the scalar
    /// functions give and reports exactly the finite values made infinite, with the largest.
    #[rstest]
    fn a_narrowing_equals_the_scalar_functions_and_finds_every_overflow(
        #[values(Dtype::BF16, Dtype::F16)] to: Dtype,
        #[values(0, 1, 2)] misalignment: usize,
    ) {
        let mut state = 0x2545_F491_4F6C_DD1Du64 ^ misalignment as u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let words: Vec<u32> = (0..3 * BLOCK + 77)
            .map(|_| {
                let bits = next();
                let word = bits as u32;
                let sign = word & 0x8000_0000;
                match ((bits >> 40) % 4, to) {
                    // Just below and past the largest finite value, ties included.
                    (0, Dtype::BF16) => sign | 0x7F7F_0000 | (word & 0xFFFF),
                    (0, _) => sign | 0x477F_0000 | (word & 0xFFFF),
                    // Infinities and NaNs (never counted) and, for F16, certain overflows:
                    // NaN payloads, and an infinity when the top bit is clear.
                    (1, Dtype::BF16) => sign | 0x7F80_0000 | (word & ((bits >> 63) as u32 * 0x7F_FFFF)),
                    (1, _) => sign | 0x4780_0000 | (word & 0x7F_FFFF),
                    _ => word,
                }
            })
            .collect();
        let narrow = |w: u32| match to {
            Dtype::BF16 => f32_to_bf16(w),
            _ => f32_to_f16(f32::from_bits(w)),
        };
        let made_infinite = |w: u32| narrow(w) & 0x7FFF == narrow(0x7F80_0000) && f32::from_bits(w).is_finite();
        let expected: Vec<u8> = words.iter().flat_map(|&w| narrow(w).to_le_bytes()).collect();
        let overflowing: Vec<f64> = (words.iter())
            .filter(|&&w| made_infinite(w))
            .map(|&w| f32::from_bits(w).abs().into())
            .collect();
        assert!(
            overflowing.len() > 100,
            "the property needs overflows: {}",
            overflowing.len()
        );
        let mut input = vec![0u8; misalignment];
        input.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        let mut out = vec![0u8; misalignment];
        let overflow = cast(&input[misalignment..], Source::Float(Dtype::F32), to, &mut out);
        assert!(out[misalignment..] == expected[..], "the bytes differ");
        assert_eq!(overflow.count, overflowing.len() as u64);
        assert_eq!(overflow.largest, overflowing.iter().copied().fold(0.0, f64::max));
    }

    #[test]
    fn a_parallel_cast_equals_the_scalar_functions() {
        let n = (PARALLEL_BYTES / 4) * 3 + 12345;
        let values: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let input: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        cast(&input, Source::Float(Dtype::F32), Dtype::BF16, &mut out);
        let expected: Vec<u8> = values.iter().flat_map(|&v| f32_to_bf16(v).to_le_bytes()).collect();
        assert!(out == expected);
        out.clear();
        cast(&input, Source::Float(Dtype::F32), Dtype::F16, &mut out);
        let expected: Vec<u8> = (values.iter())
            .flat_map(|&v| f32_to_f16(f32::from_bits(v)).to_le_bytes())
            .collect();
        assert!(out == expected);
    }

    #[test]
    fn the_writer_casts_elements_split_across_writes() {
        let input = bytes_f32(&[1.0, 2.5, -3.0, 70000.0]);
        let mut sink = Vec::new();
        let mut writer = CastWriter::new(&mut sink, Source::Float(Dtype::F32), Dtype::F16);
        for piece in [&input[..3], &input[3..9], &input[9..]] {
            writer.write_all(piece).unwrap();
        }
        let (overflow, whole) = writer.finish();
        assert!(whole);
        assert_eq!(overflow.count, 1);
        assert_eq!(sink, [0x00, 0x3C, 0x00, 0x41, 0x00, 0xC2, 0x00, 0x7C]);
        let mut writer = CastWriter::new(&mut sink, Source::Float(Dtype::F32), Dtype::F16);
        writer.write_all(&input[..3]).unwrap();
        assert!(!writer.finish().1);
    }

    /// `n` f32 values of every kind (finite, past BF16's and F16's range, NaN, infinite, subnormal).
    fn scattered_f32(n: usize) -> Vec<u8> {
        (0..n as u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect()
    }

    #[rstest]
    #[case::f32_to_bf16(Source::Float(Dtype::F32), Dtype::BF16)]
    #[case::f32_to_f16(Source::Float(Dtype::F32), Dtype::F16)]
    #[case::bf16_to_f32(Source::Float(Dtype::BF16), Dtype::F32)]
    #[case::f64_to_f16(Source::F64, Dtype::F16)]
    fn a_write_of_many_chunks_equals_one_cast(#[case] from: Source, #[case] to: Dtype) {
        // Two and a half chunks, then an element split across the next two writes.
        let input = scattered_f32(CHUNK_BYTES * 5 / 8 + 6);
        let split = input.len() - from.size() - 3;
        let mut expected = Vec::new();
        let expected_overflow = cast(&input, from, to, &mut expected);
        let mut sink = Vec::new();
        let mut writer = CastWriter::new(&mut sink, from, to);
        writer.write_all(&input[..split]).unwrap();
        writer.write_all(&input[split..]).unwrap();
        let (overflow, whole) = writer.finish();
        assert!(whole);
        assert_eq!(overflow, expected_overflow);
        assert!(
            sink == expected,
            "{} bytes written, {} expected",
            sink.len(),
            expected.len()
        );
    }

    /// Records the size of each write; fails every write once `limit` bytes were taken.
    struct Recording {
        writes: Vec<usize>,
        taken: usize,
        limit: usize,
        refused: usize,
    }

    impl Write for Recording {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.taken >= self.limit {
                self.refused += 1;
                return Err(std::io::Error::other("disk full"));
            }
            self.writes.push(buf.len());
            self.taken += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_cast_is_written_a_chunk_at_a_time() {
        let input = scattered_f32(CHUNK_BYTES);
        let mut sink = Recording {
            writes: Vec::new(),
            taken: 0,
            limit: usize::MAX,
            refused: 0,
        };
        let mut writer = CastWriter::new(&mut sink, Source::Float(Dtype::F32), Dtype::BF16);
        writer.write_all(&input).unwrap();
        assert!(writer.buffers.len() <= BUFFERS);
        // Memory is bounded by the chunk, not by the write: 4 chunks, each half its input.
        assert_eq!(sink.writes, vec![CHUNK_BYTES / 2; 4]);
    }

    #[test]
    fn a_failed_write_stops_the_writing_at_once() {
        let input = scattered_f32(CHUNK_BYTES * 2);
        let mut sink = Recording {
            writes: Vec::new(),
            taken: 0,
            limit: CHUNK_BYTES,
            refused: 0,
        };
        let mut writer = CastWriter::new(&mut sink, Source::Float(Dtype::F32), Dtype::BF16);
        let error = writer.write_all(&input).unwrap_err();
        assert_eq!(error.to_string(), "disk full");
        // Two chunks taken, the third refused, and nothing tried after it.
        assert_eq!((sink.writes.len(), sink.refused), (2, 1));
    }
}
