//! x86_64 tiles: AVX-512F 8 x 48 (24 zmm accumulators, 3 loads of B and 8 broadcasts of A per
//! k: the FMA ports, not the loads, are the limit) and AVX2+FMA 4 x 24 (12 ymm accumulators).

use std::arch::x86_64::*;

use super::{Micro, MAX_TILE};
use crate::model::kernels::Act;
use crate::model::sgemm::attention::{pair_body, AttnJob};
use crate::model::sgemm::{task_body, Job};

/// `Micro::task` and `Micro::attention` for an x86 kernel: the driver (and everything it
/// inlines: im2col, packing, the epilogue) compiled with the kernel's features, which a rayon
/// closure would not be.
macro_rules! entry_points {
    ($kernel:ty, $features:literal) => {
        unsafe fn task(job: &Job, s0: usize, s1: usize, p0: usize, p1: usize) {
            #[target_feature(enable = $features)]
            unsafe fn compiled(job: &Job, s0: usize, s1: usize, p0: usize, p1: usize) {
                task_body::<$kernel>(job, s0, s1, p0, p1)
            }
            // SAFETY: the caller checked the CPU for this kernel's features.
            unsafe { compiled(job, s0, s1, p0, p1) }
        }
        unsafe fn attention(job: &AttnJob, idx: usize) {
            #[target_feature(enable = $features)]
            unsafe fn compiled(job: &AttnJob, idx: usize) {
                pair_body::<$kernel>(job, idx)
            }
            // SAFETY: as for `task`.
            unsafe { compiled(job, idx) }
        }
    };
}

pub struct Avx512;

impl Micro for Avx512 {
    const MR: usize = 8;
    const NR: usize = 48;
    entry_points!(Avx512, "avx512f,avx2,fma");
    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
        // SAFETY: forwarded: the caller holds the pointers' and the CPU's guarantees.
        unsafe { tile_avx512::<3>(k, a, b, ldb, tile, add) }
    }
    #[inline(always)]
    unsafe fn tile_cols(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool, cols: usize) {
        // SAFETY: forwarded, as for `tile`.
        unsafe {
            match cols {
                0..=16 => tile_avx512::<1>(k, a, b, ldb, tile, add),
                17..=32 => tile_avx512::<2>(k, a, b, ldb, tile, add),
                _ => tile_avx512::<3>(k, a, b, ldb, tile, add),
            }
        }
    }
    #[inline(always)]
    fn epilogue(acc: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, dst: &mut [f32]) {
        // SAFETY: this kernel only runs where AVX-512F was detected (`dispatch`).
        unsafe { epilogue_avx512(acc, bias, act, residual, dst) }
    }
}

/// `V` vectors of 16 columns (3 = the full 8 x 48 tile; 1 or 2 for a strip's last few columns,
/// so a 10 x 10 map's 100 outputs cost 112 columns of work, not 144). Columns past `16 * V` of
/// `tile` are left alone.
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const V: usize>(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
    let mut c = [[_mm512_setzero_ps(); V]; 8];
    if add {
        for (i, ci) in c.iter_mut().enumerate() {
            for (v, cv) in ci.iter_mut().enumerate() {
                // SAFETY: inside the 8 x 48 tile.
                *cv = unsafe { _mm512_loadu_ps(tile.as_ptr().add(i * 48 + v * 16)) };
            }
        }
    }
    for kk in 0..k {
        // SAFETY: kk < k, so these read inside the k rows of `b` and the k * 8 values of `a`.
        unsafe {
            let bp = b.add(kk * ldb);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bp.add(16 * v));
            }
            let ap = a.add(kk * 8);
            for (i, ci) in c.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                for (cv, x) in ci.iter_mut().zip(&bv) {
                    *cv = _mm512_fmadd_ps(ai, *x, *cv);
                }
            }
        }
    }
    for (i, ci) in c.iter().enumerate() {
        for (v, cv) in ci.iter().enumerate() {
            // SAFETY: i * 48 + v * 16 + 16 <= 8 * 48 = MAX_TILE.
            unsafe { _mm512_storeu_ps(tile.as_mut_ptr().add(i * 48 + v * 16), *cv) };
        }
    }
}

/// The epilogue with SiLU's division as `vrcp14ps` + one Newton step (relative error ~2^-28,
/// below f32's rounding): `vdivps` on 16 lanes was the slowest instruction of a 1x1 conv.
#[target_feature(enable = "avx512f")]
fn epilogue_avx512(acc: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, dst: &mut [f32]) {
    let n = dst.len().min(acc.len());
    let vb = _mm512_set1_ps(bias);
    let mut i = 0;
    while i < n {
        let mask: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
        // SAFETY: the mask limits every access to the n values all three slices hold.
        unsafe {
            let mut v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, acc.as_ptr().add(i)), vb);
            if act == Act::Silu {
                v = silu_avx512(v);
            }
            if let Some(r) = residual {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, r.as_ptr().add(i)));
            }
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), mask, v);
        }
        i += 16;
    }
}

/// `x / (1 + exp(-x))`, exp as `kernels::fast_exp` (same constants and reduction).
#[target_feature(enable = "avx512f")]
fn silu_avx512(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let nx = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(-87.3)), _mm512_set1_ps(88.3));
    let magic = _mm512_set1_ps(12_582_912.0);
    let t = _mm512_fmadd_ps(nx, _mm512_set1_ps(std::f32::consts::LOG2_E), magic);
    let nn = _mm512_sub_ps(t, magic);
    let r = _mm512_fmadd_ps(nn, _mm512_set1_ps(2.121_944_4e-4), _mm512_fnmadd_ps(nn, _mm512_set1_ps(0.693_359_4), nx));
    let r2 = _mm512_mul_ps(r, r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), one);
    let scale = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127))));
    let d = _mm512_fmadd_ps(e, scale, one);
    let y = _mm512_rcp14_ps(d);
    // One Newton step: y (2 - d y).
    let y = _mm512_mul_ps(y, _mm512_fnmadd_ps(d, y, _mm512_set1_ps(2.0)));
    _mm512_mul_ps(x, y)
}

pub struct Avx2;

impl Micro for Avx2 {
    const MR: usize = 4;
    const NR: usize = 24;
    entry_points!(Avx2, "avx2,fma");
    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
        // SAFETY: forwarded, as for AVX-512.
        unsafe { tile_avx2(k, a, b, ldb, tile, add) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
    let mut c = [[_mm256_setzero_ps(); 3]; 4];
    if add {
        for (i, ci) in c.iter_mut().enumerate() {
            for (v, cv) in ci.iter_mut().enumerate() {
                // SAFETY: inside the 4 x 24 tile.
                *cv = unsafe { _mm256_loadu_ps(tile.as_ptr().add(i * 24 + v * 8)) };
            }
        }
    }
    for kk in 0..k {
        // SAFETY: kk < k, so these read inside the k rows of `b` and the k * 4 values of `a`.
        unsafe {
            let bp = b.add(kk * ldb);
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            let b2 = _mm256_loadu_ps(bp.add(16));
            let ap = a.add(kk * 4);
            for (i, ci) in c.iter_mut().enumerate() {
                let ai = _mm256_set1_ps(*ap.add(i));
                ci[0] = _mm256_fmadd_ps(ai, b0, ci[0]);
                ci[1] = _mm256_fmadd_ps(ai, b1, ci[1]);
                ci[2] = _mm256_fmadd_ps(ai, b2, ci[2]);
            }
        }
    }
    for (i, ci) in c.iter().enumerate() {
        for (v, cv) in ci.iter().enumerate() {
            // SAFETY: i * 24 + v * 8 + 8 <= 4 * 24 <= MAX_TILE.
            unsafe { _mm256_storeu_ps(tile.as_mut_ptr().add(i * 24 + v * 8), *cv) };
        }
    }
}
