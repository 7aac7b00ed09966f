//! YOLOv12's area attention on the conv GEMM's micro-kernels.
//!
//! For one (area, head) with `na` tokens and head size `d`, both products are written so that
//! every operand is already in the kernels' layout:
//! - `S^T[j, i] = sum_t k[t, j] q[t, i]`: A = `k^T` packed in panels of 8 keys (`d * na` values,
//!   packed once), B = the query rows `q[t, i0..]` (a copy of `d` rows per strip);
//! - the softmax runs down the columns of `S^T` (over keys j, for each query i), vectorised
//!   across queries, and leaves `exp` unnormalised;
//! - `O[t, i] = sum_j v[t, j] P[j, i] / sum_i`: A = `v` packed in panels of 8 channels, B = the
//!   block of `S^T` itself, read in place (row stride = the block's width).
//!
//! The `gemm` crate did this with strided operands at ~65 GFLOP/s on two threads; `k = d = 32`
//! is a short reduction for its packing.

use super::micro::{Micro, MAX_TILE};
use crate::model::kernels::{fast_exp, scratch_put, scratch_take};

/// One area attention call: the inputs and the output `[c, n]` the pairs write disjointly.
pub(crate) struct AttnJob<'a> {
    pub qkv: &'a [f32],
    pub n: usize,
    pub d: usize,
    pub heads: usize,
    pub na: usize,
    pub scale: f32,
    pub out: crate::model::kernels::SendPtr,
}

/// (area, head) pair `idx`; `inline(always)`: each ISA's `Micro::attention` compiles it.
#[inline(always)]
pub(crate) fn pair_body<K: Micro>(job: &AttnJob, idx: usize) {
    let (mr, nr) = (K::MR, K::NR);
    let (n, d, na) = (job.n, job.d, job.na);
    let (a, h) = (idx / job.heads, idx % job.heads);
    let q = &job.qkv[(h * 3 * d) * n..];
    let k = &job.qkv[(h * 3 * d + d) * n..];
    let v = &job.qkv[(h * 3 * d + 2 * d) * n..];
    let t0 = a * na;
    let (jp, tp) = (na.div_ceil(mr), d.div_ceil(mr));
    // Query columns per block: S^T of the block (na x w) stays in L2 (~256 KiB).
    let w = ((64 * 1024 / na.max(1)) / nr).clamp(1, na.div_ceil(nr)) * nr;
    let (kp_len, vp_len, b_len, s_len) = (jp * d * mr, tp * na * mr, d * nr, na * w);
    let mut scratch = scratch_take(kp_len + vp_len + b_len + s_len + 2 * w);
    let (kp, rest) = scratch.split_at_mut(kp_len);
    let (vp, rest) = rest.split_at_mut(vp_len);
    let (bq, rest) = rest.split_at_mut(b_len);
    let (st, rest) = rest.split_at_mut(s_len);
    let (colmax, rest) = rest.split_at_mut(w);
    let colsum = &mut rest[..w];
    // k^T panels: [panel][t][8 keys]; v panels: [panel][j][8 channels]; zeros past the ends.
    for p in 0..jp {
        for t in 0..d {
            for r in 0..mr {
                let j = p * mr + r;
                kp[(p * d + t) * mr + r] = if j < na { k[t * n + t0 + j] } else { 0.0 };
            }
        }
    }
    for p in 0..tp {
        for r in 0..mr {
            let t = p * mr + r;
            for j in 0..na {
                vp[(p * na + j) * mr + r] = if t < d { v[t * n + t0 + j] } else { 0.0 };
            }
        }
    }
    let mut tile = [0f32; MAX_TILE];
    for i0 in (0..na).step_by(w) {
        let wb = w.min(na - i0);
        let strips = wb.div_ceil(nr);
        // S^T block, scaled.
        for s in 0..strips {
            let c0 = s * nr;
            let nv = nr.min(wb - c0);
            for t in 0..d {
                let src = &q[t * n + t0 + i0 + c0..t * n + t0 + i0 + c0 + nv];
                bq[t * nr..t * nr + nv].copy_from_slice(src);
                bq[t * nr + nv..(t + 1) * nr].fill(0.0);
            }
            for p in 0..jp {
                // SAFETY: panel p of kp holds d rows of MR keys, bq d rows of NR queries.
                unsafe { K::tile_cols(d, kp.as_ptr().add(p * d * mr), bq.as_ptr(), nr, &mut tile, false, nv) };
                for r in 0..mr.min(na - p * mr) {
                    let row = &mut st[(p * mr + r) * w + c0..(p * mr + r) * w + c0 + nv];
                    for (o, x) in row.iter_mut().zip(&tile[r * nr..r * nr + nv]) {
                        *o = *x * job.scale;
                    }
                }
            }
        }
        // Softmax down each column (keys j), unnormalised; 1/sum is applied to O below.
        colmax[..wb].fill(f32::NEG_INFINITY);
        for j in 0..na {
            for (m, x) in colmax[..wb].iter_mut().zip(&st[j * w..j * w + wb]) {
                *m = m.max(*x);
            }
        }
        colsum[..wb].fill(0.0);
        for j in 0..na {
            for ((x, m), s) in st[j * w..j * w + wb].iter_mut().zip(&colmax[..wb]).zip(colsum[..wb].iter_mut()) {
                *x = fast_exp(*x - *m);
                *s += *x;
            }
        }
        for s in colsum[..wb].iter_mut() {
            *s = 1.0 / *s;
        }
        // O block = v P / sum.
        for s in 0..strips {
            let c0 = s * nr;
            let nv = nr.min(wb - c0);
            for p in 0..tp {
                // SAFETY: panel p of vp holds na rows of MR channels; rows j of the S^T block
                // hold w >= c0 + NR values (w is a multiple of NR), w apart.
                unsafe { K::tile_cols(na, vp.as_ptr().add(p * na * mr), st.as_ptr().add(c0), w, &mut tile, false, nv) };
                for r in 0..mr.min(d - p * mr) {
                    let ch = h * d + p * mr + r;
                    // SAFETY: channel ch, tokens t0 + i0 + c0 .. + nv of `out` ([c, n]) belong to
                    // this (area, head) pair alone.
                    let dst = unsafe { std::slice::from_raw_parts_mut(job.out.0.add(ch * n + t0 + i0 + c0), nv) };
                    for ((o, x), inv) in dst.iter_mut().zip(&tile[r * nr..r * nr + nv]).zip(&colsum[c0..c0 + nv]) {
                        *o = *x * *inv;
                    }
                }
            }
        }
    }
    scratch_put(scratch);
}
