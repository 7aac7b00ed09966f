//! aarch64 kernels: NEON `smull`/`smlal` + `sadalp` (ARMv8.0, the Jetson Nano's Cortex-A57) and
//! `sdot` (the dotprod extension, e.g. Orin's Cortex-A78AE), selected at run time.
//!
//! NEON has no u8 x s8 multiply, so the dense panel stores activations as s8 `x ^ 0x80`
//! (= x - 128) and the epilogue adds `(128 - zp) * sum w` instead of `-zp * sum w`
//! ([`RawSum::S8`]). With weights in [-127, 127] one product is at most 128 * 127 = 16256, so two
//! summed in an i16 lane (`smull` then `smlal`) never overflow before `sadalp` widens them.
//! `sdot` is written with `asm!` (its intrinsic is unstable on Rust 1.95).

use std::arch::aarch64::*;
use std::arch::asm;

use crate::dense::{pack_panel_with, Kernel, PackOps, Source, NR};
use crate::epilogue::{self, Chan, OutSeg, ResSeg, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, MAGIC, REQ_LIMIT};
use crate::pack::{RawSum, KG, MR};
use crate::{Act, Variant};

const _: () = assert!(NR == 16 && MR == 4 && KG == 4);

pub(crate) fn dense_kernel(v: Variant) -> Kernel {
    let micro: crate::dense::Micro = match v {
        Variant::Neon => micro_mlal,
        Variant::NeonDotprod => micro_sdot,
        _ => unreachable!("not an aarch64 variant"),
    };
    Kernel { micro, nb_max: 1, wide_weights: false, raw: RawSum::S8, epilogue: epilogue_neon, pack: pack_neon }
}

pub(crate) fn dw_kernel() -> crate::depthwise::DwKernel {
    crate::depthwise::DwKernel { channel: dw_channel_neon, epilogue: epilogue_neon }
}

// ---------------------------------------------------------------------------------------------
// Epilogue

/// exp(x) on 4 lanes: `epilogue::fast_exp` operation for operation (`fmla`/`fmls` exactly where
/// it fuses, separate multiplies and adds elsewhere).
#[inline]
#[target_feature(enable = "neon")]
fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminnmq_f32(vmaxnmq_f32(x, vdupq_n_f32(EXP_LO)), vdupq_n_f32(EXP_HI));
    let magic = vdupq_n_f32(MAGIC);
    let t = vfmaq_f32(magic, x, vdupq_n_f32(LOG2E));
    let n = vsubq_f32(t, magic);
    let r = vfmaq_f32(vfmsq_f32(x, n, vdupq_n_f32(LN2_HI)), n, vdupq_n_f32(LN2_LO));
    let r2 = vmulq_f32(r, r);
    let mut p = vdupq_n_f32(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = vfmaq_f32(vdupq_n_f32(c), p, r);
    }
    let e = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    let bits = vshlq_n_s32::<23>(vaddq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(127)));
    vmulq_f32(e, vreinterpretq_f32_s32(bits))
}

#[inline]
#[target_feature(enable = "neon")]
fn value4(acc: int32x4_t, c: Chan, act: Act) -> float32x4_t {
    let a = vcvtq_f32_s32(vaddq_s32(acc, vdupq_n_s32(c.comp)));
    let y = vfmaq_f32(vdupq_n_f32(c.bias), a, vdupq_n_f32(c.mult));
    match act {
        Act::None => y,
        Act::Silu => vdivq_f32(y, vaddq_f32(vdupq_n_f32(1.0), exp4(vnegq_f32(y)))),
    }
}

/// Outputs i..i+8 before the output conversion, as two vectors.
///
/// # Safety
/// i + 8 <= acc.len() = the residual's length.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn lanes8(acc: &[i32], i: usize, c: Chan, act: Act, res: ResSeg) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller's contract.
    unsafe {
        let y0 = value4(vld1q_s32(acc.as_ptr().add(i)), c, act);
        let y1 = value4(vld1q_s32(acc.as_ptr().add(i + 4)), c, act);
        match res {
            ResSeg::None => (y0, y1),
            ResSeg::U8(r, zp, s) => {
                let q = vmovl_u8(vld1_u8(r.as_ptr().add(i)));
                let zp = vdupq_n_s32(zp);
                let s = vdupq_n_f32(s);
                let q0 = vsubq_s32(vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(q))), zp);
                let q1 = vsubq_s32(vreinterpretq_s32_u32(vmovl_high_u16(q)), zp);
                (vfmaq_f32(y0, vcvtq_f32_s32(q0), s), vfmaq_f32(y1, vcvtq_f32_s32(q1), s))
            }
            ResSeg::F32(r) => (vaddq_f32(y0, vld1q_f32(r.as_ptr().add(i))), vaddq_f32(y1, vld1q_f32(r.as_ptr().add(i + 4)))),
        }
    }
}

/// y * inv -> clamp -> round half to even (`fcvtns`) -> + zp, for 4 lanes.
#[inline]
#[target_feature(enable = "neon")]
fn requant4(y: float32x4_t, inv: float32x4_t, zp: int32x4_t) -> int32x4_t {
    let t = vminnmq_f32(vmaxnmq_f32(vmulq_f32(y, inv), vdupq_n_f32(-REQ_LIMIT)), vdupq_n_f32(REQ_LIMIT));
    vaddq_s32(vcvtnq_s32_f32(t), zp)
}

/// `epilogue::run_scalar` on 8 lanes at a time (the tail runs the scalar code itself).
///
/// # Safety
/// The residual and output segments hold acc.len() values.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn epilogue_neon(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    let n = acc.len();
    let full = n / 8 * 8;
    match out {
        OutSeg::U8(o, inv_s, zp) => {
            let (inv, zpv) = (vdupq_n_f32(inv_s), vdupq_n_s32(zp));
            for i in (0..full).step_by(8) {
                // SAFETY: i + 8 <= full <= n, the residual's and output's length.
                unsafe {
                    let (y0, y1) = lanes8(acc, i, c, act, res);
                    // |q| < 2^15: the i16 narrowing is exact, the u8 one saturates to 0..=255
                    // like the scalar clamp.
                    let q = vcombine_s16(vqmovn_s32(requant4(y0, inv, zpv)), vqmovn_s32(requant4(y1, inv, zpv)));
                    vst1_u8(o.as_mut_ptr().add(i), vqmovun_s16(q));
                }
            }
            tail(acc, full, c, act, res, OutSeg::U8(&mut o[full..], inv_s, zp));
        }
        OutSeg::F32(o) => {
            for i in (0..full).step_by(8) {
                // SAFETY: as above.
                unsafe {
                    let (y0, y1) = lanes8(acc, i, c, act, res);
                    vst1q_f32(o.as_mut_ptr().add(i), y0);
                    vst1q_f32(o.as_mut_ptr().add(i + 4), y1);
                }
            }
            tail(acc, full, c, act, res, OutSeg::F32(&mut o[full..]));
        }
    }
}

/// The scalar epilogue on acc[from..].
fn tail(acc: &[i32], from: usize, c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    if from == acc.len() {
        return;
    }
    let res = match res {
        ResSeg::None => ResSeg::None,
        ResSeg::U8(r, zp, s) => ResSeg::U8(&r[from..], zp, s),
        ResSeg::F32(r) => ResSeg::F32(&r[from..]),
    };
    epilogue::run_scalar(&acc[from..], c, act, res, out);
}

// ---------------------------------------------------------------------------------------------
// Panel packing

/// The NEON packing primitives.
struct NeonPack;

impl PackOps for NeonPack {
    #[inline(always)]
    unsafe fn interleave(rows: [*const u8; 4], dst: *mut u8, flip: u8) {
        // SAFETY: the trait's contract.
        unsafe { interleave_neon(rows, dst, flip) }
    }

    #[inline(always)]
    unsafe fn gather(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8) {
        // SAFETY: the trait's contract.
        unsafe { gather_neon(a, b, n1, s, dst) }
    }
}

/// `dense::pack_panel_with` compiled for NEON, its primitives inlined.
///
/// # Safety
/// As `dense::PackPanel`.
#[target_feature(enable = "neon")]
unsafe fn pack_neon(src: &Source, kdim: usize, flip: u8, j0: usize, j1: usize, kg: usize, panel: &mut [u8]) {
    // SAFETY: the caller's contract.
    unsafe { pack_panel_with::<NeonPack>(src, kdim, flip, j0, j1, kg, panel) }
}

/// Four rows of 16 bytes -> 16 pixels x 4 bytes with one `st4`.
///
/// # Safety
/// As `dense::PackOps::interleave`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn interleave_neon(rows: [*const u8; 4], dst: *mut u8, flip: u8) {
    // SAFETY: each row holds 16 bytes and dst 64 (the caller's contract).
    unsafe {
        let f = vdupq_n_u8(flip);
        let v = uint8x16x4_t(
            veorq_u8(vld1q_u8(rows[0]), f),
            veorq_u8(vld1q_u8(rows[1]), f),
            veorq_u8(vld1q_u8(rows[2]), f),
            veorq_u8(vld1q_u8(rows[3]), f),
        );
        vst4q_u8(dst, v);
    }
}

/// `MASK[16 - n..]` starts with n bytes 0xff: the first n lanes of a block from the first piece.
static MASK: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

/// 16 bytes at stride s (1, or 2: `ld2` keeps the even bytes).
///
/// # Safety
/// `p` is readable for 16 * s bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load16(p: *const u8, s: usize) -> uint8x16_t {
    // SAFETY: the caller's contract.
    unsafe {
        if s == 1 {
            vld1q_u8(p)
        } else {
            vld2q_u8(p).0
        }
    }
}

/// # Safety
/// As `dense::PackOps::gather`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn gather_neon(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8) {
    // SAFETY: the caller's contract; MASK[16 - n1..] has 16 bytes for n1 <= 16.
    unsafe {
        let va = load16(a, s);
        let v = if n1 >= 16 { va } else { vbslq_u8(vld1q_u8(MASK.as_ptr().add(16 - n1)), va, load16(b.sub(n1 * s), s)) };
        vst1q_u8(dst, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Dense micro-kernels (one 4-channel weight block x 16 pixels)

/// ARMv8.0: per pair of pixels and channel, `smull` (group g) + `smlal` (group g+1) into eight
/// i16 lanes, `sadalp` into four i32 lanes (two per pixel), a final `addp` per pixel pair.
/// Two passes of 8 pixels keep the 16 accumulators in registers.
///
/// # Safety
/// As `dense::Micro` with nb = 1.
#[target_feature(enable = "neon")]
unsafe fn micro_mlal(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
    let panel = panel as *const i8;
    let w = w as *const i8;
    // SAFETY: the caller's contract (kg groups of 64 panel bytes and 16 weight bytes; 4 rows of
    // 16 outputs).
    unsafe {
        for half in 0..2 {
            // acc[r][d]: channel r, pixels 2d, 2d+1 of this half; lanes (px, k01), (px, k23).
            let mut acc = [[vdupq_n_s32(0); 4]; 4];
            let mut g = 0;
            while g + 1 < kg {
                let a0 = panel.add(g * 64 + half * 32);
                let a1 = panel.add((g + 1) * 64 + half * 32);
                let x0 = [vld1q_s8(a0), vld1q_s8(a0.add(16))];
                let x1 = [vld1q_s8(a1), vld1q_s8(a1.add(16))];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w0 = vreinterpret_s8_s32(vld1_dup_s32(w.add(g * 16 + r * 4) as *const i32));
                    let w1 = vreinterpret_s8_s32(vld1_dup_s32(w.add((g + 1) * 16 + r * 4) as *const i32));
                    for q in 0..2 {
                        let p = vmlal_s8(vmull_s8(vget_low_s8(x0[q]), w0), vget_low_s8(x1[q]), w1);
                        acc[2 * q] = vpadalq_s16(acc[2 * q], p);
                        let p = vmlal_s8(vmull_s8(vget_high_s8(x0[q]), w0), vget_high_s8(x1[q]), w1);
                        acc[2 * q + 1] = vpadalq_s16(acc[2 * q + 1], p);
                    }
                }
                g += 2;
            }
            if g < kg {
                let a0 = panel.add(g * 64 + half * 32);
                let x0 = [vld1q_s8(a0), vld1q_s8(a0.add(16))];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w0 = vreinterpret_s8_s32(vld1_dup_s32(w.add(g * 16 + r * 4) as *const i32));
                    for q in 0..2 {
                        acc[2 * q] = vpadalq_s16(acc[2 * q], vmull_s8(vget_low_s8(x0[q]), w0));
                        acc[2 * q + 1] = vpadalq_s16(acc[2 * q + 1], vmull_s8(vget_high_s8(x0[q]), w0));
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let o = out.add(r * out_rs + half * 8);
                vst1q_s32(o, vpaddq_s32(acc[0], acc[1]));
                vst1q_s32(o.add(4), vpaddq_s32(acc[2], acc[3]));
            }
        }
    }
}

/// `sdot vd.4s, vn.16b, vm.4b[LANE]`: lane i of `acc` += dot(a[4i..4i+4], b[4 LANE..4 LANE+4]).
macro_rules! sdot_lane {
    ($acc:expr, $a:expr, $b:expr, $lane:literal) => {
        // Expands inside `micro_sdot`'s unsafe block: only runs when the CPU reports dotprod,
        // and the instruction reads and writes registers only.
        asm!(
            concat!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[", $lane, "]"),
            acc = inout(vreg) $acc,
            a = in(vreg) $a,
            b = in(vreg) $b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
}

/// ARMv8.2 dotprod: `sdot` by element, one weight vector (4 channels x 4 k) per group, 16
/// accumulators (4 channels x 4 vectors of 4 pixels).
///
/// # Safety
/// As `dense::Micro` with nb = 1; the CPU has dotprod.
#[target_feature(enable = "neon,dotprod")]
unsafe fn micro_sdot(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_mlal`; `sdot` needs dotprod, which `conv_with` checked.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 4]; 4];
        for g in 0..kg {
            let a = panel.add(g * 64) as *const i8;
            let x = [vld1q_s8(a), vld1q_s8(a.add(16)), vld1q_s8(a.add(32)), vld1q_s8(a.add(48))];
            let wv = vld1q_s8(w.add(g * 16) as *const i8);
            for q in 0..4 {
                sdot_lane!(acc[0][q], x[q], wv, "0");
                sdot_lane!(acc[1][q], x[q], wv, "1");
                sdot_lane!(acc[2][q], x[q], wv, "2");
                sdot_lane!(acc[3][q], x[q], wv, "3");
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, v) in acc.iter().enumerate() {
                vst1q_s32(out.add(r * out_rs + q * 4), *v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Depthwise

/// # Safety
/// As `depthwise::DwChannel`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn dw_channel_neon(pad: &[i16], pw: usize, w: &[i16], k: usize, s: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    // SAFETY: the caller's contract.
    unsafe {
        if s == 1 {
            dw_rows::<1>(pad, pw, w, k, oh, owp, acc)
        } else {
            dw_rows::<2>(pad, pw, w, k, oh, owp, acc)
        }
    }
}

/// 8 values for 8 output columns: consecutive (stride 1) or the even ones of 16 (`ld2`).
///
/// # Safety
/// `p` is readable for 8 * S values.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dw_load<const S: usize>(p: *const i16) -> int16x8_t {
    // SAFETY: the caller's contract.
    unsafe {
        if S == 1 {
            vld1q_s16(p)
        } else {
            vld2q_s16(p).0
        }
    }
}

/// Per tap: 16 inputs (already i16), `smlal`/`smlal2` by the tap's weight into four i32
/// vectors (u8 x s8 products, exact).
///
/// # Safety
/// As `dw_channel_neon` with stride S.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dw_rows<const S: usize>(pad: &[i16], pw: usize, w: &[i16], k: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    let kp2 = crate::pack::dw_row(k);
    let base = pad.as_ptr();
    // SAFETY: rows oy*S + ky < (oh - 1) * S + k exist; columns up to S * ox0 + k - 1 + 16 * S <=
    // S * owp + k <= pw (`padded_width`); acc holds oh * owp values.
    unsafe {
        for oy in 0..oh {
            for ox0 in (0..owp).step_by(16) {
                let mut a = [vdupq_n_s32(0); 4];
                for ky in 0..k {
                    let row = base.add((oy * S + ky) * pw + ox0 * S);
                    for kx in 0..k {
                        let wv = w[ky * kp2 + kx];
                        let lo = dw_load::<S>(row.add(kx));
                        let hi = dw_load::<S>(row.add(kx + 8 * S));
                        a[0] = vmlal_n_s16(a[0], vget_low_s16(lo), wv);
                        a[1] = vmlal_high_n_s16(a[1], lo, wv);
                        a[2] = vmlal_n_s16(a[2], vget_low_s16(hi), wv);
                        a[3] = vmlal_high_n_s16(a[3], hi, wv);
                    }
                }
                let dst = acc.as_mut_ptr().add(oy * owp + ox0);
                for (q, v) in a.iter().enumerate() {
                    vst1q_s32(dst.add(4 * q), *v);
                }
            }
        }
    }
}
