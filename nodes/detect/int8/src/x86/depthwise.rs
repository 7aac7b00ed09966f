//! Depthwise kernels on the i16-widened, zero-point-bordered plane.

use std::arch::x86_64::*;

use super::epilogue::{epilogue_avx2, epilogue_avx512};
use crate::Variant;

pub(crate) fn dw_kernel(v: Variant) -> crate::depthwise::DwKernel {
    let epilogue: crate::dense::Epilogue = if v == Variant::Avx512Vnni { epilogue_avx512 } else { epilogue_avx2 };
    crate::depthwise::DwKernel { channel: dw_channel_avx2, epilogue }
}

/// # Safety
/// As `depthwise::DwChannel`; the CPU has AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn dw_channel_avx2(pad: &[i16], pw: usize, w: &[i16], k: usize, s: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    // SAFETY: the caller's contract.
    unsafe {
        if s == 1 {
            dw_rows_s1(pad, pw, w, k, oh, owp, acc)
        } else {
            dw_rows_s2(pad, pw, w, k, oh, owp, acc)
        }
    }
}

/// Stride 1, taps in horizontal pairs (kx, kx+1) with `vpmaddwd` and no shuffles: 16 i16 read
/// at column ox0 + kx pair up (x[ox], x[ox+1]) for the even outputs ox0, ox0+2, ..., read at
/// ox0 + kx + 1 for the odd ones; the two accumulators are interleaved once at the end.
/// (u8 x s8 products summed in pairs, exact in i32.)
///
/// # Safety
/// As `dw_channel_avx2` with stride 1.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dw_rows_s1(pad: &[i16], pw: usize, w: &[i16], k: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    let kp2 = crate::pack::dw_row(k);
    let base = pad.as_ptr();
    // SAFETY: rows oy + ky < (oh - 1) + k exist; columns up to ox0 + kp2 - 1 + 16 <= owp + kp2 + 1
    // <= pw (`padded_width`); weights are read in pairs inside each row of kp2; acc holds
    // oh * owp values.
    unsafe {
        for oy in 0..oh {
            for ox0 in (0..owp).step_by(16) {
                let mut even = _mm256_setzero_si256();
                let mut odd = _mm256_setzero_si256();
                for ky in 0..k {
                    let row = base.add((oy + ky) * pw + ox0);
                    for kx in (0..k).step_by(2) {
                        let wp = _mm256_set1_epi32((w.as_ptr().add(ky * kp2 + kx) as *const i32).read_unaligned());
                        let a = _mm256_loadu_si256(row.add(kx) as *const __m256i);
                        let b = _mm256_loadu_si256(row.add(kx + 1) as *const __m256i);
                        even = _mm256_add_epi32(even, _mm256_madd_epi16(a, wp));
                        odd = _mm256_add_epi32(odd, _mm256_madd_epi16(b, wp));
                    }
                }
                // [e0 o0 e1 o1 | e4 o4 e5 o5], [e2 o2 e3 o3 | e6 o6 e7 o7] -> columns 0..8, 8..16.
                let lo = _mm256_unpacklo_epi32(even, odd);
                let hi = _mm256_unpackhi_epi32(even, odd);
                let dst = acc.as_mut_ptr().add(oy * owp + ox0);
                _mm256_storeu_si256(dst as *mut __m256i, _mm256_permute2x128_si256::<0x20>(lo, hi));
                _mm256_storeu_si256(dst.add(8) as *mut __m256i, _mm256_permute2x128_si256::<0x31>(lo, hi));
            }
        }
    }
}

/// Stride 2: the pair (kx, kx+1) of output ox reads x[2 ox + kx], x[2 ox + kx + 1], adjacent,
/// so 16 i16 read at column 2 ox0 + kx give 8 consecutive outputs with one `vpmaddwd`.
///
/// # Safety
/// As `dw_channel_avx2` with stride 2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dw_rows_s2(pad: &[i16], pw: usize, w: &[i16], k: usize, oh: usize, owp: usize, acc: &mut [i32]) {
    let kp2 = crate::pack::dw_row(k);
    let base = pad.as_ptr();
    // SAFETY: rows 2 oy + ky < 2 (oh - 1) + k exist; columns up to 2 ox0 + kp2 - 2 + 32 <=
    // 2 owp + kp2 <= pw; acc holds oh * owp values.
    unsafe {
        for oy in 0..oh {
            for ox0 in (0..owp).step_by(16) {
                let mut a0 = _mm256_setzero_si256();
                let mut a1 = _mm256_setzero_si256();
                for ky in 0..k {
                    let row = base.add((2 * oy + ky) * pw + 2 * ox0);
                    for kx in (0..k).step_by(2) {
                        let wp = _mm256_set1_epi32((w.as_ptr().add(ky * kp2 + kx) as *const i32).read_unaligned());
                        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256(row.add(kx) as *const __m256i), wp));
                        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_loadu_si256(row.add(kx + 16) as *const __m256i), wp));
                    }
                }
                let dst = acc.as_mut_ptr().add(oy * owp + ox0);
                _mm256_storeu_si256(dst as *mut __m256i, a0);
                _mm256_storeu_si256(dst.add(8) as *mut __m256i, a1);
            }
        }
    }
}
