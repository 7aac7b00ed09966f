//! Dense (groups = 1) convolution as a GEMM over column tiles:
//! `acc[co, j] = sum_k w[co, k] * im2col[k, j]`, k = (c, ky, kx), j = output pixel.
//!
//! Per tile of output columns the im2col block is packed straight into the micro-kernels' panel
//! layout `[TW/NR][KG groups][NR][4]` (4 consecutive k of one pixel in one 32-bit lane): four
//! im2col rows at a time are gathered into an L1 scratch (or read in place for a 1x1 stride-1
//! conv, whose rows are the input planes themselves) and interleaved. The micro-kernels multiply
//! a panel block with the prepacked weight blocks `[MR][4]` per group into raw i32 sums for the
//! whole tile, then the epilogue turns each channel's row of the tile into outputs.

use rayon::prelude::*;

use crate::epilogue::{res_seg, Chan, OutSeg, ResSeg};
use crate::pack::{RawSum, KG, MR};
use crate::{Act, Input, Job, PackedConv, SharedOut, Variant};

/// Output pixels per panel block (every micro-kernel covers 16 columns).
pub(crate) const NR: usize = 16;

/// A dense micro-kernel: raw sums of `nb` weight blocks (4 channels each) x one panel block
/// (16 pixels) over `kg` groups of 4 k, stored to `out[r * out_rs + px]` for r < 4 * nb.
///
/// # Safety
/// `panel` holds `kg * NR * KG` bytes, `w` `nb` blocks `w_stride` bytes apart of `kg * MR * KG`
/// weights (i8, or i16 for the exact AVX2 kernel), `out` 4 * nb rows of NR i32 `out_rs` apart;
/// the CPU has the kernel's instructions.
pub(crate) type Micro = unsafe fn(panel: *const u8, w: *const u8, w_stride: usize, kg: usize, nb: usize, out: *mut i32, out_rs: usize);

/// The epilogue over one run of a channel's outputs (`crate::epilogue::run_scalar` semantics).
///
/// # Safety
/// The CPU has the function's instructions.
pub(crate) type Epilogue = unsafe fn(acc: &[i32], c: Chan, act: Act, res: ResSeg, out: OutSeg);

/// Interleaves four rows of NR bytes into NR x 4 bytes (`dst[4 * px + q] = rows[q][px] ^ flip`).
///
/// # Safety
/// Every row holds NR bytes, `dst` 4 * NR; the CPU has the function's instructions.
pub(crate) type Interleave = unsafe fn(rows: [*const u8; 4], dst: *mut u8, flip: u8);

/// A variant's dense kernel set.
pub(crate) struct Kernel {
    pub micro: Micro,
    /// Weight blocks per micro-kernel call (its register budget).
    pub nb_max: usize,
    /// Whether the micro-kernel reads the i16-widened weight panel.
    pub wide_weights: bool,
    pub raw: RawSum,
    pub epilogue: Epilogue,
    pub interleave: Interleave,
}

fn kernel(v: Variant) -> Kernel {
    match v {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 | Variant::Avx2Madd7 | Variant::AvxVnni | Variant::Avx512Vnni => crate::x86::dense_kernel(v),
        #[cfg(target_arch = "aarch64")]
        Variant::Neon | Variant::NeonDotprod => crate::neon::dense_kernel(v),
        _ => unreachable!("conv_with only dispatches available SIMD variants here"),
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = const { std::cell::Cell::new(Scratch { panel: Vec::new(), rows: Vec::new(), acc: Vec::new() }) };
}

#[derive(Default)]
struct Scratch {
    panel: Vec<u8>,
    rows: Vec<u8>,
    acc: Vec<i32>,
}

/// Threads of the pool we run in.
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// How the work is cut: column tiles of `tw` pixels (a multiple of NR) x channel-block groups.
#[derive(Debug, Clone, Copy)]
struct Plan {
    tw: usize,
    col_tiles: usize,
    /// Weight blocks per channel group.
    cb_per_group: usize,
    groups: usize,
}

/// Tiles: the packed panel (kdim x tw bytes) stays well inside L2; the number of work items is
/// a multiple of the thread count when the map allows it (2 and 4 threads get even work);
/// layers under ~1 M MACs run serially (a rayon hand-off costs more than they do).
fn plan(n: usize, kdim: usize, c_out: usize) -> Plan {
    let cblocks = c_out.div_ceil(MR);
    let blocks = n.div_ceil(NR);
    let max_blocks = ((96 * 1024) / (kdim.max(1) * NR)).clamp(1, 64);
    let t = threads();
    if t == 1 || n * kdim * c_out < (1 << 20) {
        let col_tiles = blocks.div_ceil(max_blocks);
        let tw = blocks.div_ceil(col_tiles) * NR;
        return Plan { tw, col_tiles: n.div_ceil(tw), cb_per_group: cblocks, groups: 1 };
    }
    let mut col_tiles = blocks.div_ceil(max_blocks).max(2 * t);
    col_tiles = col_tiles.div_ceil(t) * t;
    col_tiles = col_tiles.min(blocks);
    let tw = blocks.div_ceil(col_tiles) * NR;
    let col_tiles = n.div_ceil(tw);
    // Few column tiles (small maps, many channels): split the channels as well.
    let mut groups = 1;
    if col_tiles < 2 * t {
        groups = (2 * t).div_ceil(col_tiles).min(cblocks);
    }
    let cb_per_group = cblocks.div_ceil(groups);
    let groups = cblocks.div_ceil(cb_per_group);
    Plan { tw, col_tiles, cb_per_group, groups }
}

pub(crate) fn run(variant: Variant, job: Job) {
    let kern = kernel(variant);
    let Job { p, inp, act, residual, mut out } = job;
    let s = *p.shape();
    let n = inp.oh * inp.ow;
    let kg = p.kgroups();
    let plan = plan(n, s.kdim(), s.c_out);
    let (wbase, wstride) = if kern.wide_weights {
        (p.panel16().as_ptr() as usize, kg * MR * KG * 2)
    } else {
        (p.panel().as_ptr() as usize, kg * MR * KG)
    };
    let shared = SharedOut::new(&mut out);
    let work = |item: usize| {
        let (t, grp) = (item / plan.groups, item % plan.groups);
        let j0 = t * plan.tw;
        let j1 = (j0 + plan.tw).min(n);
        let cb0 = grp * plan.cb_per_group;
        let cb1 = (cb0 + plan.cb_per_group).min(s.c_out.div_ceil(MR));
        let mut sc = SCRATCH.take();
        let blocks = (j1 - j0).div_ceil(NR);
        let twp = blocks * NR;
        sc.panel.resize(blocks * kg * NR * KG, 0);
        pack_panel(p, &inp, &kern, j0, j1, kg, &mut sc);
        sc.acc.resize((cb1 - cb0) * MR * twp, 0);
        for b in 0..blocks {
            let panel = sc.panel[b * kg * NR * KG..].as_ptr();
            let mut cb = cb0;
            while cb < cb1 {
                let nb = kern.nb_max.min(cb1 - cb);
                // SAFETY: the panel block holds kg groups of NR x 4 bytes, the weight panel
                // ceil(c_out/MR) blocks of `wstride` bytes (cb + nb <= that), `acc` holds the
                // 4 * nb rows of twp values written; `conv_with` checked the variant's
                // instructions.
                unsafe {
                    (kern.micro)(
                        panel,
                        (wbase as *const u8).add(cb * wstride),
                        wstride,
                        kg,
                        nb,
                        sc.acc.as_mut_ptr().add((cb - cb0) * MR * twp + b * NR),
                        twp,
                    );
                }
                cb += nb;
            }
        }
        let tw = j1 - j0;
        for co in cb0 * MR..(cb1 * MR).min(s.c_out) {
            let acc = &sc.acc[(co - cb0 * MR) * twp..][..tw];
            let res = res_seg(&residual, co * n + j0, tw);
            // SAFETY: this work item alone writes outputs [co*n + j0, co*n + j1) of its
            // channels (items split the columns into tiles and the channels into groups), and
            // `Job::new` checked that the output holds c_out * n values.
            let seg = unsafe { shared.seg(co * n + j0, tw) };
            // SAFETY: `conv_with` checked the variant's instructions.
            unsafe { (kern.epilogue)(acc, p.chan(co, kern.raw), act, res, seg) };
        }
        SCRATCH.set(sc);
    };
    let items = plan.col_tiles * plan.groups;
    if items == 1 {
        work(0);
    } else {
        (0..items).into_par_iter().for_each(work);
    }
}

/// Packs the im2col columns [j0, j1) into `sc.panel` as `[blocks][kg][NR][4]`; pixels past j1
/// and k past kdim read the zero point (their weights are 0 or their outputs unused).
fn pack_panel(p: &PackedConv, inp: &Input, kern: &Kernel, j0: usize, j1: usize, kg: usize, sc: &mut Scratch) {
    let s = *p.shape();
    let zp = p.input().zero_point;
    let flip = if kern.raw == RawSum::S8 { 0x80 } else { 0 };
    let tw = j1 - j0;
    let blocks = tw.div_ceil(NR);
    let twp = blocks * NR;
    let kdim = s.kdim();
    let kk = s.k * s.k;
    let direct = s.k == 1 && s.stride == 1 && s.pad == 0;
    if !direct {
        sc.rows.resize(KG * twp, 0);
    }
    let zrow = [zp; NR];
    let mut tail = [[zp; NR]; KG];
    for g in 0..kg {
        // The four im2col rows of this group over the tile (None: past kdim, all zero point).
        let mut rows: [Option<&[u8]>; KG] = [None; KG];
        if direct {
            for (q, r) in rows.iter_mut().enumerate() {
                let k = g * KG + q;
                if k < kdim {
                    *r = Some(&inp.planes[k][j0..j1]);
                }
            }
        } else {
            for (q, chunk) in sc.rows.chunks_exact_mut(twp).enumerate() {
                let k = g * KG + q;
                if k < kdim {
                    fill_row(p, inp, k / kk, k % kk / s.k, k % s.k, j0, j1, &mut chunk[..tw]);
                }
            }
            for (q, chunk) in sc.rows.chunks_exact(twp).enumerate() {
                if g * KG + q < kdim {
                    rows[q] = Some(&chunk[..tw]);
                }
            }
        }
        for b in 0..blocks {
            let dst = sc.panel[(b * kg + g) * NR * KG..][..NR * KG].as_mut_ptr();
            let px = b * NR;
            let full = px + NR <= tw;
            let ptrs: [*const u8; KG] = std::array::from_fn(|q| match rows[q] {
                None => zrow.as_ptr(),
                Some(r) if full => r[px..].as_ptr(),
                Some(r) => {
                    let n = tw - px;
                    tail[q][..n].copy_from_slice(&r[px..]);
                    tail[q][n..].fill(zp);
                    tail[q].as_ptr()
                }
            });
            // SAFETY: each pointer reads NR bytes (a full block of a row of tw >= px + NR
            // values, the zero-point row, or a padded tail copy); dst is one NR x 4 block of
            // the panel.
            unsafe { (kern.interleave)(ptrs, dst, flip) };
        }
    }
}

/// One im2col row (input channel c, kernel tap ky, kx) over output pixels [j0, j1).
#[allow(clippy::too_many_arguments)]
fn fill_row(p: &PackedConv, inp: &Input, c: usize, ky: usize, kx: usize, j0: usize, j1: usize, dst: &mut [u8]) {
    let s = p.shape();
    let (st, pad, w, ow) = (s.stride, s.pad, inp.w, inp.ow);
    let zp = p.input().zero_point;
    let plane = inp.planes[c];
    let (xlo, xhi) = valid_ox(kx, pad, st, w, ow);
    let mut j = j0;
    while j < j1 {
        let oy = j / ow;
        let ox0 = j - oy * ow;
        let ox1 = (ox0 + (j1 - j)).min(ow);
        let seg = &mut dst[j - j0..j - j0 + (ox1 - ox0)];
        let iy = (oy * st + ky) as isize - pad as isize;
        if iy < 0 || iy >= inp.h as isize {
            seg.fill(zp);
        } else {
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            let a = xlo.clamp(ox0, ox1);
            let b = xhi.clamp(a, ox1);
            seg[..a - ox0].fill(zp);
            seg[b - ox0..].fill(zp);
            let mid = &mut seg[a - ox0..b - ox0];
            if b == a {
                // the tap lies in the padding for this whole row segment
            } else if st == 1 {
                let ix0 = a + kx - pad;
                mid.copy_from_slice(&src[ix0..ix0 + (b - a)]);
            } else {
                let ix0 = a * st + kx - pad;
                for (i, o) in mid.iter_mut().enumerate() {
                    *o = src[ix0 + i * st];
                }
            }
        }
        j += ox1 - ox0;
    }
}

/// Valid output x range [lo, hi) for kernel column `kx`: those with 0 <= ox*s + kx - pad < w.
#[inline]
pub(crate) fn valid_ox(kx: usize, pad: usize, stride: usize, w: usize, ow: usize) -> (usize, usize) {
    let lo = if kx >= pad { 0 } else { (pad - kx).div_ceil(stride) };
    let hi = if w + pad > kx { ((w - 1 + pad - kx) / stride + 1).min(ow) } else { 0 };
    (lo.min(hi), hi)
}

/// Portable 4-row interleave (the NEON and SSE2 versions do the same with shuffles).
///
/// # Safety
/// As [`Interleave`].
#[allow(dead_code)]
pub(crate) unsafe fn interleave_scalar(rows: [*const u8; 4], dst: *mut u8, flip: u8) {
    for px in 0..NR {
        for (q, r) in rows.iter().enumerate() {
            // SAFETY: rows hold NR bytes, dst 4 * NR (the caller's contract).
            unsafe { *dst.add(4 * px + q) = *r.add(px) ^ flip };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ox_matches_bruteforce() {
        for &(w, k, s, p) in &[(7usize, 3usize, 1usize, 1usize), (8, 3, 2, 1), (5, 7, 1, 3), (9, 1, 1, 0), (10, 3, 2, 2), (3, 5, 3, 4)] {
            let ow = (w + 2 * p - k) / s + 1;
            for kx in 0..k {
                let (lo, hi) = valid_ox(kx, p, s, w, ow);
                for ox in 0..ow {
                    let ix = (ox * s + kx) as isize - p as isize;
                    assert_eq!(ix >= 0 && ix < w as isize, ox >= lo && ox < hi, "w{w} k{k} s{s} kx{kx} ox{ox}");
                }
            }
        }
    }

    #[test]
    fn plans_cover_the_map() {
        for t in [1, 2, 3, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                for &(n, kdim, c_out) in &[(6400usize, 288usize, 32usize), (400, 2304, 256), (100, 576, 64), (25600, 27, 16), (7, 9, 3), (1600, 96, 64)] {
                    let pl = plan(n, kdim, c_out);
                    assert!(pl.tw % NR == 0 && pl.tw > 0);
                    assert!(pl.col_tiles * pl.tw >= n && (pl.col_tiles - 1) * pl.tw < n, "{pl:?} n={n}");
                    assert!(pl.groups * pl.cb_per_group >= c_out.div_ceil(MR));
                    assert!((pl.groups - 1) * pl.cb_per_group < c_out.div_ceil(MR));
                }
            });
        }
    }
}
