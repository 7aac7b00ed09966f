//! The epilogue on 8 (AVX2) and 16 (AVX-512) lanes, replaying `crate::epilogue::run_scalar`.

use std::arch::x86_64::*;

use crate::epilogue::{self, Chan, OutSeg, ResSeg, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, MAGIC, REQ_LIMIT};
use crate::Act;

/// exp(x) on 8 lanes: `epilogue::fast_exp` operation for operation (fused where it fuses).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    let magic = _mm256_set1_ps(MAGIC);
    let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), magic);
    let n = _mm256_sub_ps(t, magic);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x));
    let r2 = _mm256_mul_ps(r, r);
    let mut p = _mm256_set1_ps(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)));
    _mm256_mul_ps(e, _mm256_castsi256_ps(bits))
}

/// The epilogue on 8 lanes before the output conversion.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn value8(acc: __m256i, comp: __m256i, mult: __m256, bias: __m256, act: Act) -> __m256 {
    let y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc, comp)), mult, bias);
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
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes8(acc: &[i32], i: usize, comp: __m256i, mult: __m256, bias: __m256, act: Act, r: Res8) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let y = value8(_mm256_loadu_si256(acc.as_ptr().add(i) as *const __m256i), comp, mult, bias, act);
        match r.res {
            ResSeg::None => y,
            ResSeg::U8(d, _, _) => {
                let q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(d.as_ptr().add(i) as *const __m128i));
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, r.zp)), r.scale, y)
            }
            ResSeg::F32(d) => _mm256_add_ps(y, _mm256_loadu_ps(d.as_ptr().add(i))),
        }
    }
}

/// `epilogue::run_scalar` on 8 lanes at a time (the tail runs the scalar code itself).
///
/// # Safety
/// The CPU has AVX2 and FMA; the residual and output segments hold acc.len() values.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn epilogue_avx2(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg) {
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
            let hi = _mm256_set1_ps(REQ_LIMIT);
            for i in (0..full).step_by(8) {
                // SAFETY: i + 8 <= full <= n, the residual's and output's length.
                let y = unsafe { lanes8(acc, i, comp, mult, bias, act, r8) };
                // The scalar rule clamps to [-512, 512] and rounds half to even. `vcvtps2dq`
                // rounds half to even (Rust code always runs with the default MXCSR) and turns
                // anything below -2^31 or NaN into i32::MIN, which saturates to 0 just as -512
                // does, so only the upper clamp is needed (`minps(hi, t)` passes a NaN t on).
                let r = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_mul_ps(y, inv)));
                let q = _mm256_add_epi32(r, zpv);
                // |q| < 2^15: packs is exact, packus saturates to 0..=255 like the scalar clamp.
                let w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
                let b = _mm_packus_epi16(w16, w16);
                // SAFETY: i + 8 <= o.len().
                unsafe { _mm_storel_epi64(o.as_mut_ptr().add(i) as *mut __m128i, b) };
            }
            // SAFETY: this function has FMA.
            unsafe { tail(acc, full, c, act, res, OutSeg::U8(&mut o[full..], inv_s, zp)) };
        }
        OutSeg::F32(o) => {
            for i in (0..full).step_by(8) {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(i), lanes8(acc, i, comp, mult, bias, act, r8)) };
            }
            // SAFETY: this function has FMA.
            unsafe { tail(acc, full, c, act, res, OutSeg::F32(&mut o[full..])) };
        }
    }
}

/// exp(x) on 16 lanes: `epilogue::fast_exp` operation for operation (fused where it fuses).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    let magic = _mm512_set1_ps(MAGIC);
    let t = _mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), magic);
    let n = _mm512_sub_ps(t, magic);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(LN2_LO), _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x));
    let r2 = _mm512_mul_ps(r, r);
    let mut p = _mm512_set1_ps(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)));
    _mm512_mul_ps(e, _mm512_castsi512_ps(bits))
}

/// Outputs i..i+16 before the output conversion (as `lanes8`, 16 lanes).
///
/// # Safety
/// i + 16 <= acc.len() = the residual's length; the CPU has AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn lanes16(acc: &[i32], i: usize, c: Chan, act: Act, res: ResSeg) -> __m512 {
    // SAFETY: the caller's contract.
    unsafe {
        let a = _mm512_add_epi32(_mm512_loadu_si512(acc.as_ptr().add(i) as *const __m512i), _mm512_set1_epi32(c.comp));
        let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(c.mult), _mm512_set1_ps(c.bias));
        let y = match act {
            Act::None => y,
            Act::Silu => {
                let neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(y), _mm512_set1_epi32(i32::MIN)));
                _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0), exp16(neg)))
            }
        };
        match res {
            ResSeg::None => y,
            ResSeg::U8(r, zp, s) => {
                let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(r.as_ptr().add(i) as *const __m128i));
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, _mm512_set1_epi32(zp))), _mm512_set1_ps(s), y)
            }
            ResSeg::F32(r) => _mm512_add_ps(y, _mm512_loadu_ps(r.as_ptr().add(i))),
        }
    }
}

/// `epilogue::run_scalar` on 16 lanes at a time, then the AVX2 one on the rest.
///
/// # Safety
/// The CPU has AVX512F, AVX2 and FMA; the residual and output segments hold acc.len() values.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn epilogue_avx512(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    let n = acc.len();
    let full = n / 16 * 16;
    match out {
        OutSeg::U8(o, inv_s, zp) => {
            let (inv, zpv, hi) = (_mm512_set1_ps(inv_s), _mm512_set1_epi32(zp), _mm512_set1_ps(REQ_LIMIT));
            for i in (0..full).step_by(16) {
                // SAFETY: i + 16 <= full <= n, the residual's and output's length.
                unsafe {
                    let y = lanes16(acc, i, c, act, res);
                    // As `epilogue_avx2`: `vcvtps2dq` rounds half to even and maps NaN and
                    // values below -2^31 to i32::MIN; the max with 0 then `vpmovusdb` (unsigned
                    // saturation) is the clamp to 0..=255.
                    let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_mul_ps(y, inv))), zpv);
                    let b = _mm512_cvtusepi32_epi8(_mm512_max_epi32(q, _mm512_setzero_si512()));
                    _mm_storeu_si128(o.as_mut_ptr().add(i) as *mut __m128i, b);
                }
            }
            // SAFETY: the caller's contract, for the rest of the segments.
            unsafe { epilogue_avx2(&acc[full..], c, act, res_from(res, full), OutSeg::U8(&mut o[full..], inv_s, zp)) };
        }
        OutSeg::F32(o) => {
            for i in (0..full).step_by(16) {
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(i), lanes16(acc, i, c, act, res)) };
            }
            // SAFETY: as above.
            unsafe { epilogue_avx2(&acc[full..], c, act, res_from(res, full), OutSeg::F32(&mut o[full..])) };
        }
    }
}

fn res_from(res: ResSeg, from: usize) -> ResSeg {
    match res {
        ResSeg::None => ResSeg::None,
        ResSeg::U8(r, zp, s) => ResSeg::U8(&r[from..], zp, s),
        ResSeg::F32(r) => ResSeg::F32(&r[from..]),
    }
}

/// The scalar epilogue on acc[from..] (the same bits: a fused multiply-add is one IEEE
/// operation whether `vfmadd` or libm's `fmaf` does it).
///
/// # Safety
/// The CPU has FMA.
#[target_feature(enable = "fma")]
unsafe fn tail(acc: &[i32], from: usize, c: Chan, act: Act, res: ResSeg, out: OutSeg) {
    if from == acc.len() {
        return;
    }
    epilogue::run_scalar(&acc[from..], c, act, res_from(res, from), out);
}
