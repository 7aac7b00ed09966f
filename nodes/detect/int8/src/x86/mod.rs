//! x86_64 kernels: AVX2 (exact i16 `vpmaddwd`, and 7-bit `vpmaddubsw`), AVX-VNNI and
//! AVX512-VNNI (`vpdpbusd`), selected at run time.
//!
//! Dense micro-kernels read a panel block `[kg][16 px][4 k]` u8 and weight blocks
//! `[kg][4 co][4 k]` s8 (one `vpbroadcastd` per channel and group) and keep one accumulator
//! vector per (channel, 8 or 16 pixels).

use std::arch::x86_64::*;

mod depthwise;
mod epilogue;
mod micro;

use crate::dense::{pack_panel_with, Kernel, PackOps, Source};
use crate::pack::RawSum;
use crate::Variant;

pub(crate) use depthwise::dw_kernel;
use epilogue::{epilogue_avx2, epilogue_avx512};
use micro::{micro_avx2_exact, micro_avx2_madd7, micro_avx512_vnni, micro_avx_vnni};

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

pub(crate) fn has_avx512_vbmi() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// `dst[i] = lut[src[i]]`: two `vpermi2b` (the table's low and high 128 entries) and a blend on
/// each byte's top bit per 64 bytes.
///
/// # Safety
/// The CPU has AVX512F, AVX512BW and AVX512-VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(crate) unsafe fn lookup_avx512_vbmi(lut: &[u8; 256], src: &[u8], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    // SAFETY: every load and store lies inside `lut`, `src[..n]` or `dst[..n]`.
    unsafe {
        let t = |o: usize| _mm512_loadu_si512(lut.as_ptr().add(o) as *const __m512i);
        let (t0, t1, t2, t3) = (t(0), t(64), t(128), t(192));
        let mut i = 0;
        while i + 64 <= n {
            let x = _mm512_loadu_si512(src.as_ptr().add(i) as *const __m512i);
            let lo = _mm512_permutex2var_epi8(t0, x, t1);
            let hi = _mm512_permutex2var_epi8(t2, x, t3);
            let v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), lo, hi);
            _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut __m512i, v);
            i += 64;
        }
        for j in i..n {
            *dst.get_unchecked_mut(j) = lut[*src.get_unchecked(j) as usize];
        }
    }
}

pub(crate) fn dense_kernel(v: Variant) -> Kernel {
    let (micro, nb_max, wide_weights): (crate::dense::Micro, usize, bool) = match v {
        Variant::Avx2 => (micro_avx2_exact, 1, true),
        Variant::Avx2Madd7 => (micro_avx2_madd7, 1, false),
        Variant::AvxVnni => (micro_avx_vnni, 3, false),
        Variant::Avx512Vnni => (micro_avx512_vnni, 4, false),
        _ => unreachable!("not an x86 variant"),
    };
    let epilogue: crate::dense::Epilogue = if v == Variant::Avx512Vnni { epilogue_avx512 } else { epilogue_avx2 };
    Kernel { micro, nb_max, wide_weights, raw: RawSum::U8, epilogue, pack: pack_avx2 }
}

/// The AVX2 packing primitives (every x86 variant packs with them).
struct Avx2Pack;

impl PackOps for Avx2Pack {
    #[inline(always)]
    unsafe fn interleave(rows: [*const u8; 4], dst: *mut u8, flip: u8) {
        // SAFETY: the trait's contract (the caller has AVX2).
        unsafe { interleave_avx2(rows, dst, flip) }
    }

    #[inline(always)]
    unsafe fn gather(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8) {
        // SAFETY: as above.
        unsafe { gather_avx2(a, b, n1, s, dst) }
    }
}

/// `dense::pack_panel_with` compiled for AVX2, its primitives inlined.
///
/// # Safety
/// As `dense::PackPanel`; the CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn pack_avx2(src: &Source, kdim: usize, flip: u8, j0: usize, j1: usize, kg: usize, panel: &mut [u8]) {
    // SAFETY: the caller's contract.
    unsafe { pack_panel_with::<Avx2Pack>(src, kdim, flip, j0, j1, kg, panel) }
}

// ---------------------------------------------------------------------------------------------
// Panel packing

/// Four rows of 16 bytes -> 16 pixels x 4 bytes (`dst[4 px + q] = rows[q][px] ^ flip`).
///
/// # Safety
/// As `dense::PackOps::interleave`; the CPU has AVX2.
#[inline]
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

/// `MASK[16 - n..]` starts with n bytes 0xff: the first n lanes of a block from the first piece.
pub(crate) static MASK: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

/// 16 bytes at stride s (1, or 2: the even bytes of 32 via a mask and `vpackuswb`).
///
/// # Safety
/// `p` is readable for 16 * s bytes; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16(p: *const u8, s: usize) -> __m128i {
    // SAFETY: the caller's contract.
    unsafe {
        if s == 1 {
            _mm_loadu_si128(p as *const __m128i)
        } else {
            let v = _mm256_and_si256(_mm256_loadu_si256(p as *const __m256i), _mm256_set1_epi16(0xff));
            _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
        }
    }
}

/// # Safety
/// As `dense::PackOps::gather`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gather_avx2(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8) {
    // SAFETY: the caller's contract; MASK[16 - n1..] has 16 bytes for n1 <= 16.
    unsafe {
        let va = load16(a, s);
        let v = if n1 >= 16 {
            va
        } else {
            let vb = load16(b.sub(n1 * s), s);
            _mm_blendv_epi8(vb, va, _mm_loadu_si128(MASK.as_ptr().add(16 - n1) as *const __m128i))
        };
        _mm_storeu_si128(dst as *mut __m128i, v);
    }
}

