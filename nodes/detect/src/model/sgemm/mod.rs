//! perch's own f32 GEMM: the dense convs (1x1, stride-1 k x k by taps, others by im2col) and
//! the area attention's two products.
//!
//! Why not the `gemm` crate (used before): a conv's GEMM is followed by bias, SiLU and often a
//! residual add, and preceded by im2col. Through a library those are extra passes over memory: the
//! GEMM writes its output, the epilogue reads it back, and the GEMM packs the im2col matrix a
//! second time. Here
//! - the weights are packed **once at load** into `MR`-row panels (`[panel][k][MR]`),
//! - each `NR`-column strip of B is written straight into the micro-kernel's layout (`[k][NR]`)
//!   in k blocks of ~24 KiB, so a block stays in L1 while every weight panel passes over it:
//!   copied input rows (1x1), shifted views of zero-padded planes (stride-1 k x k, `taps.rs`),
//!   or im2col (stride 2),
//! - bias, activation and residual are applied to each `MR x NR` tile while it is in L1, and
//! - the micro-kernels are sized for the ISA that runs: AVX-512 (8 x 48, 24 zmm accumulators),
//!   AVX2+FMA (4 x 24), NEON (8 x 12, `fmla` by lane), and a portable one (4 x 16).
//!
//! The work splits over column strips (and over weight panels when a map has few strips), so
//! both cores of this machine and all four of a Nano get even shares; strips are grouped so that
//! one k block of the weights serves several strips from L2.

pub(crate) mod attention;
mod micro;
mod taps;

use rayon::prelude::*;

use super::kernels::{self, Act, ConvGeom};

/// The micro-kernel family a [`PackedW`] was packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86_64 AVX-512F: 8 x 48 tiles.
    Avx512,
    /// x86_64 AVX2 + FMA: 4 x 24 tiles.
    Avx2,
    /// aarch64 NEON (every ARMv8-A, the Cortex-A57 included): 8 x 12 tiles.
    Neon,
    /// Plain Rust, whatever the compiler vectorises it to: 4 x 16 tiles.
    Portable,
}

impl Isa {
    /// The best family this CPU runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if kernels::has_avx2_fma() {
                return Isa::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Isa::Neon;
            }
        }
        Isa::Portable
    }

    /// Every family this CPU can run (tests compare them all).
    pub fn available() -> Vec<Isa> {
        let all = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Portable];
        all.into_iter().filter(|i| i.runs_here()).collect()
    }

    fn runs_here(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => kernels::has_avx2_fma(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Rows (output channels) x columns (output pixels) of one register tile.
    pub fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 => (8, 48),
            Isa::Avx2 => (4, 24),
            Isa::Neon => (8, 12),
            Isa::Portable => (4, 16),
        }
    }

    /// The name `perch info` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "perch sgemm avx512 (8x48)",
            Isa::Avx2 => "perch sgemm avx2+fma (4x24)",
            Isa::Neon => "perch sgemm neon (8x12)",
            Isa::Portable => "perch sgemm portable (4x16)",
        }
    }
}

/// Conv weights `[m, k]` (row-major, `k = c_in * kh * kw`) packed for one micro-kernel:
/// `[panel][k][MR]`, the rows past `m` of the last panel zero.
#[derive(Debug, Clone)]
pub struct PackedW {
    isa: Isa,
    m: usize,
    k: usize,
    /// The order of `k`: channel-major (`ci * kk + tap`, as stored) or, for [`conv_taps`],
    /// tap-major (`tap * c_in + ci`).
    tap_major: bool,
    data: Vec<f32>,
}

impl PackedW {
    /// Packs for this CPU's best kernel.
    pub fn new(w: &[f32], m: usize, k: usize) -> Self {
        Self::for_isa(w, m, k, Isa::detect())
    }

    /// Packs for `isa` (which must run here to be used).
    pub fn for_isa(w: &[f32], m: usize, k: usize, isa: Isa) -> Self {
        assert_eq!(w.len(), m * k, "PackedW: weights are not [m, k]");
        let (mr, _) = isa.tile();
        let panels = m.div_ceil(mr);
        let mut data = vec![0f32; panels * k * mr];
        for p in 0..panels {
            let panel = &mut data[p * k * mr..(p + 1) * k * mr];
            for i in 0..mr.min(m - p * mr) {
                let row = &w[(p * mr + i) * k..(p * mr + i + 1) * k];
                for (kk, v) in row.iter().enumerate() {
                    panel[kk * mr + i] = *v;
                }
            }
        }
        Self { isa, m, k, tap_major: false, data }
    }

    /// Packs a k x k conv's weights `[m, c_in * kk]` tap-major for [`conv_taps`], for this CPU.
    pub fn for_taps(w: &[f32], m: usize, c_in: usize, kk: usize) -> Self {
        Self::for_taps_isa(w, m, c_in, kk, Isa::detect())
    }

    pub fn for_taps_isa(w: &[f32], m: usize, c_in: usize, kk: usize, isa: Isa) -> Self {
        assert_eq!(w.len(), m * c_in * kk, "PackedW: weights are not [m, c_in * kk]");
        let mut perm = vec![0f32; w.len()];
        for co in 0..m {
            for ci in 0..c_in {
                for t in 0..kk {
                    perm[co * c_in * kk + t * c_in + ci] = w[(co * c_in + ci) * kk + t];
                }
            }
        }
        Self { tap_major: true, ..Self::for_isa(&perm, m, c_in * kk, isa) }
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn rows(&self) -> usize {
        self.m
    }
}

/// What a task fills a `[k][NR]` strip of B from.
#[derive(Clone, Copy)]
enum Rhs<'a> {
    /// A 1x1 conv: the channel concatenation of `parts`, each `[c_i, hw]`.
    Rows { parts: &'a [&'a [f32]], hw: usize },
    /// A k x k conv: im2col of `x` (`[c_in, h, w]`).
    Im2col { x: &'a [f32], g: &'a ConvGeom },
    /// A k x k conv read in place from zero-padded (phase) planes, one accumulation per tap.
    Taps(&'a taps::Planes),
}

impl Rhs<'_> {
    /// Writes rows [k0, k0 + kl) of B's columns [j0, j0 + nv) as `kl` rows of `nr` values (zeros
    /// or don't-care values past `nv`). For im2col, `k0` and `kl` are whole channels (multiples
    /// of k * k).
    #[inline(always)]
    fn fill(&self, j0: usize, nv: usize, nr: usize, k0: usize, kl: usize, buf: &mut [f32]) {
        match *self {
            Rhs::Rows { parts, hw } => {
                let mut base = 0;
                for part in parts {
                    let c = part.len() / hw;
                    for r in k0.max(base)..(k0 + kl).min(base + c) {
                        let row = &part[(r - base) * hw..(r - base + 1) * hw];
                        let (dst, pad) = buf[(r - k0) * nr..(r - k0 + 1) * nr].split_at_mut(nv);
                        kernels::copy_short(dst, &row[j0..j0 + nv]);
                        kernels::zero_short(pad);
                    }
                    base += c;
                }
            }
            Rhs::Im2col { x, g } => {
                let kk = g.k * g.k;
                kernels::im2col_strip(x, g, j0, j0 + nv, nr, k0 / kk..(k0 + kl) / kk, buf)
            }
            // Every tap's view is contiguous: one straight copy per (tap, channel) row. The
            // strip is read past `nv` (into the grid's discarded columns or the slack).
            Rhs::Taps(pl) => {
                for r in k0..k0 + kl {
                    let o = pl.offsets[r / pl.c_in] + (r % pl.c_in) * pl.plane + j0;
                    kernels::copy_short(&mut buf[(r - k0) * nr..(r - k0 + 1) * nr], &pl.data[o..o + nr]);
                }
            }
        }
    }

    /// Where rows [k0, k0 + kl) of B's columns [j0, j0 + nr) already lie in memory as the micro-kernel
    /// reads them (rows of `nr` values at a fixed stride), so the strip need not be copied: the
    /// number of [`Segment`]s written to `segs` (at most [`MAX_SEGMENTS`]), one per concat part
    /// (1x1) or per tap (k x k), each at least [`MIN_SEGMENT`] rows. `None`:
    /// copy with [`Rhs::fill`] (im2col; a strip past the map's end; segments too short, where
    /// the tile's reload per segment would cost more than the copy it saves).
    ///
    /// Same values, same order of accumulation as the copied strip: bit-identical results.
    #[inline(always)]
    fn in_place(&self, j0: usize, nr: usize, k0: usize, kl: usize, segs: &mut [Segment; MAX_SEGMENTS]) -> Option<usize> {
        let mut n = 0;
        let mut push = |off: usize, rows: usize, ptr: *const f32, ldb: usize| {
            if rows < MIN_SEGMENT.min(kl) || n == MAX_SEGMENTS {
                return false;
            }
            segs[n] = Segment { off, rows, ptr, ldb };
            n += 1;
            true
        };
        match *self {
            // The strip's last row must not run past its part: only strips inside the map.
            Rhs::Rows { parts, hw } if j0 + nr <= hw => {
                let mut base = 0;
                for part in parts {
                    let c = part.len() / hw;
                    let (r0, r1) = (k0.max(base), (k0 + kl).min(base + c));
                    if r0 < r1 && !push(r0 - k0, r1 - r0, part[(r0 - base) * hw + j0..].as_ptr(), hw) {
                        return None;
                    }
                    base += c;
                }
                Some(n)
            }
            // Every tap's rows are one plane apart and the planes' slack covers the last strip.
            Rhs::Taps(pl) => {
                let mut r0 = k0;
                while r0 < k0 + kl {
                    let (t, ci) = (r0 / pl.c_in, r0 % pl.c_in);
                    let r1 = ((t + 1) * pl.c_in).min(k0 + kl);
                    if !push(r0 - k0, r1 - r0, pl.data[pl.offsets[t] + ci * pl.plane + j0..].as_ptr(), pl.plane) {
                        return None;
                    }
                    r0 = r1;
                }
                Some(n)
            }
            _ => None,
        }
    }

    /// Rows per k block: ~24 KiB of B strip (it stays in L1 while every panel passes over it),
    /// whole channels for im2col.
    #[inline(always)]
    fn k_block(&self, nr: usize) -> usize {
        let kc = (24 * 1024 / 4 / nr).max(16);
        match *self {
            Rhs::Im2col { g, .. } => (kc / (g.k * g.k)).max(1) * g.k * g.k,
            _ => kc,
        }
    }
}

/// Most segments one k block is read from in place (e.g. 128 rows over four 32-channel taps).
const MAX_SEGMENTS: usize = 4;
/// Fewest rows worth a tile reload: below, copying the strip once for all panels is cheaper.
const MIN_SEGMENT: usize = 32;

/// Rows `off..off + rows` of a k block, read in place: row `r` at `ptr + (r - off) * ldb`.
#[derive(Clone, Copy)]
struct Segment {
    off: usize,
    rows: usize,
    ptr: *const f32,
    ldb: usize,
}

const NO_SEGMENT: Segment = Segment { off: 0, rows: 0, ptr: std::ptr::null(), ldb: 0 };

/// Everything a task needs; `out` is `[m, out_hw]`, written by disjoint tiles.
pub(crate) struct Job<'a> {
    w: &'a PackedW,
    rhs: Rhs<'a>,
    /// Columns of the GEMM: output pixels, or for taps the padded grid's `oh * wq`.
    hw: usize,
    /// Output pixels per channel (`out`'s row length, the residual's too).
    out_hw: usize,
    bias: &'a [f32],
    act: Act,
    residual: Option<&'a [f32]>,
    out: kernels::SendPtr,
}

/// One task: strips `s0..s1`, weight panels `p0..p1`. `inline(always)`: each ISA's
/// `Micro::task` compiles it, with im2col and the epilogue, inside its `target_feature` function.
#[inline(always)]
pub(crate) fn task_body<K: micro::Micro>(job: &Job, s0: usize, s1: usize, p0: usize, p1: usize) {
    let (mr, nr, k, hw, out_hw) = (K::MR, K::NR, job.w.k, job.hw, job.out_hw);
    let kc = job.rhs.k_block(nr).min(k);
    let np = p1 - p0;
    // Strips in groups of `ng`: one k block of the weights (all panels, up to ~128 KiB) is read
    // from L2 by all strips of a group instead of the whole weights once per strip (a 256 x 2304
    // conv's 2.4 MB would stream from L3 for every strip). Accumulators: ng * np tiles.
    // With a single k block nothing is re-read, and the epilogue is better done while the tile
    // is still in L1: one strip at a time.
    let ng = if k <= kc { 1 } else { (128 / np.max(1)).clamp(1, 8).min(s1 - s0) };
    // Not `with_scratch`: its closure would be compiled for the baseline ISA, not `K`'s. One
    // reused buffer for the B strip and the tiles: a fresh zeroed `Vec` of up to 128 tiles
    // (192 KiB) per task showed up as memset. No tile is read before its first k block
    // overwrites it (`add` = false), and the epilogue reads only the columns those wrote.
    let mut scratch = kernels::scratch_take(kc * nr + ng * np * micro::MAX_TILE);
    let (buf, tiles) = scratch.split_at_mut(kc * nr);
    let accs = tiles.as_chunks_mut::<{ micro::MAX_TILE }>().0;
    // (tile column, output index, length) runs of valid outputs; strip i's are runs[ends[i-1]..ends[i]].
    let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(8 * ng);
    let mut ends = [0usize; 8];
    let mut segs = [NO_SEGMENT; MAX_SEGMENTS];
    for gs in (s0..s1).step_by(ng) {
        let ge = (gs + ng).min(s1);
        runs.clear();
        for (gi, s) in (gs..ge).enumerate() {
            let (j0, nv) = (s * nr, nr.min(hw - s * nr));
            match job.rhs {
                Rhs::Taps(pl) => pl.runs(j0, nv, &mut runs),
                _ => runs.push((0, j0, nv)),
            }
            ends[gi] = runs.len();
        }
        for k0 in (0..k).step_by(kc) {
            let kl = kc.min(k - k0);
            for (gi, s) in (gs..ge).enumerate() {
                let (j0, nv) = (s * nr, nr.min(hw - s * nr));
                // Columns the epilogue reads: up to the end of the strip's last run.
                let used = runs[if gi == 0 { 0 } else { ends[gi - 1] }..ends[gi]].iter().map(|r| r.0 + r.2).max().unwrap_or(0);
                // The B rows of this k block: in place where they lie so, else copied into `buf`
                // as one segment of `kl` rows `nr` apart.
                let n = match job.rhs.in_place(j0, nr, k0, kl, &mut segs) {
                    Some(n) => n,
                    None => {
                        job.rhs.fill(j0, nv, nr, k0, kl, buf);
                        segs[0] = Segment { off: 0, rows: kl, ptr: buf.as_ptr(), ldb: nr };
                        1
                    }
                };
                for (p, acc) in (p0..p1).zip(accs[gi * np..(gi + 1) * np].iter_mut()) {
                    for sg in &segs[..n] {
                        // SAFETY: rows k0 + off.. k0 + off + rows of panel p (k rows of MR
                        // weights) exist; each segment's rows of NR values lie inside its part,
                        // the planes (checked by `in_place`) or `buf` (kl rows of NR); `acc` has
                        // room for MR x NR.
                        unsafe {
                            let a = job.w.data.as_ptr().add((p * k + k0 + sg.off) * mr);
                            K::tile_cols(sg.rows, a, sg.ptr, sg.ldb, acc, k0 + sg.off > 0, used)
                        };
                    }
                }
            }
        }
        for gi in 0..ge - gs {
            let strip_runs = &runs[if gi == 0 { 0 } else { ends[gi - 1] }..ends[gi]];
            for (p, tile) in (p0..p1).zip(accs[gi * np..(gi + 1) * np].iter()) {
                for i in 0..mr.min(job.w.m - p * mr) {
                    let co = p * mr + i;
                    for &(c0, o0, n) in strip_runs {
                        let acc = &tile[i * nr + c0..i * nr + c0 + n];
                        // SAFETY: row `co`, outputs [o0, o0 + n) of `out` ([m, out_hw]) belong
                        // to this task alone (its strips x its panels).
                        let dst = unsafe { std::slice::from_raw_parts_mut(job.out.0.add(co * out_hw + o0), n) };
                        let res = job.residual.map(|r| &r[co * out_hw + o0..co * out_hw + o0 + n]);
                        K::epilogue(acc, job.bias[co], job.act, res, dst);
                    }
                }
            }
        }
    }
    kernels::scratch_put(scratch);
}

/// Splits the work in tasks and runs them on the kernel `K`.
fn run_all<K: micro::Micro>(job: &Job) {
    let strips = job.hw.div_ceil(K::NR);
    let panels = job.w.m.div_ceil(K::MR);
    let want = 4 * rayon::current_num_threads().max(1);
    let (per_task, chunks) = if strips >= want {
        (strips.div_ceil(want), 1)
    } else {
        (1, panels.min(want.div_ceil(strips)))
    };
    let tiles = strips.div_ceil(per_task);
    let per_chunk = panels.div_ceil(chunks);
    let task = |t: usize| {
        let (st, ch) = (t / chunks, t % chunks);
        let (s0, p0) = (st * per_task, ch * per_chunk);
        // SAFETY: `dispatch` only picks a `K` whose features this CPU has.
        unsafe { K::task(job, s0, (s0 + per_task).min(strips), p0, (p0 + per_chunk).min(panels)) };
    };
    let n = tiles * chunks;
    if n == 1 {
        task(0);
    } else {
        (0..n).into_par_iter().for_each(task);
    }
}

fn dispatch(job: &Job) {
    let isa = job.w.isa;
    assert!(isa.runs_here(), "sgemm: weights packed for {isa:?}, which this CPU or build cannot run");
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => run_all::<micro::x86::Avx512>(job),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => run_all::<micro::x86::Avx2>(job),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => run_all::<micro::neon::Neon>(job),
        _ => run_all::<micro::Portable>(job),
    }
}

fn check(w: &PackedW, hw: usize, bias: &[f32], residual: Option<&[f32]>) {
    // Hard checks: the kernels write through raw pointers sized by these.
    assert!(hw > 0 && bias.len() >= w.m, "sgemm: empty map or short bias");
    assert!(residual.is_none_or(|r| r.len() >= w.m * hw), "sgemm: short residual");
}

/// A 1x1 conv (stride 1) over the channel concatenation of `parts` (each `[c_i, hw]`, the
/// concatenation is never built), with fused bias, activation and residual: `[m, hw]`.
pub fn conv1x1(parts: &[&[f32]], hw: usize, w: &PackedW, bias: &[f32], act: Act, residual: Option<&[f32]>) -> Vec<f32> {
    check(w, hw, bias, residual);
    assert!(parts.iter().all(|p| p.len() % hw == 0), "sgemm: a part is not [c, hw]");
    assert_eq!(parts.iter().map(|p| p.len() / hw).sum::<usize>(), w.k, "sgemm: input channels");
    let mut out = Vec::with_capacity(w.m * hw);
    assert!(!w.tap_major, "sgemm: tap-major weights for a 1x1 conv");
    let job = Job { w, rhs: Rhs::Rows { parts, hw }, hw, out_hw: hw, bias, act, residual, out: kernels::SendPtr(out.as_mut_ptr()) };
    dispatch(&job);
    // SAFETY: the tasks cover every strip and panel, so every value of [m, hw] was written.
    unsafe { out.set_len(w.m * hw) };
    out
}

/// A dense k x k conv of `x` (`[c_in, h, w]`) by im2col strips, with fused bias, activation and
/// residual: `[c_out, oh * ow]`.
pub fn conv_im2col(x: &[f32], g: &ConvGeom, w: &PackedW, bias: &[f32], act: Act, residual: Option<&[f32]>) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let hw = oh * ow;
    check(w, hw, bias, residual);
    assert!(x.len() >= g.c_in * g.h * g.w, "sgemm: short input");
    assert_eq!((w.m, w.k), (g.c_out, g.c_in * g.k * g.k), "sgemm: weights do not fit the geometry");
    let mut out = Vec::with_capacity(w.m * hw);
    assert!(!w.tap_major, "sgemm: tap-major weights for im2col");
    let job = Job { w, rhs: Rhs::Im2col { x, g }, hw, out_hw: hw, bias, act, residual, out: kernels::SendPtr(out.as_mut_ptr()) };
    dispatch(&job);
    // SAFETY: as in `conv1x1`.
    unsafe { out.set_len(w.m * hw) };
    out
}

/// A dense k x k conv (stride 1 or 2) with no im2col: the input is copied once into zero-padded
/// planes (for stride 2, its four even/odd phases), and each tap is one in-place GEMM over a
/// shifted view of them, accumulated in the tile. `w` must be packed by [`PackedW::for_taps`].
pub fn conv_taps(x: &[f32], g: &ConvGeom, w: &PackedW, bias: &[f32], act: Act, residual: Option<&[f32]>) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let out_hw = oh * ow;
    check(w, out_hw, bias, residual);
    assert!(w.tap_major, "sgemm: conv_taps needs tap-major weights (PackedW::for_taps)");
    assert_eq!((w.m, w.k), (g.c_out, g.c_in * g.k * g.k), "sgemm: weights do not fit the geometry");
    let planes = taps::Planes::new(x, g, w.isa.tile().1);
    let mut out = Vec::with_capacity(w.m * out_hw);
    let job = Job { w, rhs: Rhs::Taps(&planes), hw: planes.grid(), out_hw, bias, act, residual, out: kernels::SendPtr(out.as_mut_ptr()) };
    dispatch(&job);
    // SAFETY: the strips cover the whole grid, whose valid columns are exactly the oh x ow
    // outputs, and the panels every channel.
    unsafe { out.set_len(w.m * out_hw) };
    out
}

/// The core of YOLOv12's area attention on this CPU's micro-kernel: `qkv` is `[3c, n]`
/// channel-major, tokens split into `area` consecutive bands of `n / area`; head `h`'s channels
/// `h*3d..` are q (d), k (d), v (d). Writes `out` (`[c, n]`, channel `h*d + t`).
pub fn area_attention_into(qkv: &[f32], c: usize, n: usize, heads: usize, area: usize, out: &mut [f32]) {
    area_attention_isa(qkv, c, n, heads, area, out, Isa::detect())
}

fn area_attention_isa(qkv: &[f32], c: usize, n: usize, heads: usize, area: usize, out: &mut [f32], isa: Isa) {
    assert!(isa.runs_here(), "attention: {isa:?} does not run here");
    let d = c / heads;
    // Hard checks: the pairs read and write through raw pointers sized by these.
    assert!(heads > 0 && area > 0 && c.is_multiple_of(heads) && n.is_multiple_of(area), "attention: bad split");
    assert!(qkv.len() >= 3 * c * n && out.len() >= c * n, "attention: short buffers");
    let job = attention::AttnJob {
        qkv,
        n,
        d,
        heads,
        na: n / area,
        scale: (d as f32).powf(-0.5),
        out: kernels::SendPtr(out.as_mut_ptr()),
    };
    let run = |idx: usize| {
        // SAFETY: `isa` runs here (checked above).
        unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => <micro::x86::Avx512 as micro::Micro>::attention(&job, idx),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => <micro::x86::Avx2 as micro::Micro>::attention(&job, idx),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => <micro::neon::Neon as micro::Micro>::attention(&job, idx),
                _ => <micro::Portable as micro::Micro>::attention(&job, idx),
            }
        }
    };
    (0..area * heads).into_par_iter().for_each(run);
}

/// Whether [`conv_taps`] runs this geometry: square kernels > 1 at stride 1 or 2. Stride 2 went
/// through im2col while the taps' strips were copied (the phase planes then cost more than im2col
/// saved: 62.8 vs 69.6 GFLOP/s for a 32 -> 64 3x3 at 160 x 160); read in place they win: YOLOv12n
/// @320, one thread, 16.0 -> 14.5 ms (im2col's per-pixel index work was ~14 % of the forward).
pub fn taps_fit(k: usize, stride: usize) -> bool {
    k > 1 && stride <= 2
}

#[cfg(test)]
mod tests;
