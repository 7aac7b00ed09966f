//! The epilogue (i32 accumulator -> f32 -> activation -> residual -> u8 or f32), scalar.
//!
//! This is the definition every SIMD epilogue reproduces bit for bit, so each step is one IEEE
//! operation in a fixed order: a multiply-add is fused exactly where written (`f32::mul_add`,
//! x86 `vfmadd`, NEON `fmla`/`fmls`: IEEE fusedMultiplyAdd, one rounding, the same bits on every
//! ISA; Rust never contracts a plain `a * b + c`), clamps
//! written with the NaN behaviour of x86 `maxps`/`minps` and NEON `fmaxnm`/`fminnm` (a NaN in
//! the first operand yields the bound), and rounding half to even (`roundps` with
//! `_MM_FROUND_TO_NEAREST_INT`, NEON `fcvtns`).

use crate::{Act, QParams};

/// `if a > b { a } else { b }`: x86 `maxps(a, b)`, NEON `fmaxnm` for a non-NaN `b`.
#[inline(always)]
pub(crate) fn max_ps(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `if a < b { a } else { b }`: x86 `minps(a, b)`, NEON `fminnm` for a non-NaN `b`.
#[inline(always)]
pub(crate) fn min_ps(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

pub(crate) const EXP_LO: f32 = -87.3;
pub(crate) const EXP_HI: f32 = 88.3;
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
pub(crate) const MAGIC: f32 = 12_582_912.0;
/// ln 2 split in two for an exact range reduction.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = 2.121_944_4e-4;
pub(crate) const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1];

/// exp(x) in f32 (Cephes' expf polynomial, ~2 ulp): branch-free, 2^n built from the rounded
/// value's own bits, every step a single IEEE operation (the multiply-adds fused) so the SIMD
/// versions match exactly. Fusing takes 8 of its 24 operations away.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = min_ps(max_ps(x, EXP_LO), EXP_HI);
    let t = x.mul_add(LOG2E, MAGIC);
    let n = t - MAGIC;
    // n * LN2_HI is exact (LN2_HI has 9 significant bits, |n| <= 128), so only the second
    // product's fusing changes a bit.
    let r = n.mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let r2 = r * r;
    let mut p = EXP_P[0];
    for &c in &EXP_P[1..] {
        p = p.mul_add(r, c);
    }
    let e = p.mul_add(r2, r) + 1.0;
    // t's bits are MAGIC's bits + n (|n| < 2^22) and MAGIC's low 9 bits are zero, so shifting
    // (bits + 127) left by 23 leaves exactly the biased exponent n + 127 (in 1..=254).
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e * scale
}

/// x / (1 + exp(-x)).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

/// The clamp applied before rounding (far outside 0..=255 after adding any zero point).
pub(crate) const REQ_LIMIT: f32 = 512.0;

/// y -> u8: `clamp(round_half_even(y * inv_scale) + zero_point, 0, 255)`.
#[inline(always)]
pub(crate) fn requant(y: f32, inv_scale: f32, zp: i32) -> u8 {
    let t = min_ps(max_ps(y * inv_scale, -REQ_LIMIT), REQ_LIMIT);
    let r = t.round_ties_even() as i32;
    (r + zp).clamp(0, 255) as u8
}

/// u8 -> f32: `(q - zero_point) as f32 * scale` (the subtraction in i32, exact).
#[inline(always)]
pub(crate) fn dequant(q: u8, zp: i32, scale: f32) -> f32 {
    (q as i32 - zp) as f32 * scale
}

/// The per-output-channel constants of the epilogue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chan {
    /// Added to the kernel's raw i32 sum to give sum (x - zp_in) * w (0 for the reference).
    pub comp: i32,
    /// s_in * w_scale[co].
    pub mult: f32,
    pub bias: f32,
}

/// The residual for one run of outputs.
#[derive(Clone, Copy)]
pub(crate) enum ResSeg<'a> {
    None,
    U8(&'a [u8], i32, f32),
    F32(&'a [f32]),
}

/// The destination of one run of outputs.
pub(crate) enum OutSeg<'a> {
    U8(&'a mut [u8], f32, i32),
    F32(&'a mut [f32]),
}

/// One output value before the output conversion.
#[inline(always)]
pub(crate) fn value(acc: i32, c: Chan, act: Act) -> f32 {
    let y = (acc.wrapping_add(c.comp) as f32).mul_add(c.mult, c.bias);
    match act {
        Act::None => y,
        Act::Silu => silu(y),
    }
}

/// The whole epilogue for one run of outputs of one channel (`acc.len()` values). Inlined, so
/// the SIMD epilogues' tails (compiled with FMA) get `vfmadd` for `mul_add` instead of a libm
/// `fmaf` call.
#[inline(always)]
pub(crate) fn run_scalar(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    let n = acc.len();
    let with_res = |i: usize, y: f32| match res {
        ResSeg::None => y,
        ResSeg::U8(r, zp, s) => ((r[i] as i32 - zp) as f32).mul_add(s, y),
        ResSeg::F32(r) => y + r[i],
    };
    match out {
        OutSeg::U8(o, inv, zp) => {
            for i in 0..n {
                o[i] = requant(with_res(i, value(acc[i], c, act)), inv, zp);
            }
        }
        OutSeg::F32(o) => {
            for i in 0..n {
                o[i] = with_res(i, value(acc[i], c, act));
            }
        }
    }
}

/// The residual segment `[start, start + n)` of a conv's residual.
pub(crate) fn res_seg<'a>(r: &crate::Residual<'a>, start: usize, n: usize) -> ResSeg<'a> {
    match *r {
        crate::Residual::None => ResSeg::None,
        crate::Residual::U8(d, q) => ResSeg::U8(&d[start..start + n], q.zero_point as i32, q.scale),
        crate::Residual::F32(d) => ResSeg::F32(&d[start..start + n]),
    }
}

/// Output conversion parameters of a U8 output.
pub(crate) fn out_params(q: QParams) -> (f32, i32) {
    (q.inv_scale(), q.zero_point as i32)
}
