//! The horizontal pass: one planar u8 row resampled to the model's width, in exact integers.
//!
//! Output `d` is `p[i0] w0 + p[i0 + 1] w1` with `w0 + w1 = 2^14` (the tap's fraction rounded to
//! 1/2^14). The sum is an integer below 2^22, so it is exact in i32 and in f32; the only error
//! against the f32 reference is the weight's rounding, `|b - a| 2^-15 ≤ 255 / 32768 ≈ 0.008` of
//! one LSB. Where a tap is clamped (`i1 == i0`) its fraction is 0, so reading `p[i0 + 1]` (the
//! row's padding at the right edge) is multiplied by 0.
//!
//! The SIMD kernels take the taps of 4 outputs from one 16-byte window of the row with one table
//! shuffle (each byte lands in the low half of an i16; index 0x80 gives 0): x86_64 AVX2 does two
//! windows per `vpshufb` + `vpmaddwd`, aarch64 one per `tbl` + `smull`/`smull2` + `addp` — no
//! gathers. That needs 4 consecutive outputs to span at most 16 source bytes (true for shrinking up
//! to ~4.6x); otherwise, and for the tail, the portable loop runs the same arithmetic, so results
//! are bit-identical on every path.

use crate::geometry::taps_into;

/// Fractional bits of the horizontal weights.
pub(crate) const WEIGHT_BITS: u32 = 14;
const ONE: i32 = 1 << WEIGHT_BITS;
/// Bytes after each planar row: the right tap of the last column and any 16-byte window stay inside.
pub(crate) const ROW_PAD: usize = 16;

/// The horizontal taps of one geometry (source width -> content width), shared by all planes.
#[derive(Default)]
pub(crate) struct HTaps {
    src_w: usize,
    i0: Vec<u32>,
    w: Vec<[i16; 2]>,
    /// One entry per 8 outputs when every group's windows fit.
    groups: Vec<Group>,
}

/// Proof that the hand-written kernels may run. x86_64: pulp's `V3`, which exists only after AVX2
/// was detected at run time.
#[cfg(target_arch = "x86_64")]
pub(crate) type Simd = pulp::x86::V3;
/// aarch64: NEON is part of the baseline target, so the proof is free.
#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy)]
pub(crate) struct Simd(());
/// Elsewhere there is no hand-written kernel: the type has no values.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[derive(Clone, Copy)]
pub(crate) enum Simd {}

pub(crate) fn simd() -> Option<Simd> {
    #[cfg(target_arch = "x86_64")]
    {
        pulp::x86::V3::try_new()
    }
    #[cfg(target_arch = "aarch64")]
    {
        Some(Simd(()))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// 8 outputs: two 16-byte windows of the row (4 outputs each), the shuffle that puts each
/// output's two taps into the low bytes of two i16 (window-local indices; 0x80 = zero), and the
/// i16 weights.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Group {
    ctrl: [u8; 32],
    w: [i16; 16],
    base: [u32; 2],
}

/// The groups for these taps, or none if some 4 outputs span more than one 16-byte window.
fn groups(i0: &[u32], w: &[[i16; 2]]) -> Vec<Group> {
    let mut out = Vec::with_capacity(i0.len() / 8);
    for (taps, ws) in i0.chunks_exact(8).zip(w.chunks_exact(8)) {
        let mut g = Group { ctrl: [0x80; 32], w: [0; 16], base: [taps[0], taps[4]] };
        for k in 0..8 {
            let off = taps[k] - g.base[k / 4];
            if off + 1 > 15 {
                return Vec::new();
            }
            // Output k's i16 pair sits at bytes 4(k%4) .. 4(k%4)+3 of its window's half.
            let at = 16 * (k / 4) + 4 * (k % 4);
            g.ctrl[at] = off as u8;
            g.ctrl[at + 2] = off as u8 + 1;
            g.w[2 * k] = ws[k][0];
            g.w[2 * k + 1] = ws[k][1];
        }
        out.push(g);
    }
    out
}

impl HTaps {
    pub(crate) fn build(&mut self, src_w: u32, content_w: u32) {
        let mut taps = Vec::new();
        taps_into(src_w, content_w, &mut taps);
        self.src_w = src_w as usize;
        self.i0 = taps.iter().map(|t| t.i0).collect();
        self.w = taps
            .iter()
            .map(|t| {
                let w1 = ((t.f as f64) * ONE as f64).round() as i32;
                [(ONE - w1) as i16, w1 as i16]
            })
            .collect();
        self.groups = groups(&self.i0, &self.w);
    }

    /// Resample `row` (one plane, `src_w + ROW_PAD` bytes, padding zero) into `out` (content width),
    /// in units of 1/2^14 of a 0..255 value.
    #[inline(always)]
    pub(crate) fn run(&self, row: &[u8], out: &mut [f32], simd: Option<Simd>) {
        assert!(row.len() >= self.src_w + ROW_PAD && out.len() == self.i0.len());
        let done = self.run_simd(row, out, simd);
        for ((o, &i), w) in out[done..].iter_mut().zip(&self.i0[done..]).zip(&self.w[done..]) {
            let i = i as usize;
            *o = (row[i] as i32 * w[0] as i32 + row[i + 1] as i32 * w[1] as i32) as f32;
        }
    }

    /// The outputs the SIMD kernel wrote (a prefix of `out`).
    #[inline(always)]
    fn run_simd(&self, row: &[u8], out: &mut [f32], simd: Option<Simd>) -> usize {
        let n = self.groups.len() * 8;
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(proof) = simd {
            if n > 0 {
                // Every window starts at a tap index (< src_w, by construction in `groups`) and
                // `run` asserted `row.len() >= src_w + ROW_PAD`, so each 16-byte load is in `row`.
                assert!(out.len() >= n);
                // SAFETY: `proof` shows the instruction set is there (x86_64: AVX2 detected at run
                // time; aarch64: NEON is baseline); loads are in bounds (above) and the stores
                // write `n <= out.len()` floats.
                unsafe { kernel::run(proof, row, &self.groups, out) };
                return n;
            }
        }
        let _ = (row, out, simd, n);
        0
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::Group;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run(_avx2: pulp::x86::V3, row: &[u8], groups: &[Group], out: &mut [f32]) {
        let p = row.as_ptr();
        for (g, o) in groups.iter().zip(out.chunks_exact_mut(8)) {
            // SAFETY: bounds asserted by the caller; `Group` is 32-byte aligned, so the aligned loads hold.
            unsafe {
                let lo = _mm_loadu_si128(p.add(g.base[0] as usize) as *const __m128i);
                let hi = _mm_loadu_si128(p.add(g.base[1] as usize) as *const __m128i);
                let win = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
                let px = _mm256_shuffle_epi8(win, _mm256_load_si256(g.ctrl.as_ptr() as *const __m256i));
                let acc = _mm256_madd_epi16(px, _mm256_load_si256(g.w.as_ptr() as *const __m256i));
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_cvtepi32_ps(acc));
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod kernel {
    use std::arch::aarch64::*;

    use super::{Group, Simd};

    pub(super) unsafe fn run(_neon: Simd, row: &[u8], groups: &[Group], out: &mut [f32]) {
        let p = row.as_ptr();
        for (g, o) in groups.iter().zip(out.chunks_exact_mut(8)) {
            for half in 0..2 {
                // SAFETY: bounds asserted by the caller; NEON is part of the aarch64 baseline.
                unsafe {
                    let win = vld1q_u8(p.add(g.base[half] as usize));
                    // tbl gives 0 for the 0x80 indices: the high byte of each i16.
                    let px = vreinterpretq_s16_u8(vqtbl1q_u8(win, vld1q_u8(g.ctrl.as_ptr().add(16 * half))));
                    let w = vld1q_s16(g.w.as_ptr().add(8 * half));
                    let lo = vmull_s16(vget_low_s16(px), vget_low_s16(w));
                    let hi = vmull_high_s16(px, w);
                    // Pairwise sums: p[i0] w0 + p[i0+1] w1 for the 4 outputs, in order.
                    let acc = vpaddq_s32(lo, hi);
                    vst1q_f32(o.as_mut_ptr().add(4 * half), vcvtq_f32_s32(acc));
                }
            }
        }
    }
}
