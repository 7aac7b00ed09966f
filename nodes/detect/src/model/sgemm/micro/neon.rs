//! aarch64 tile, 8 x 12: 24 q-register accumulators, B as 3 vectors and the 8 weights of a k as
//! 2 vectors, multiplied by lane (`fmla v.4s, v.4s, v.s[l]`), so no broadcasts are needed. NEON is
//! part of every ARMv8-A (the Nano's Cortex-A57 included), so this needs no run-time check.

use std::arch::aarch64::*;

use super::{Micro, MAX_TILE};

pub struct Neon;

impl Micro for Neon {
    const MR: usize = 8;
    const NR: usize = 12;
    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f32, b: *const f32, ldb: usize, tile: &mut [f32; MAX_TILE], add: bool) {
        let z = vdupq_n_f32(0.0);
        let mut c = [[z; 3]; 8];
        if add {
            for (i, ci) in c.iter_mut().enumerate() {
                for (v, cv) in ci.iter_mut().enumerate() {
                    // SAFETY: inside the 8 x 12 tile.
                    *cv = unsafe { vld1q_f32(tile.as_ptr().add(i * 12 + v * 4)) };
                }
            }
        }
        for kk in 0..k {
            // SAFETY: kk < k, so these read inside the k rows of `b` and the k * 8 values of `a`.
            unsafe {
                let bp = b.add(kk * ldb);
                let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))];
                let ap = a.add(kk * 8);
                let (a0, a1) = (vld1q_f32(ap), vld1q_f32(ap.add(4)));
                macro_rules! row {
                    ($i:expr, $a:ident, $l:expr) => {
                        for v in 0..3 {
                            c[$i][v] = vfmaq_laneq_f32::<$l>(c[$i][v], bv[v], $a);
                        }
                    };
                }
                row!(0, a0, 0);
                row!(1, a0, 1);
                row!(2, a0, 2);
                row!(3, a0, 3);
                row!(4, a1, 0);
                row!(5, a1, 1);
                row!(6, a1, 2);
                row!(7, a1, 3);
            }
        }
        for (i, ci) in c.iter().enumerate() {
            for (v, cv) in ci.iter().enumerate() {
                // SAFETY: i * 12 + v * 4 + 4 <= 8 * 12 <= MAX_TILE.
                unsafe { vst1q_f32(tile.as_mut_ptr().add(i * 12 + v * 4), *cv) };
            }
        }
    }
}
