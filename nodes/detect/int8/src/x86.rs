//! x86_64 kernels: AVX2 (exact i16 `vpmaddwd`, and 7-bit `vpmaddubsw`), AVX-VNNI and
//! AVX512-VNNI (`vpdpbusd`), selected at run time.
//!
//! Dense micro-kernels read a panel block `[kg][16 px][4 k]` u8 and weight blocks
//! `[kg][4 co][4 k]` s8 (one `vpbroadcastd` per channel and group) and keep one accumulator
//! vector per (channel, 8 or 16 pixels).

use std::arch::x86_64::*;

use crate::dense::{Kernel, NR};
use crate::epilogue::{self, Chan, OutSeg, ResSeg, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, MAGIC, REQ_LIMIT};
use crate::pack::{RawSum, KG, MR};
use crate::{Act, Variant};

pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

pub(crate) fn has_avx_vnni() -> bool {
    has_avx2() && std::arch::is_x86_feature_detected!("avxvnni")
}

pub(crate) fn has_avx512_vnni() -> bool {
    has_avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

pub(crate) fn dense_kernel(v: Variant) -> Kernel {
    let (micro, nb_max, wide_weights): (crate::dense::Micro, usize, bool) = match v {
        Variant::Avx2 => (micro_avx2_exact, 1, true),
        Variant::Avx2Madd7 => (micro_avx2_madd7, 1, false),
        Variant::AvxVnni => (micro_avx_vnni, 1, false),
        Variant::Avx512Vnni => (micro_avx512_vnni, 4, false),
        _ => unreachable!("not an x86 variant"),
    };
    Kernel { micro, nb_max, wide_weights, raw: RawSum::U8, epilogue: epilogue_avx2, interleave: interleave_avx2 }
}

// ---------------------------------------------------------------------------------------------
// Epilogue

/// exp(x) on 8 lanes: `epilogue::fast_exp` operation for operation.
#[inline]
#[target_feature(enable = "avx2")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    let magic = _mm256_set1_ps(MAGIC);
    let t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), magic);
    let n = _mm256_sub_ps(t, magic);
    let r = _mm256_add_ps(
        _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(LN2_HI))),
        _mm256_mul_ps(n, _mm256_set1_ps(LN2_LO)),
    );
    let r2 = _mm256_mul_ps(r, r);
    let mut p = _mm256_set1_ps(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c));
    }
    let e = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, r2), r), _mm256_set1_ps(1.0));
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)));
    _mm256_mul_ps(e, _mm256_castsi256_ps(bits))
}

/// The epilogue on 8 lanes before the output conversion.
#[inline]
#[target_feature(enable = "avx2")]
fn value8(acc: __m256i, comp: __m256i, mult: __m256, bias: __m256, act: Act) -> __m256 {
    let y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc, comp)), mult), bias);
    match act {
        Act::None => y,
        Act::Silu => {
            // -y by flipping the sign bit (exact, as scalar negation).
            let neg = _mm256_xor_ps(y, _mm256_set1_ps(-0.0));
            _mm256_div_ps(y, _mm256_add_ps(_mm256_set1_ps(1.0), exp8(neg)))
        }
    }
}

/// Residual handling for `lanes8`.
#[derive(Clone, Copy)]
struct Res8<'a> {
    res: ResSeg<'a>,
    zp: __m256i,
    scale: __m256,
}

/// Outputs i..i+8 before the output conversion.
///
/// # Safety
/// i + 8 <= acc.len() = the residual's length; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes8(acc: &[i32], i: usize, comp: __m256i, mult: __m256, bias: __m256, act: Act, r: Res8) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let y = value8(_mm256_loadu_si256(acc.as_ptr().add(i) as *const __m256i), comp, mult, bias, act);
        match r.res {
            ResSeg::None => y,
            ResSeg::U8(d, _, _) => {
                let q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(d.as_ptr().add(i) as *const __m128i));
                _mm256_add_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, r.zp)), r.scale))
            }
            ResSeg::F32(d) => _mm256_add_ps(y, _mm256_loadu_ps(d.as_ptr().add(i))),
        }
    }
}

/// `epilogue::run_scalar` on 8 lanes at a time (the tail runs the scalar code itself).
///
/// # Safety
/// The CPU has AVX2; the residual and output segments hold acc.len() values.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn epilogue_avx2(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    let n = acc.len();
    let full = n / 8 * 8;
    let comp = _mm256_set1_epi32(c.comp);
    let mult = _mm256_set1_ps(c.mult);
    let bias = _mm256_set1_ps(c.bias);
    let (rzp, rscale) = match res {
        ResSeg::U8(_, zp, s) => (zp, s),
        _ => (0, 0.0),
    };
    let r8 = Res8 { res, zp: _mm256_set1_epi32(rzp), scale: _mm256_set1_ps(rscale) };
    match out {
        OutSeg::U8(o, inv_s, zp) => {
            let (inv, zpv) = (_mm256_set1_ps(inv_s), _mm256_set1_epi32(zp));
            let (lo, hi) = (_mm256_set1_ps(-REQ_LIMIT), _mm256_set1_ps(REQ_LIMIT));
            for i in (0..full).step_by(8) {
                // SAFETY: i + 8 <= full <= n, the residual's and output's length.
                let y = unsafe { lanes8(acc, i, comp, mult, bias, act, r8) };
                let t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(y, inv), lo), hi);
                let r = _mm256_cvttps_epi32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t));
                let q = _mm256_add_epi32(r, zpv);
                // |q| < 2^15: packs is exact, packus saturates to 0..=255 like the scalar clamp.
                let w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
                let b = _mm_packus_epi16(w16, w16);
                // SAFETY: i + 8 <= o.len().
                unsafe { _mm_storel_epi64(o.as_mut_ptr().add(i) as *mut __m128i, b) };
            }
            tail(acc, full, c, act, res, OutSeg::U8(&mut o[full..], inv_s, zp));
        }
        OutSeg::F32(o) => {
            for i in (0..full).step_by(8) {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(i), lanes8(acc, i, comp, mult, bias, act, r8)) };
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

/// Four rows of 16 bytes -> 16 pixels x 4 bytes (`dst[4 px + q] = rows[q][px] ^ flip`).
///
/// # Safety
/// As `dense::Interleave`; the CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn interleave_avx2(rows: [*const u8; 4], dst: *mut u8, flip: u8) {
    // SAFETY: each row holds 16 bytes and dst 64 (the caller's contract).
    unsafe {
        let f = _mm_set1_epi8(flip as i8);
        let r0 = _mm_xor_si128(_mm_loadu_si128(rows[0] as *const __m128i), f);
        let r1 = _mm_xor_si128(_mm_loadu_si128(rows[1] as *const __m128i), f);
        let r2 = _mm_xor_si128(_mm_loadu_si128(rows[2] as *const __m128i), f);
        let r3 = _mm_xor_si128(_mm_loadu_si128(rows[3] as *const __m128i), f);
        let a = _mm_unpacklo_epi8(r0, r1); // px 0..8: (q0, q1)
        let b = _mm_unpackhi_epi8(r0, r1); // px 8..16
        let c = _mm_unpacklo_epi8(r2, r3);
        let d = _mm_unpackhi_epi8(r2, r3);
        _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(a, c));
        _mm_storeu_si128(dst.add(16) as *mut __m128i, _mm_unpackhi_epi16(a, c));
        _mm_storeu_si128(dst.add(32) as *mut __m128i, _mm_unpacklo_epi16(b, d));
        _mm_storeu_si128(dst.add(48) as *mut __m128i, _mm_unpackhi_epi16(b, d));
    }
}

// ---------------------------------------------------------------------------------------------
// Dense micro-kernels (one 4-channel weight block, or up to 4 for AVX-512, x 16 pixels)

const _: () = assert!(NR == 16 && MR == 4 && KG == 4);

/// AVX-VNNI: `vpdpbusd` (u8 x s8, four products summed exactly into each i32 lane).
///
/// # Safety
/// As `dense::Micro` with nb = 1; the CPU has AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn micro_avx_vnni(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: the caller's contract (kg groups of 64 panel bytes and 16 weight bytes; 4 rows of
    // 16 outputs).
    unsafe {
        let mut acc = [[_mm256_setzero_si256(); 2]; 4];
        for g in 0..kg {
            let a0 = _mm256_loadu_si256(panel.add(g * 64) as *const __m256i);
            let a1 = _mm256_loadu_si256(panel.add(g * 64 + 32) as *const __m256i);
            let wg = w.add(g * 16);
            for (r, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_set1_epi32((wg.add(r * 4) as *const i32).read_unaligned());
                acc[0] = _mm256_dpbusd_avx_epi32(acc[0], a0, b);
                acc[1] = _mm256_dpbusd_avx_epi32(acc[1], a1, b);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_si256(out.add(r * out_rs) as *mut __m256i, acc[0]);
            _mm256_storeu_si256(out.add(r * out_rs + 8) as *mut __m256i, acc[1]);
        }
    }
}

/// AVX2 for 7-bit weights: `vpmaddubsw` (u8 x s8 pairs into i16; |2 * 255 * 63| < 2^15, so it
/// never saturates) then `vpmaddwd` with ones into i32.
///
/// # Safety
/// As `dense::Micro` with nb = 1; the CPU has AVX2; all weights lie in [-63, 63].
#[target_feature(enable = "avx2")]
unsafe fn micro_avx2_madd7(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_avx_vnni`.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; 4];
        for g in 0..kg {
            let a0 = _mm256_loadu_si256(panel.add(g * 64) as *const __m256i);
            let a1 = _mm256_loadu_si256(panel.add(g * 64 + 32) as *const __m256i);
            let wg = w.add(g * 16);
            for (r, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_set1_epi32((wg.add(r * 4) as *const i32).read_unaligned());
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(_mm256_maddubs_epi16(a0, b), ones));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(_mm256_maddubs_epi16(a1, b), ones));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_si256(out.add(r * out_rs) as *mut __m256i, acc[0]);
            _mm256_storeu_si256(out.add(r * out_rs + 8) as *mut __m256i, acc[1]);
        }
    }
}

/// AVX2 exact for weights in [-127, 127]: activations zero-extended to i16 (`vpmovzxbw`), the
/// i16 weight panel broadcast 4 k at a time, `vpmaddwd` into i32 (lanes hold half a pixel's
/// group: (k0, k1) and (k2, k3)), the halves added at the end with `vphaddd`.
///
/// # Safety
/// As `dense::Micro` with nb = 1 and the i16 weight panel; the CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn micro_avx2_exact(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_avx_vnni`, with 32 weight bytes (16 i16) per group.
    unsafe {
        for half in 0..2 {
            // acc[r][0]: pixels 0..4 of this half, acc[r][1]: pixels 4..8.
            let mut acc = [[_mm256_setzero_si256(); 2]; 4];
            for g in 0..kg {
                let a = panel.add(g * 64 + half * 32);
                let lo = _mm256_cvtepu8_epi16(_mm_loadu_si128(a as *const __m128i));
                let hi = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.add(16) as *const __m128i));
                let wg = w.add(g * 32);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm256_set1_epi64x((wg.add(r * 8) as *const i64).read_unaligned());
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(lo, b));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(hi, b));
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                // hadd: [p0 p1 p4 p5 | p2 p3 p6 p7] -> permute the 64-bit pairs into order.
                let s = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(acc[0], acc[1]));
                _mm256_storeu_si256(out.add(r * out_rs + half * 8) as *mut __m256i, s);
            }
        }
    }
}

/// AVX512-VNNI: `vpdpbusd` on 16 pixels (one zmm per group) for up to 4 weight blocks (16
/// channels, 16 accumulators).
///
/// # Safety
/// As `dense::Micro` with nb <= 4; the CPU has AVX512F/BW/VL and AVX512-VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn micro_avx512_vnni(panel: *const u8, w: *const u8, ws: usize, kg: usize, nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_avx_vnni`, for nb weight blocks ws bytes apart.
    unsafe {
        match nb {
            4 => micro512::<4>(panel, w, ws, kg, out, out_rs),
            3 => micro512::<3>(panel, w, ws, kg, out, out_rs),
            2 => micro512::<2>(panel, w, ws, kg, out, out_rs),
            _ => micro512::<1>(panel, w, ws, kg, out, out_rs),
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn micro512<const NB: usize>(panel: *const u8, w: *const u8, ws: usize, kg: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_avx512_vnni`.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); 4]; NB];
        for g in 0..kg {
            let a = _mm512_loadu_si512(panel.add(g * 64) as *const __m512i);
            for (blk, acc) in acc.iter_mut().enumerate() {
                let wg = w.add(blk * ws + g * 16);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_epi32((wg.add(r * 4) as *const i32).read_unaligned());
                    *acc = _mm512_dpbusd_epi32(*acc, a, b);
                }
            }
        }
        for (blk, acc) in acc.iter().enumerate() {
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_si512(out.add((blk * 4 + r) * out_rs) as *mut __m512i, *acc);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Depthwise

pub(crate) fn dw_kernel() -> crate::depthwise::DwKernel {
    crate::depthwise::DwKernel { channel: dw_channel_avx2, epilogue: epilogue_avx2 }
}

/// 16 padded-plane bytes for output columns ox0..ox0+16 of tap column kx, as i16: stride 1
/// zero-extends 16 consecutive bytes, stride 2 keeps the even bytes of 32 (the low byte of each
/// 16-bit word).
///
/// # Safety
/// The row holds the bytes read; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dw_load<const S: usize>(row: *const u8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe {
        if S == 1 {
            _mm256_cvtepu8_epi16(_mm_loadu_si128(row as *const __m128i))
        } else {
            _mm256_and_si256(_mm256_loadu_si256(row as *const __m256i), _mm256_set1_epi16(0xff))
        }
    }
}

/// # Safety
/// As `depthwise::DwChannel`; the CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn dw_channel_avx2(pad: &[u8], pw: usize, w: &[i16], k: usize, s: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    // SAFETY: the caller's contract.
    unsafe {
        if s == 1 {
            dw_rows::<1>(pad, pw, w, k, oh, owp, acc)
        } else {
            dw_rows::<2>(pad, pw, w, k, oh, owp, acc)
        }
    }
}

/// Taps in pairs (t, t+1) in row-major tap order: the two taps' inputs interleaved as i16 pairs
/// (`vpunpcklwd`/`vpunpckhwd`) and multiplied with the weight pair by `vpmaddwd` (u8 x s8
/// products, |255 * 127 * 2| < 2^31: exact); a missing last tap has weight 0.
///
/// # Safety
/// As `dw_channel_avx2` with stride S.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dw_rows<const S: usize>(pad: &[u8], pw: usize, w: &[i16], k: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    let kk = k * k;
    let base = pad.as_ptr();
    // SAFETY: every read stays inside `pad` (`padded_width` leaves room for the last block's
    // 16 or 32-byte loads); weights are read in pairs from a row of dw_stride(kk) >= kk + 1
    // values; acc holds oh * owp values.
    unsafe {
        for oy in 0..oh {
            for ox0 in (0..owp).step_by(16) {
                let mut lo = _mm256_setzero_si256();
                let mut hi = _mm256_setzero_si256();
                let mut t = 0;
                while t < kk {
                    let (ky0, kx0) = (t / k, t % k);
                    let t1 = if t + 1 < kk { t + 1 } else { t };
                    let (ky1, kx1) = (t1 / k, t1 % k);
                    let a = dw_load::<S>(base.add((oy * S + ky0) * pw + ox0 * S + kx0));
                    let b = dw_load::<S>(base.add((oy * S + ky1) * pw + ox0 * S + kx1));
                    let wp = _mm256_set1_epi32((w.as_ptr().add(t) as *const i32).read_unaligned());
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
                    t += 2;
                }
                // lo = columns [0..4 | 8..12], hi = [4..8 | 12..16].
                let dst = acc.as_mut_ptr().add(oy * owp + ox0);
                _mm256_storeu_si256(dst as *mut __m256i, _mm256_permute2x128_si256::<0x20>(lo, hi));
                _mm256_storeu_si256(dst.add(8) as *mut __m256i, _mm256_permute2x128_si256::<0x31>(lo, hi));
            }
        }
    }
}
