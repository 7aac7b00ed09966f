//! The input of a k x k conv laid out so that every tap is a plain shifted view: no im2col.
//!
//! The input is copied once, zero-padded, into `s * s` phase planes (stride `s` = 1: one plane
//! per channel; `s` = 2: the even/odd rows x even/odd columns of the padded input). Output pixel
//! `(oy, ox)`'s tap `(ky, kx)` reads padded pixel `(s*oy + ky, s*ox + kx)`, which is pixel
//! `(oy + ky/s, ox + kx/s)` of phase `(ky % s, kx % s)`. So on a grid of `oh` rows x `wq` columns
//! (the phase planes' width), tap `t` of *every* output is the grid index plus one offset, and the
//! GEMM for that tap reads B in place: `c_in` rows, one plane apart. The grid's columns past `ow`
//! are computed and thrown away (`(wq - ow) / wq` of the work: 2.4 % at 80 x 80).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::model::kernels::ConvGeom;

pub struct Planes {
    /// `[phase][c_in][plane]`, then zero slack so the last strip's reads stay inside.
    pub data: Vec<f32>,
    /// Values from one channel's plane to the next's (the B row stride).
    pub plane: usize,
    pub c_in: usize,
    /// Per tap (`ky * k + kx`): where its view starts in `data`.
    pub offsets: Vec<usize>,
    wq: usize,
    oh: usize,
    ow: usize,
}

impl Planes {
    /// `nr`: the strip width of the kernel that will read them (for the slack).
    pub fn new(x: &[f32], g: &ConvGeom, nr: usize) -> Self {
        let (oh, ow) = g.out_hw();
        let (s, p, k) = (g.stride, g.pad, g.k);
        let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
        let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
        // Rounded to 16 values, and never a multiple of 4 KiB: the kernel reads c_in rows one
        // plane apart, and rows 4 KiB apart would all fall in the same L1 set.
        let mut plane = (hq * wq).div_ceil(16) * 16;
        if (plane * 4) % 4096 == 0 {
            plane += 16;
        }
        let body = s * s * g.c_in * plane;
        // The last strip reads up to nr values past the grid's end, from the furthest tap.
        let slack = nr + (k / s + 1) * wq + 16;
        let mut data: Vec<f32> = Vec::with_capacity(body + slack);
        let spare = &mut data.spare_capacity_mut()[..body + slack];
        let (main, tail) = spare.split_at_mut(body);
        tail.iter_mut().for_each(|v| {
            v.write(0.0);
        });
        main.par_chunks_mut(plane).enumerate().for_each(|(idx, dst)| {
            let (phase, ci) = (idx / g.c_in, idx % g.c_in);
            let (a, b) = (phase / s, phase % s);
            let src = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            fill_phase(src, g, a, b, hq, wq, dst);
        });
        // SAFETY: `fill_phase` wrote every value of every plane and the slack was zeroed: all
        // body + slack values are initialised.
        unsafe { data.set_len(body + slack) };
        let mut offsets = Vec::with_capacity(k * k);
        for ky in 0..k {
            for kx in 0..k {
                let phase = (ky % s) * s + kx % s;
                offsets.push(phase * g.c_in * plane + (ky / s) * wq + kx / s);
            }
        }
        Planes { data, plane, c_in: g.c_in, offsets, wq, oh, ow }
    }

    /// Columns of the GEMM: the grid, `oh` rows of `wq`.
    pub fn grid(&self) -> usize {
        self.oh * self.wq
    }

    /// The runs of real outputs among grid columns [j0, j0 + n): (column in the strip, output
    /// index, length).
    #[inline(always)]
    pub fn runs(&self, j0: usize, n: usize, runs: &mut Vec<(usize, usize, usize)>) {
        let (wq, ow) = (self.wq, self.ow);
        let (first, last) = (j0 / wq, ((j0 + n - 1) / wq).min(self.oh - 1));
        for oy in first..=last {
            let start = j0.max(oy * wq);
            let end = (j0 + n).min(oy * wq + ow);
            if start < end {
                runs.push((start - j0, oy * ow + start - oy * wq, end - start));
            }
        }
    }
}

/// Phase `(a, b)` of one channel: `hq` rows of `wq` padded pixels `(s*y + a, s*x + b)`, zeros
/// outside the image, then zeros to the plane's end.
fn fill_phase(src: &[f32], g: &ConvGeom, a: usize, b: usize, hq: usize, wq: usize, dst: &mut [MaybeUninit<f32>]) {
    let (s, p) = (g.stride, g.pad);
    // Grid columns whose padded column s*x + b lies inside the image: [x_lo, x_hi).
    let x_lo = p.saturating_sub(b).div_ceil(s).min(wq);
    let x_hi = if g.w + p > b { ((g.w + p - b - 1) / s + 1).min(wq) } else { 0 }.max(x_lo);
    let (rows, rest) = dst.split_at_mut(hq * wq);
    for (y, row) in rows.chunks_exact_mut(wq).enumerate() {
        let yy = (y * s + a) as isize - p as isize;
        if yy < 0 || yy >= g.h as isize {
            row.iter_mut().for_each(|v| {
                v.write(0.0);
            });
            continue;
        }
        let srow = &src[yy as usize * g.w..(yy as usize + 1) * g.w];
        let (left, rest) = row.split_at_mut(x_lo);
        let (inside, right) = rest.split_at_mut(x_hi - x_lo);
        left.iter_mut().chain(right).for_each(|v| {
            v.write(0.0);
        });
        let first = x_lo * s + b - p;
        if s == 1 {
            for (d, v) in inside.iter_mut().zip(&srow[first..]) {
                d.write(*v);
            }
        } else if s == 2 {
            // Pairs, not `step_by(2)`: the compiler turns pairs into shuffles, `step_by` into
            // one scalar load per value.
            let n = inside.len();
            let src = &srow[first..];
            let full = (src.len() / 2).min(n);
            for (d, pair) in inside[..full].iter_mut().zip(src.chunks_exact(2)) {
                d.write(pair[0]);
            }
            if full < n {
                inside[full].write(src[2 * full]);
            }
        } else {
            for (d, v) in inside.iter_mut().zip(srow[first..].iter().step_by(s)) {
                d.write(*v);
            }
        }
    }
    rest.iter_mut().for_each(|v| {
        v.write(0.0);
    });
}
