//! Dense micro-kernels: a panel block `[kg][16 px][4 k]` u8 times weight blocks `[kg][4 co][4 k]`
//! s8 into raw i32 sums.

use std::arch::x86_64::*;

use crate::dense::NR;
use crate::pack::{KG, MR};

const _: () = assert!(NR == 16 && MR == 4 && KG == 4);

/// AVX-VNNI: `vpdpbusd` (u8 x s8, four products summed exactly into each i32 lane), up to 3
/// weight blocks (12 channels) x 8 pixels per pass (12 accumulators, enough to hide the
/// instruction's latency), two passes per 16-pixel block.
///
/// # Safety
/// As `dense::Micro` with nb <= 3; the CPU has AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn micro_avx_vnni(panel: *const u8, w: *const u8, ws: usize, kg: usize, nb: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: as `micro_vnni256`.
    unsafe {
        match nb {
            3 => micro_vnni256::<3>(panel, w, ws, kg, out, out_rs),
            2 => micro_vnni256::<2>(panel, w, ws, kg, out, out_rs),
            _ => micro_vnni256::<1>(panel, w, ws, kg, out, out_rs),
        }
    }
}

/// # Safety
/// The caller's contract of `dense::Micro` for NB blocks (kg groups of 64 panel bytes, NB
/// weight blocks ws bytes apart of kg groups of 16 bytes, 4 * NB rows of 16 outputs); the CPU
/// has AVX-VNNI.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn micro_vnni256<const NB: usize>(panel: *const u8, w: *const u8, ws: usize, kg: usize, out: *mut i32, out_rs: usize) {
    // SAFETY: the function's contract.
    unsafe {
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_si256(); 4]; NB];
            for g in 0..kg {
                let a = _mm256_loadu_si256(panel.add(g * 64 + half * 32) as *const __m256i);
                for (blk, acc) in acc.iter_mut().enumerate() {
                    let wg = w.add(blk * ws + g * 16);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let b = _mm256_set1_epi32((wg.add(r * 4) as *const i32).read_unaligned());
                        *acc = _mm256_dpbusd_avx_epi32(*acc, a, b);
                    }
                }
            }
            for (blk, acc) in acc.iter().enumerate() {
                for (r, acc) in acc.iter().enumerate() {
                    _mm256_storeu_si256(out.add((blk * 4 + r) * out_rs + half * 8) as *mut __m256i, *acc);
                }
            }
        }
    }
}

/// AVX2 for 7-bit weights: `vpmaddubsw` (u8 x s8 pairs into i16; |2 * 255 * 63| < 2^15, so it
/// never saturates) then `vpmaddwd` with ones into i32.
///
/// # Safety
/// As `dense::Micro` with nb = 1; the CPU has AVX2; all weights lie in [-63, 63].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn micro_avx2_madd7(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
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
pub(super) unsafe fn micro_avx2_exact(panel: *const u8, w: *const u8, _ws: usize, kg: usize, _nb: usize, out: *mut i32, out_rs: usize) {
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
pub(super) unsafe fn micro_avx512_vnni(panel: *const u8, w: *const u8, ws: usize, kg: usize, nb: usize, out: *mut i32, out_rs: usize) {
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
