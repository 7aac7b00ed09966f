//! The register tiles: `tile[i * NR + j] (+)= sum_k a[k * MR + i] * b[k * ldb + j]` for one
//! weight panel (`[k][MR]`) against one strip of B (`k` rows of `NR` values, `ldb` apart: `NR`
//! for a packed strip, the map's size when a 1x1 conv reads its input in place), accumulated in
//! registers over all of `k`.
//! Each ISA's tile keeps its accumulators in registers and broadcasts one weight per row.

#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
pub mod x86;

/// Room for the largest tile (AVX-512's 8 x 48).
pub const MAX_TILE: usize = 8 * 48;

use super::attention::{pair_body, AttnJob};
use super::{task_body, Job};
use crate::model::kernels::{self, Act};

pub trait Micro: Sized {
    const MR: usize;
    const NR: usize;
    /// Runs one task of the driver ([`task_body`]) compiled for this kernel's ISA. Each task is
    /// called from a rayon closure, which is a function of its own compiled for the baseline
    /// target: the ISA has to start here, not around the parallel loop.
    ///
    /// The default suits ISAs the whole build targets (NEON on aarch64, portable); x86 kernels
    /// override it with a `target_feature` function.
    ///
    /// # Safety
    /// The CPU must have the kernel's features.
    unsafe fn task(job: &Job, s0: usize, s1: usize, p0: usize, p1: usize) {
        task_body::<Self>(job, s0, s1, p0, p1)
    }

    /// One (area, head) pair of an area attention ([`pair_body`]) compiled for this ISA.
    ///
    /// # Safety
    /// As for `task`.
    unsafe fn attention(job: &AttnJob, idx: usize) {
        pair_body::<Self>(job, idx)
    }
    /// With `add` the product is added to what `tile` holds, else it overwrites it.
    ///
    /// # Safety
    /// `a` must hold `k * MR` values and `b` `k` rows of `NR` at stride `ldb`; the CPU must have
    /// the kernel's features.
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool);

    /// [`Micro::tile`] for a strip whose first `cols` columns are all that is used (its others may
    /// be left unwritten): kernels with a narrower variant use it.
    ///
    /// # Safety
    /// As for `tile`.
    #[inline(always)]
    unsafe fn tile_cols(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool, cols: usize) {
        let _ = cols;
        // SAFETY: forwarded.
        unsafe { Self::tile(k, a, b, ldb, tile, add) }
    }

    /// `dst = act(acc + bias) (+ residual)` on one tile row (see [`kernels::epilogue_into`]).
    #[inline(always)]
    fn epilogue(acc: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, dst: &mut [f32]) {
        kernels::epilogue_into(acc, bias, act, residual, dst)
    }
}

/// Plain Rust (4 x 16): the compiler vectorises the inner row to whatever the target has.
pub struct Portable;

impl Micro for Portable {
    const MR: usize = 4;
    const NR: usize = 16;
    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
        let mut c = [[0f32; 16]; 4];
        if add {
            for (i, ci) in c.iter_mut().enumerate() {
                ci.copy_from_slice(&tile[i * 16..(i + 1) * 16]);
            }
        }
        // SAFETY: the caller guarantees k * 4 values at `a`.
        let a = unsafe { std::slice::from_raw_parts(a, k * 4) };
        for (kk, ak) in a.chunks_exact(4).enumerate() {
            // SAFETY: the caller guarantees k rows of 16 values at stride ldb at `b`.
            let bk = unsafe { &*(b.add(kk * ldb) as *const [f32; 16]) };
            for (ci, ai) in c.iter_mut().zip(ak) {
                for (cij, bj) in ci.iter_mut().zip(bk) {
                    *cij += *ai * *bj;
                }
            }
        }
        for (i, ci) in c.iter().enumerate() {
            tile[i * 16..(i + 1) * 16].copy_from_slice(ci);
        }
    }
}
