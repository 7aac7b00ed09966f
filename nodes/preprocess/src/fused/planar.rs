//! One source row into planar R, G, B u8 rows (`stride` bytes apart): the layout the horizontal
//! pass reads with contiguous windows. YUV is bit-exact with [`crate::pixel::yuv_to_rgb`].
//!
//! The portable loops are the reference and handle every tail; on x86_64 with AVX2 the bulk of an
//! RGB/BGR row is de-interleaved with `vpshufb` (32 pixels per step), and YUYV/NV12 are converted
//! 32 pixels per step in i32 lanes (even and odd pixels apart, so each chroma pair lines up with
//! its two pixels without permutes; `packssdw` + `packuswb` do the clamp to 0..255).

use perch_pipeline::{ImageBuf, PixelFormat};

use super::horizontal::Simd;
use crate::pixel::{yuv_to_rgb, CUB, CUG, CVG, CVR, CY, HALF, SHIFT};

/// Planes this format produces (gray: one, copied to three at the end).
pub(crate) fn planes(format: PixelFormat) -> usize {
    if format == PixelFormat::Gray8 {
        1
    } else {
        3
    }
}

/// Source row `y` of `src` into `out` (plane `c` at `c * stride`, `src.width` bytes each).
#[inline(always)]
pub(crate) fn row(src: &ImageBuf, y: usize, out: &mut [u8], stride: usize, simd: Option<Simd>) {
    let w = src.width as usize;
    let d = &src.data;
    let (r, rest) = out.split_at_mut(stride);
    let (g, b) = rest.split_at_mut(stride);
    let (r, g, b) = (&mut r[..w], &mut g[..w], &mut b[..w]);
    match src.format {
        PixelFormat::Gray8 => r.copy_from_slice(&d[y * w..(y + 1) * w]),
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => {
            let o = if src.format == PixelFormat::Rgb8 { [0, 1, 2] } else { [2, 1, 0] };
            let px = &d[y * w * 3..(y + 1) * w * 3];
            let done = simd_split3(px, r, g, b, o, simd);
            split3(&px[done * 3..], &mut r[done..], &mut g[done..], &mut b[done..], o)
        }
        PixelFormat::Rgba8 => split4(&d[y * w * 4..(y + 1) * w * 4], r, g, b),
        PixelFormat::Yuyv => {
            let px = &d[y * w * 2..(y + 1) * w * 2];
            let done = simd_yuyv(px, r, g, b, simd);
            yuyv(&px[done * 2..], &mut r[done..], &mut g[done..], &mut b[done..])
        }
        PixelFormat::Nv12 => {
            let h = src.height as usize;
            let cstride = 2 * w.div_ceil(2);
            let uv = &d[w * h + (y / 2) * cstride..w * h + (y / 2 + 1) * cstride];
            let ys = &d[y * w..(y + 1) * w];
            let done = simd_nv12(ys, uv, r, g, b, simd);
            nv12(&ys[done..], &uv[done..], &mut r[done..], &mut g[done..], &mut b[done..])
        }
    }
}

/// Pixels of the row the AVX2 kernels converted (a prefix; 0 without AVX2 or off x86_64).
#[inline(always)]
fn simd_split3(px: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8], o: [usize; 3], simd: Option<Simd>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = simd {
        return x86::split3(avx2, px, [r, g, b], o);
    }
    let _ = (px, r, g, b, o, simd);
    0
}

#[inline(always)]
fn simd_yuyv(px: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8], simd: Option<Simd>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = simd {
        return x86::yuyv(avx2, px, [r, g, b]);
    }
    let _ = (px, r, g, b, simd);
    0
}

#[inline(always)]
fn simd_nv12(ys: &[u8], uv: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8], simd: Option<Simd>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = simd {
        return x86::nv12(avx2, ys, uv, [r, g, b]);
    }
    let _ = (ys, uv, r, g, b, simd);
    0
}

#[inline(always)]
fn split3(px: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8], o: [usize; 3]) {
    for (((p, r), g), b) in px.chunks_exact(3).zip(r).zip(g).zip(b) {
        *r = p[o[0]];
        *g = p[o[1]];
        *b = p[o[2]];
    }
}

#[inline(always)]
fn split4(px: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8]) {
    for (((p, r), g), b) in px.chunks_exact(4).zip(r).zip(g).zip(b) {
        *r = p[0];
        *g = p[1];
        *b = p[2];
    }
}

/// `(Y - 16) * 1.164` in fixed point, with the rounding half folded in.
#[inline(always)]
fn luma(y: u8) -> i32 {
    (y as i32 - 16).max(0) * CY + HALF
}

#[inline(always)]
fn to_u8(v: i32) -> u8 {
    (v >> SHIFT).clamp(0, 255) as u8
}

/// Two pixels sharing one chroma pair into 2 bytes of each plane (the chroma terms computed once).
#[inline(always)]
fn pair(ys: [u8; 2], u: u8, v: u8, r: &mut [u8], g: &mut [u8], b: &mut [u8]) {
    let (u, v) = (u as i32 - 128, v as i32 - 128);
    let (ruv, guv, buv) = (CVR * v, CUG * u + CVG * v, CUB * u);
    for (k, y) in ys.into_iter().enumerate() {
        let y = luma(y);
        r[k] = to_u8(y + ruv);
        g[k] = to_u8(y + guv);
        b[k] = to_u8(y + buv);
    }
}

#[inline(always)]
fn yuyv(px: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8]) {
    let pairs = r.chunks_exact_mut(2).zip(g.chunks_exact_mut(2)).zip(b.chunks_exact_mut(2));
    for (p, ((r, g), b)) in px.chunks_exact(4).zip(pairs) {
        pair([p[0], p[2]], p[1], p[3], r, g, b);
    }
}

#[inline(always)]
fn nv12(ys: &[u8], uv: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8]) {
    let w = ys.len();
    let even = w & !1;
    let pairs = r[..even].chunks_exact_mut(2).zip(g[..even].chunks_exact_mut(2)).zip(b[..even].chunks_exact_mut(2));
    for ((y, c), ((r, g), b)) in ys.chunks_exact(2).zip(uv.chunks_exact(2)).zip(pairs) {
        pair([y[0], y[1]], c[0], c[1], r, g, b);
    }
    if even < w {
        // Odd width: the last pixel has a chroma pair of its own.
        [r[even], g[even], b[even]] = yuv_to_rgb(ys[even], uv[even], uv[even + 1]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::pixel::{CUB, CUG, CVG, CVR, CY, HALF, SHIFT};

    /// `vpshufb` masks picking channel `o` (0..3) of 16 pixels out of register `reg` (0..3) of a
    /// 48-byte group; the same in both 128-bit lanes.
    const fn mask3(o: usize, reg: usize) -> [u8; 32] {
        let mut m = [0x80u8; 32];
        let mut k = 0;
        while k < 16 {
            let p = 3 * k + o;
            if p / 16 == reg {
                m[k] = (p % 16) as u8;
                m[k + 16] = (p % 16) as u8;
            }
            k += 1;
        }
        m
    }
    const MASKS3: [[[u8; 32]; 3]; 3] = {
        let mut t = [[[0u8; 32]; 3]; 3];
        let mut o = 0;
        while o < 3 {
            let mut reg = 0;
            while reg < 3 {
                t[o][reg] = mask3(o, reg);
                reg += 1;
            }
            o += 1;
        }
        t
    };

    /// De-interleave whole 32-pixel groups of a 3-byte-per-pixel row; returns the pixels done.
    /// `o[c]` is the byte of output plane `c` within a pixel. `_avx2` proves the CPU has AVX2.
    #[inline(always)]
    pub(super) fn split3(_avx2: pulp::x86::V3, px: &[u8], planes: [&mut [u8]; 3], o: [usize; 3]) -> usize {
        let n = (px.len() / 3).min(planes.iter().map(|p| p.len()).min().unwrap_or(0)) / 32 * 32;
        // SAFETY: AVX2 was detected (a `V3` exists); the kernel reads 3n bytes of `px` and writes
        // n bytes of each plane, all checked above.
        unsafe { split3_kernel(px, planes, o, n) };
        n
    }

    #[target_feature(enable = "avx2")]
    unsafe fn split3_kernel(px: &[u8], planes: [&mut [u8]; 3], o: [usize; 3], n: usize) {
        // SAFETY (whole body): every offset below is < 3n for loads and < n for stores (caller).
        unsafe {
            let m = |c: usize, reg: usize| _mm256_loadu_si256(MASKS3[o[c]][reg].as_ptr() as *const __m256i);
            let masks = [[m(0, 0), m(0, 1), m(0, 2)], [m(1, 0), m(1, 1), m(1, 2)], [m(2, 0), m(2, 1), m(2, 2)]];
            let p = px.as_ptr();
            let mut x = 0;
            while x < n {
                // Lane 0 holds pixels x..x+16, lane 1 pixels x+16..x+32 (48 bytes each, in 3 registers).
                let ld = |at: usize| {
                    let lo = _mm_loadu_si128(p.add(3 * x + at) as *const __m128i);
                    let hi = _mm_loadu_si128(p.add(3 * x + 48 + at) as *const __m128i);
                    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
                };
                let (a, b, c) = (ld(0), ld(16), ld(32));
                for (plane, mk) in planes.iter().zip(&masks) {
                    let v = _mm256_or_si256(
                        _mm256_or_si256(_mm256_shuffle_epi8(a, mk[0]), _mm256_shuffle_epi8(b, mk[1])),
                        _mm256_shuffle_epi8(c, mk[2]),
                    );
                    _mm256_storeu_si256(plane.as_ptr().add(x) as *mut __m256i, v);
                }
                x += 32;
            }
        }
    }

    /// R, G, B of 16 pixels as i32 lanes: `ye`/`yo` the even/odd pixels' luma bytes, `u`/`v` the
    /// chroma bytes shared by each even/odd pair; the result is packed to u8 in pixel order.
    #[inline(always)]
    unsafe fn rgb16(ye: __m256i, yo: __m256i, u: __m256i, v: __m256i) -> [[__m256i; 2]; 3] {
        // SAFETY: only called from AVX2 kernels.
        unsafe {
            let c128 = _mm256_set1_epi32(128);
            let (u, v) = (_mm256_sub_epi32(u, c128), _mm256_sub_epi32(v, c128));
            let half = _mm256_set1_epi32(HALF);
            let ruv = _mm256_add_epi32(_mm256_mullo_epi32(v, _mm256_set1_epi32(CVR)), half);
            let guv = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_mullo_epi32(u, _mm256_set1_epi32(CUG)), _mm256_mullo_epi32(v, _mm256_set1_epi32(CVG))),
                half,
            );
            let buv = _mm256_add_epi32(_mm256_mullo_epi32(u, _mm256_set1_epi32(CUB)), half);
            let luma = |y: __m256i| {
                let y = _mm256_max_epi32(_mm256_sub_epi32(y, _mm256_set1_epi32(16)), _mm256_setzero_si256());
                _mm256_mullo_epi32(y, _mm256_set1_epi32(CY))
            };
            let (le, lo) = (luma(ye), luma(yo));
            let ch = |c: __m256i| {
                [_mm256_srai_epi32::<SHIFT>(_mm256_add_epi32(le, c)), _mm256_srai_epi32::<SHIFT>(_mm256_add_epi32(lo, c))]
            };
            [ch(ruv), ch(guv), ch(buv)]
        }
    }

    /// Two 16-pixel results (A: pixels 0..16, B: 16..32, each as even/odd i32 lanes) to 32 u8 in
    /// pixel order, saturating (= clamp to 0..255; the values fit i16).
    #[inline(always)]
    unsafe fn pack32(a: [__m256i; 2], b: [__m256i; 2]) -> __m256i {
        // SAFETY: only called from AVX2 kernels.
        unsafe {
            // Per lane: [e0..e3, o0..o3] (A lane 0 = chroma 0..3, lane 1 = chroma 4..7).
            let pa = _mm256_packs_epi32(a[0], a[1]);
            let pb = _mm256_packs_epi32(b[0], b[1]);
            // Per lane: [A e0..3, A o0..3, B e0..3, B o0..3] as u8.
            let u = _mm256_packus_epi16(pa, pb);
            let order = _mm256_setr_epi8(
                0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15, 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15,
            );
            // Lane 0: A px 0..8, B px 0..8; lane 1: A px 8..16, B px 8..16.
            let u = _mm256_shuffle_epi8(u, order);
            _mm256_permute4x64_epi64::<0b11_01_10_00>(u)
        }
    }

    #[inline(always)]
    pub(super) fn yuyv(_avx2: pulp::x86::V3, px: &[u8], planes: [&mut [u8]; 3]) -> usize {
        let n = (px.len() / 2).min(planes.iter().map(|p| p.len()).min().unwrap_or(0)) / 32 * 32;
        // SAFETY: AVX2 was detected; reads 2n bytes of `px`, writes n bytes per plane (checked).
        unsafe { yuyv_kernel(px, planes, n) };
        n
    }

    #[target_feature(enable = "avx2")]
    unsafe fn yuyv_kernel(px: &[u8], planes: [&mut [u8]; 3], n: usize) {
        // SAFETY (whole body): loads below 2n bytes, stores below n (caller).
        unsafe {
            let ff = _mm256_set1_epi32(0xff);
            // One i32 lane = one YUYV quad: y_even, u, y_odd, v.
            let quads = |at: usize| {
                let q = _mm256_loadu_si256(px.as_ptr().add(at) as *const __m256i);
                let ye = _mm256_and_si256(q, ff);
                let u = _mm256_and_si256(_mm256_srli_epi32::<8>(q), ff);
                let yo = _mm256_and_si256(_mm256_srli_epi32::<16>(q), ff);
                let v = _mm256_srli_epi32::<24>(q);
                rgb16(ye, yo, u, v)
            };
            let mut x = 0;
            while x < n {
                let (a, b) = (quads(2 * x), quads(2 * x + 32));
                for (c, plane) in planes.iter().enumerate() {
                    _mm256_storeu_si256(plane.as_ptr().add(x) as *mut __m256i, pack32(a[c], b[c]));
                }
                x += 32;
            }
        }
    }

    #[inline(always)]
    pub(super) fn nv12(_avx2: pulp::x86::V3, ys: &[u8], uv: &[u8], planes: [&mut [u8]; 3]) -> usize {
        let n = ys.len().min(uv.len()).min(planes.iter().map(|p| p.len()).min().unwrap_or(0)) / 32 * 32;
        // SAFETY: AVX2 was detected; reads n bytes of `ys` and of `uv`, writes n bytes per plane.
        unsafe { nv12_kernel(ys, uv, planes, n) };
        n
    }

    #[target_feature(enable = "avx2")]
    unsafe fn nv12_kernel(ys: &[u8], uv: &[u8], planes: [&mut [u8]; 3], n: usize) {
        // SAFETY (whole body): loads and stores below n bytes (caller).
        unsafe {
            let ff = _mm256_set1_epi32(0xff);
            // 16 pixels: 8 luma pairs and 8 chroma pairs, each pair widened to one i32 lane.
            let group = |at: usize| {
                let y = _mm256_cvtepu16_epi32(_mm_loadu_si128(ys.as_ptr().add(at) as *const __m128i));
                let c = _mm256_cvtepu16_epi32(_mm_loadu_si128(uv.as_ptr().add(at) as *const __m128i));
                let (ye, yo) = (_mm256_and_si256(y, ff), _mm256_srli_epi32::<8>(y));
                let (u, v) = (_mm256_and_si256(c, ff), _mm256_srli_epi32::<8>(c));
                rgb16(ye, yo, u, v)
            };
            let mut x = 0;
            while x < n {
                let (a, b) = (group(x), group(x + 16));
                for (c, plane) in planes.iter().enumerate() {
                    _mm256_storeu_si256(plane.as_ptr().add(x) as *mut __m256i, pack32(a[c], b[c]));
                }
                x += 32;
            }
        }
    }
}
