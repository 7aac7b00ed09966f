//! Dense (groups = 1) convolution as a GEMM over column tiles:
//! `acc[co, j] = sum_k w[co, k] * im2col[k, j]`, k = (c, ky, kx), j = output pixel.
//!
//! Per tile of output columns the im2col block is packed straight into the micro-kernels' panel
//! layout `[TW/NR][KG groups][NR][4]` (4 consecutive k of one pixel in one 32-bit lane): for
//! each block of 16 output pixels and group of 4 taps, the taps' 16 input bytes are read in place
//! (a 1x1 stride-1 conv reads the planes themselves; other convs read a copy of the input
//! bordered with the zero point, made once per call, where 16 pixels of one output row are 16
//! consecutive bytes at stride 1 and the even bytes of 32 at stride 2; blocks that wrap to the
//! next output row join two such pieces) and interleaved 4 ways. No im2col matrix is built. The
//! micro-kernels multiply a panel block with the prepacked weight blocks `[MR][4]` per group into
//! raw i32 sums for the whole tile, then the epilogue turns each channel's row of the tile into
//! outputs.

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

/// An ISA's two packing primitives. [`pack_panel_with`] is generic over them and each ISA
/// instantiates it inside one `#[target_feature]` function, so both inline into the packing loop
/// (through function pointers they were two calls per 16 bytes: ~28 % of the int8 YOLOv8n @320
/// samples went to packing, more than to the micro-kernel).
pub(crate) trait PackOps {
    /// Interleaves four rows of NR bytes into NR x 4 bytes (`dst[4 * px + q] = rows[q][px] ^ flip`).
    ///
    /// # Safety
    /// Every row holds NR bytes, `dst` 4 * NR; the CPU has the implementation's instructions.
    unsafe fn interleave(rows: [*const u8; 4], dst: *mut u8, flip: u8);

    /// 16 bytes of one im2col row for a block of 16 output pixels that lies in (at most) two
    /// output rows: `dst[i] = a[i * s]` for i < n1, `b[(i - n1) * s]` after (s = 1 or 2).
    ///
    /// # Safety
    /// `a` is readable for 16 * s bytes and, when n1 < 16, `b - n1 * s` for 16 * s bytes; `dst`
    /// writable for 16; the CPU has the implementation's instructions.
    unsafe fn gather(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8);
}

/// Packs the im2col columns [j0, j1) of `src` into `panel` (`pack_panel_with` for one ISA).
///
/// # Safety
/// `panel` holds ceil((j1 - j0) / NR) * kg * NR * KG bytes; the CPU has the ISA's instructions.
pub(crate) type PackPanel = unsafe fn(src: &Source, kdim: usize, flip: u8, j0: usize, j1: usize, kg: usize, panel: &mut [u8]);

/// A variant's dense kernel set.
pub(crate) struct Kernel {
    pub micro: Micro,
    /// Weight blocks per micro-kernel call (its register budget).
    pub nb_max: usize,
    /// Whether the micro-kernel reads the i16-widened weight panel.
    pub wide_weights: bool,
    pub raw: RawSum,
    pub epilogue: Epilogue,
    pub pack: PackPanel,
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
    static SCRATCH: std::cell::Cell<Scratch> = const { std::cell::Cell::new(Scratch { panel: Vec::new(), acc: Vec::new() }) };
    static PADDED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

#[derive(Default)]
struct Scratch {
    panel: Vec<u8>,
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
    let mut padded = PADDED.take();
    let src = Source::new(p, &inp, &mut padded);
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
        let flip = if kern.raw == RawSum::S8 { 0x80 } else { 0 };
        // SAFETY: the panel was sized above; `conv_with` checked the variant's instructions.
        unsafe { (kern.pack)(&src, s.kdim(), flip, j0, j1, kg, &mut sc.panel) };
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
    PADDED.set(padded);
}

/// Bytes before and after the padded planes, so that the 32-byte reads of a block and the
/// back-shifted read of a wrapped block's second piece stay inside the buffer.
const SLACK: usize = 64;

/// Where the im2col bytes come from.
pub(crate) struct Source<'a> {
    /// 1x1 stride-1 unpadded conv: the im2col row of channel c is the plane itself.
    direct: Option<&'a [&'a [u8]]>,
    /// Otherwise the planes bordered with the zero point: plane c's padded row y starts at
    /// `SLACK + c * plane + y * pw`.
    buf: &'a [u8],
    /// Per im2col row k = (c, ky, kx): `c * plane + ky * pw + kx`.
    tap: Vec<usize>,
    pw: usize,
    s: usize,
    ow: usize,
    /// Output pixels.
    n: usize,
    zp: u8,
}

/// Where one block of 16 output pixels (j..j+16) reads, for every im2col row.
#[derive(Clone, Copy)]
enum Loc {
    /// The plane offset j (direct source) or the padded offset of the block's first pixel, with
    /// the number of its pixels in the first output row and the offset of the next row's first.
    Rows { a: usize, n1: usize, b: usize },
    /// Past the map's end, 3+ output rows, or a stride > 2: pixel by pixel, from the offsets of
    /// the block's 16 pixels (plane offsets, or padded offsets relative to a tap), computed once
    /// per block. A pixel past the map's end repeats the last pixel's offset: its outputs are
    /// discarded, so any value in range will do.
    Pixels { offs: [u32; NR] },
}

impl<'a> Source<'a> {
    fn new(p: &PackedConv, inp: &'a Input, buf: &'a mut Vec<u8>) -> Self {
        let s = *p.shape();
        let zp = p.input().zero_point;
        let n = inp.oh * inp.ow;
        if s.k == 1 && s.stride == 1 && s.pad == 0 {
            return Source { direct: Some(&inp.planes), buf: &[], tap: Vec::new(), pw: 0, s: 1, ow: inp.ow, n, zp };
        }
        // Every padded row a tap reaches: (oh - 1) * s + k rows of (ow - 1) * s + k columns, at
        // least the input with its borders.
        let pw = (inp.w + 2 * s.pad).max((inp.ow - 1) * s.stride + s.k);
        let ph = (inp.h + 2 * s.pad).max((inp.oh - 1) * s.stride + s.k);
        let plane = pw * ph;
        buf.clear();
        buf.resize(2 * SLACK + s.c_in * plane, zp);
        for (c, src) in inp.planes.iter().enumerate() {
            for y in 0..inp.h {
                let o = SLACK + c * plane + (y + s.pad) * pw + s.pad;
                buf[o..o + inp.w].copy_from_slice(&src[y * inp.w..(y + 1) * inp.w]);
            }
        }
        let kk = s.k * s.k;
        let tap = (0..s.kdim()).map(|k| (k / kk) * plane + (k % kk / s.k) * pw + k % s.k).collect();
        Source { direct: None, buf, tap, pw, s: s.stride, ow: inp.ow, n, zp }
    }

    #[inline(always)]
    fn locate(&self, j: usize) -> Loc {
        if j + NR > self.n || self.s > 2 {
            return self.pixels(j);
        }
        if self.direct.is_some() {
            return Loc::Rows { a: j, n1: NR, b: 0 };
        }
        let (oy, ox0) = (j / self.ow, j % self.ow);
        let n1 = self.ow - ox0;
        if n1 < NR && NR - n1 > self.ow {
            return self.pixels(j);
        }
        let row = |oy: usize| SLACK + oy * self.s * self.pw;
        Loc::Rows { a: row(oy) + ox0 * self.s, n1: n1.min(NR), b: row(oy + 1) }
    }

    /// [`Loc::Pixels`] for the block starting at pixel `j` (< n). Out of line: it is the rare
    /// case, and `locate` inlines into every ISA's packing loop.
    #[inline(never)]
    fn pixels(&self, j: usize) -> Loc {
        let mut offs = [0u32; NR];
        let (mut oy, mut ox) = (j / self.ow, j % self.ow);
        let mut last = 0;
        for (i, o) in offs.iter_mut().enumerate() {
            if j + i < self.n {
                last = if self.direct.is_some() { (j + i) as u32 } else { (SLACK + (oy * self.pw + ox) * self.s) as u32 };
                ox += 1;
                if ox == self.ow {
                    (oy, ox) = (oy + 1, 0);
                }
            }
            *o = last;
        }
        Loc::Pixels { offs }
    }

    /// The 16 bytes of im2col row `k` at `loc`: a pointer into the source, or `tmp` filled.
    #[inline(always)]
    fn row<P: PackOps>(&self, loc: Loc, k: usize, tmp: &mut [u8; NR]) -> *const u8 {
        match (loc, self.direct) {
            (Loc::Rows { a, .. }, Some(planes)) => planes[k][a..a + NR].as_ptr(),
            (Loc::Rows { a, n1, b }, None) => {
                let t = self.tap[k];
                let pa = self.buf[t + a..].as_ptr();
                if n1 == NR && self.s == 1 {
                    return pa;
                }
                let pb = if n1 == NR { pa } else { self.buf[t + b..].as_ptr() };
                // SAFETY: pa reads 16 * s bytes of row oy's span (plus at most 32 bytes into
                // the SLACK after the last plane); pb - n1 * s reads 16 * s bytes starting at
                // most 30 bytes before row oy + 1 (SLACK >= 32 precedes plane 0); tmp is 16
                // bytes; `conv_with` checked the variant's instructions.
                unsafe { P::gather(pa, pb, n1, self.s, tmp.as_mut_ptr()) };
                tmp.as_ptr()
            }
            (Loc::Pixels { offs }, Some(planes)) => {
                let plane = planes[k];
                for (v, &o) in tmp.iter_mut().zip(&offs) {
                    *v = plane[o as usize];
                }
                tmp.as_ptr()
            }
            (Loc::Pixels { offs }, None) => {
                let tap = &self.buf[self.tap[k]..];
                for (v, &o) in tmp.iter_mut().zip(&offs) {
                    *v = tap[o as usize];
                }
                tmp.as_ptr()
            }
        }
    }
}

/// Packs the im2col columns [j0, j1) into `panel` as `[blocks][kg][NR][4]`; k past kdim reads
/// the zero point (its weights are 0), pixels past the map read some in-map value (their outputs
/// are discarded).
/// Inlined into each ISA's `#[target_feature]` [`PackPanel`].
///
/// # Safety
/// As [`PackPanel`], with `P`'s instructions.
#[inline(always)]
pub(crate) unsafe fn pack_panel_with<P: PackOps>(src: &Source, kdim: usize, flip: u8, j0: usize, j1: usize, kg: usize, panel: &mut [u8]) {
    let blocks = (j1 - j0).div_ceil(NR);
    let zrow = [src.zp; NR];
    let mut tmp = [[0u8; NR]; KG];
    for b in 0..blocks {
        // Pixels past the tile's end (inside the map) are computed and discarded.
        let loc = src.locate(j0 + b * NR);
        for g in 0..kg {
            let [t0, t1, t2, t3] = &mut tmp;
            let mut ptrs = [zrow.as_ptr(); KG];
            for (q, t) in [t0, t1, t2, t3].into_iter().enumerate() {
                let k = g * KG + q;
                if k < kdim {
                    ptrs[q] = src.row::<P>(loc, k, t);
                }
            }
            let dst = panel[(b * kg + g) * NR * KG..][..NR * KG].as_mut_ptr();
            // SAFETY: each pointer reads NR bytes (inside a plane or the padded buffer, the
            // zero-point row, or a filled tmp); dst is one NR x 4 block of the panel; the
            // caller has P's instructions.
            unsafe { P::interleave(ptrs, dst, flip) };
        }
    }
}

/// Portable gather (the SIMD versions do the same with blends).
///
/// # Safety
/// As [`PackOps::gather`].
#[allow(dead_code)]
pub(crate) unsafe fn gather_scalar(a: *const u8, b: *const u8, n1: usize, s: usize, dst: *mut u8) {
    for i in 0..NR {
        // SAFETY: the caller's contract.
        unsafe { *dst.add(i) = if i < n1 { *a.add(i * s) } else { *b.add((i - n1) * s) } };
    }
}

/// Portable 4-row interleave (the NEON and SSE2 versions do the same with shuffles).
///
/// # Safety
/// As [`PackOps::interleave`].
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
    fn plans_cover_the_map() {
        for t in [1, 2, 3, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                for &(n, kdim, c_out) in &[(6400usize, 288usize, 32usize), (400, 2304, 256), (100, 576, 64), (25600, 27, 16), (7, 9, 3), (1600, 96, 64)] {
                    let pl = plan(n, kdim, c_out);
                    assert!(pl.tw.is_multiple_of(NR) && pl.tw > 0);
                    assert!(pl.col_tiles * pl.tw >= n && (pl.col_tiles - 1) * pl.tw < n, "{pl:?} n={n}");
                    assert!(pl.groups * pl.cb_per_group >= c_out.div_ceil(MR));
                    assert!((pl.groups - 1) * pl.cb_per_group < c_out.div_ceil(MR));
                }
            });
        }
    }
}
