//! Hand-written CPU kernels for the f32 conv path: tiled im2col + GEMM (the `gemm` crate, the
//! same one Candle's matmul uses) with bias, SiLU and a residual add fused into the output pass,
//! a direct depthwise conv, and area attention driven by strided GEMMs (no transposes).
//!
//! Every loop-heavy function has a generic body and an AVX2+FMA instantiation selected at run
//! time, so the default `x86-64` build still gets 8-wide vectors.

use rayon::prelude::*;

/// Activation fused into a conv's output pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Silu,
}

/// Runs `f` compiled with AVX2+FMA when the CPU has them. `f` must be `#[inline(always)]`.
macro_rules! dispatch_avx2 {
    ($name:ident, fn($($arg:ident : $ty:ty),*) $body:block) => {
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            // Unsafe only because of the target features: callers must have detected them.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the features were detected just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// exp(x) for f32 with ~1 ulp-class accuracy (Cephes' expf polynomial); written so it
/// auto-vectorises: no branches, rounding by the 1.5*2^23 trick, and 2^n built from the rounded
/// value's own bits (a saturating `as i32` cast would be scalarised lane by lane).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer in the low bits
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    // ln2 split in two for an exact reduction.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let r2 = r * r;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e = p * r2 + r + 1.0;
    // t's bits are MAGIC's bits + n (|n| < 2^22) and MAGIC's low 9 bits are zero, so shifting
    // (bits + 127) by 23 leaves exactly the biased exponent n + 127 (in 1..=254 after the clamp).
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e * scale
}

#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

dispatch_avx2!(epilogue_row, fn(row: &mut [f32], bias: f32, act: Act, residual: Option<&[f32]>) {
    match act {
        Act::Silu => row.iter_mut().for_each(|v| *v = silu(*v + bias)),
        Act::None => row.iter_mut().for_each(|v| *v += bias),
    }
    if let Some(r) = residual {
        row.iter_mut().zip(r).for_each(|(v, r)| *v += *r);
    }
});

/// Lanes for reductions: float max/sum do not reassociate, so a loop with one accumulator stays
/// scalar (and drags every fused op with it); 8 independent accumulators vectorise.
const LANES: usize = 8;

#[inline(always)]
fn max_lanes(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    acc.iter().fold(tail, |m, v| m.max(*v))
}

#[inline(always)]
fn sum_lanes(row: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += *v;
        }
    }
    chunks.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()
}

dispatch_avx2!(softmax_rows, fn(data: &mut [f32], row_len: usize, scale: f32) {
    for row in data.chunks_exact_mut(row_len) {
        let max = max_lanes(row) * scale;
        row.iter_mut().for_each(|v| *v = fast_exp(*v * scale - max));
        let inv = 1.0 / sum_lanes(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
});

dispatch_avx2!(sigmoid_into, fn(src: &[f32], dst: &mut [f32]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d = sigmoid(*v);
    }
});

// DFL: the expected bin of a softmax over `bins.len() / hw` bins stored bin-major ([bins, hw]),
// for all `hw` anchors at once (anchors are the vector lanes, so nothing is reduced across lanes).
dispatch_avx2!(dfl_expectation, fn(bins: &[f32], hw: usize, out: &mut [f32]) {
    let nb = bins.len() / hw;
    let mut max = vec![f32::NEG_INFINITY; hw];
    for k in 0..nb {
        for (m, v) in max.iter_mut().zip(&bins[k * hw..(k + 1) * hw]) {
            *m = m.max(*v);
        }
    }
    let mut den = vec![0f32; hw];
    out.fill(0.0);
    for k in 0..nb {
        let kf = k as f32;
        for (((o, d), m), v) in out.iter_mut().zip(den.iter_mut()).zip(&max).zip(&bins[k * hw..(k + 1) * hw]) {
            let e = fast_exp(*v - *m);
            *o += e * kf;
            *d += e;
        }
    }
    out.iter_mut().zip(&den).for_each(|(o, d)| *o /= *d);
});

/// Geometry of a 2-D convolution on one image (batch 1, NCHW).
#[derive(Debug, Clone, Copy)]
pub struct ConvGeom {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
}

/// Valid output x range [lo, hi) for kernel column `kx`: those with 0 <= ox*s + kx - pad < w.
#[inline(always)]
fn valid_ox(kx: usize, pad: usize, stride: usize, w: usize, ow: usize) -> (usize, usize) {
    let lo = if kx >= pad { 0 } else { (pad - kx).div_ceil(stride) };
    // ox*s + kx - pad <= w - 1  <=>  ox <= (w - 1 + pad - kx) / s
    let hi = if w + pad > kx { ((w - 1 + pad - kx) / stride + 1).min(ow) } else { 0 };
    (lo.min(hi), hi)
}

dispatch_avx2!(im2col_tile, fn(x: &[f32], g: &ConvGeom, j0: usize, j1: usize, col: &mut [f32]) {
    let (_, ow) = g.out_hw();
    let tw = j1 - j0;
    let (k, s, p) = (g.k, g.stride, g.pad);
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (c * k + ky) * k + kx;
                let dst = &mut col[r * tw..(r + 1) * tw];
                let (xlo, xhi) = valid_ox(kx, p, s, g.w, ow);
                let mut j = j0;
                while j < j1 {
                    let oy = j / ow;
                    let ox0 = j - oy * ow;
                    let ox1 = (ox0 + (j1 - j)).min(ow);
                    let seg = &mut dst[j - j0..j - j0 + (ox1 - ox0)];
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= g.h as isize {
                        seg.fill(0.0);
                    } else {
                        let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        let a = xlo.clamp(ox0, ox1);
                        let b = xhi.clamp(a, ox1);
                        seg[..a - ox0].fill(0.0);
                        seg[b - ox0..].fill(0.0);
                        if s == 1 {
                            let ix0 = a + kx - p;
                            seg[a - ox0..b - ox0].copy_from_slice(&src[ix0..ix0 + (b - a)]);
                        } else if s == 2 {
                            // Even/odd de-interleave: chunks of 2 let LLVM use shuffles instead of
                            // one scalar load per element.
                            let ix0 = a * 2 + kx - p;
                            let n = b - a;
                            let src2 = &src[ix0..];
                            let full = (src2.len() / 2).min(n);
                            for (o, pair) in seg[a - ox0..a - ox0 + full].iter_mut().zip(src2.chunks_exact(2)) {
                                *o = pair[0];
                            }
                            if full < n {
                                seg[a - ox0 + full] = src2[2 * full];
                            }
                        } else {
                            for ox in a..b {
                                seg[ox - ox0] = src[ox * s + kx - p];
                            }
                        }
                    }
                    j += ox1 - ox0;
                }
            }
        }
    }
});

thread_local! {
    static COL: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, at least `len` long. The buffer is moved out of the
/// thread-local while `f` runs, not borrowed: if `f` waits inside rayon (a parallel GEMM) and this
/// thread meanwhile runs another task that needs scratch, that task gets a fresh buffer instead of
/// finding this one borrowed (a `RefCell` would panic there).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = COL.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    COL.set(buf);
    r
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// out[co, j] (+)= sum_k w[co, k] * rhs[k, j]  for j in the tile, rhs given by pointer/row stride;
/// with `accumulate` the product is added to what `dst` holds.
///
/// # Safety
/// `rhs` must be valid for `kdim` rows of `n` columns with row stride `rhs_rs`; `dst` for `m`
/// rows of `n` columns with row stride `dst_rs`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into(
    m: usize,
    n: usize,
    kdim: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
    accumulate: bool,
    par: bool,
) {
    let parallelism = if par && threads() > 1 {
        gemm::Parallelism::Rayon(threads())
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        kdim,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        parallelism,
    )
}

/// Raw pointer that may cross rayon tasks; each task writes a disjoint column range.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer targets an output buffer that outlives the parallel loop using it, and every
// task writes only its own, disjoint range of it (stated at each use), so sharing it is race-free.
unsafe impl Send for SendPtr {}
// SAFETY: as for Send: tasks only write disjoint ranges through copies of the pointer.
unsafe impl Sync for SendPtr {}

/// Output columns per task: the im2col block (kdim x tile) stays in L2 (~256 KiB of it), and
/// there are at least two tiles per thread so both cores get work.
fn column_tile(hw: usize, kdim: usize) -> usize {
    let tile = ((256 * 1024 / 4) / kdim.max(1)).clamp(32, 1024) / 16 * 16;
    let nt = threads();
    if hw.div_ceil(tile) < 2 * nt {
        hw.div_ceil(2 * nt).div_ceil(16) * 16
    } else {
        tile
    }
}

/// Runs `run_tile(t)` over all column tiles in parallel; each tile's GEMM is serial (the tiles are
/// the parallelism). A single tile (maps of a few pixels) runs on the calling thread.
fn for_each_tile(tiles: usize, run_tile: impl Fn(usize) + Sync + Send) {
    if tiles == 1 {
        run_tile(0);
    } else {
        (0..tiles).into_par_iter().for_each(run_tile);
    }
}

/// Bias, activation and residual on the output columns [j0, j1) of every channel.
///
/// # Safety
/// `out` must hold `m` rows of `hw` values, and no other task may touch these columns.
unsafe fn epilogue_tile(out: SendPtr, m: usize, hw: usize, j0: usize, j1: usize, bias: &[f32], act: Act, residual: Option<&[f32]>) {
    for co in 0..m {
        let row = std::slice::from_raw_parts_mut(out.0.add(co * hw + j0), j1 - j0);
        let r = residual.map(|r| &r[co * hw + j0..co * hw + j1]);
        epilogue_row(row, bias[co], act, r);
    }
}

/// Dense (groups = 1) convolution with fused bias, activation and residual.
/// `w` is [c_out, c_in*k*k] row-major, `x` is [c_in, h, w], result [c_out, oh*ow].
pub fn conv_dense(
    x: &[f32],
    g: &ConvGeom,
    w: &[f32],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    if g.k == 1 && g.stride == 1 && g.pad == 0 {
        return conv1x1_cat(&[x], g.h * g.w, g.c_out, w, bias, act, residual);
    }
    let (oh, ow) = g.out_hw();
    let hw = oh * ow;
    let kdim = g.c_in * g.k * g.k;
    let m = g.c_out;
    let mut out = Vec::with_capacity(m * hw);
    let tile = column_tile(hw, kdim);
    let outp = SendPtr(out.as_mut_ptr());
    for_each_tile(hw.div_ceil(tile), |t| {
        let j0 = t * tile;
        let j1 = (j0 + tile).min(hw);
        let n = j1 - j0;
        let outp = outp;
        with_scratch(kdim * n, |col| {
            im2col_tile(x, g, j0, j1, col);
            // SAFETY: the tile's columns of `out` are written by this task only; `col` holds kdim
            // rows of n values and `w` m rows of kdim.
            unsafe {
                gemm_into(m, n, kdim, outp.0.add(j0), hw, w.as_ptr(), kdim, 1, col.as_ptr(), n, 1, false, false);
            }
        });
        // SAFETY: as above; the GEMM (read_dst = false) has written every value of the tile.
        unsafe { epilogue_tile(outp, m, hw, j0, j1, bias, act, residual) };
    });
    // SAFETY: the tiles cover all hw columns of all m rows, each written by its GEMM.
    unsafe { out.set_len(m * hw) };
    out
}

/// A 1x1 convolution over the channel concatenation of `parts` (each [c_i, hw], sum c_i =
/// c_in), without building the concatenation: one accumulating GEMM per part against its slice
/// of the weight columns. `w` is [c_out, c_in] row-major.
pub fn conv1x1_cat(
    parts: &[&[f32]],
    hw: usize,
    c_out: usize,
    w: &[f32],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let c_in = w.len() / c_out.max(1);
    // Hard checks: the GEMMs below read through raw pointers sized by these.
    assert!(!parts.is_empty() && hw > 0, "conv1x1_cat: no input");
    assert!(parts.iter().all(|p| p.len() % hw == 0), "conv1x1_cat: a part is not [c, hw]");
    assert_eq!(parts.iter().map(|p| p.len() / hw).sum::<usize>(), c_in, "conv1x1_cat: channels");
    assert!(bias.len() >= c_out && residual.is_none_or(|r| r.len() >= c_out * hw), "conv1x1_cat: bias/residual");
    // Not zeroed: the first part's GEMM (read_dst = false) writes every value.
    let mut out = Vec::with_capacity(c_out * hw);
    let tile = column_tile(hw, c_in);
    let outp = SendPtr(out.as_mut_ptr());
    for_each_tile(hw.div_ceil(tile), |t| {
        let j0 = t * tile;
        let j1 = (j0 + tile).min(hw);
        let outp = outp;
        let mut k0 = 0;
        for (i, x) in parts.iter().enumerate() {
            let kp = x.len() / hw;
            // SAFETY: the tile's columns of `out` are written by this task only; `x` holds kp
            // rows of hw values and `w` c_out rows of c_in.
            unsafe {
                gemm_into(c_out, j1 - j0, kp, outp.0.add(j0), hw, w.as_ptr().add(k0), c_in, 1, x.as_ptr().add(j0), hw, 1, i > 0, false);
            }
            k0 += kp;
        }
        // SAFETY: as above, and the first GEMM has written every value of the tile.
        unsafe { epilogue_tile(outp, c_out, hw, j0, j1, bias, act, residual) };
    });
    // SAFETY: the tiles cover all hw columns of all c_out rows.
    unsafe { out.set_len(c_out * hw) };
    out
}

dispatch_avx2!(dw_channel, fn(plane: &[f32], g: &ConvGeom, wk: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, out: &mut [f32]) {
    let (oh, ow) = g.out_hw();
    let (k, s, p) = (g.k, g.stride, g.pad);
    out.fill(bias);
    for oy in 0..oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - p as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
            for kx in 0..k {
                let wv = wk[ky * k + kx];
                let (a, b) = valid_ox(kx, p, s, g.w, ow);
                if s == 1 {
                    let ix0 = a + kx - p;
                    for (o, i) in orow[a..b].iter_mut().zip(&src[ix0..ix0 + (b - a)]) {
                        *o += wv * *i;
                    }
                } else {
                    for ox in a..b {
                        orow[ox] += wv * src[ox * s + kx - p];
                    }
                }
            }
        }
    }
    epilogue_row(out, 0.0, act, residual);
});

/// Output columns one register block of the stride-1 depthwise kernel covers (two 8-wide vectors).
const DW_LANES: usize = 16;

thread_local! {
    static DW_PAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

// Stride-1 depthwise conv of one channel: the plane is copied once into a zero-bordered buffer,
// then two output rows x 16 columns accumulate in registers over all k*k taps (four independent
// FMA chains, no edge cases in the loop), instead of one short, tail-heavy pass per tap.
dispatch_avx2!(dw_channel_s1, fn(plane: &[f32], g: &ConvGeom, wk: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, out: &mut [f32], pad: &mut Vec<f32>) {
    let (oh, ow) = g.out_hw();
    let (k, p) = (g.k, g.pad);
    let owc = ow.div_ceil(DW_LANES) * DW_LANES;
    let pw = (g.w + 2 * p).max(owc + k - 1);
    // One spare zero row so the second row of the last pair can be computed (and discarded).
    let ph = (g.h + 2 * p).max(oh + k);
    pad.clear();
    pad.resize(pw * ph, 0.0);
    for y in 0..g.h {
        pad[(y + p) * pw + p..(y + p) * pw + p + g.w].copy_from_slice(&plane[y * g.w..(y + 1) * g.w]);
    }
    for oy in (0..oh).step_by(2) {
        for ox0 in (0..owc).step_by(DW_LANES) {
            let mut a0 = [bias; DW_LANES];
            let mut a1 = [bias; DW_LANES];
            for ky in 0..k {
                let r0 = &pad[(oy + ky) * pw + ox0..(oy + ky) * pw + ox0 + DW_LANES + k - 1];
                let r1 = &pad[(oy + 1 + ky) * pw + ox0..(oy + 1 + ky) * pw + ox0 + DW_LANES + k - 1];
                for kx in 0..k {
                    let wv = wk[ky * k + kx];
                    for (a, v) in a0.iter_mut().zip(&r0[kx..kx + DW_LANES]) {
                        *a += wv * *v;
                    }
                    for (a, v) in a1.iter_mut().zip(&r1[kx..kx + DW_LANES]) {
                        *a += wv * *v;
                    }
                }
            }
            let n = DW_LANES.min(ow - ox0.min(ow));
            out[oy * ow + ox0..oy * ow + ox0 + n].copy_from_slice(&a0[..n]);
            if oy + 1 < oh {
                out[(oy + 1) * ow + ox0..(oy + 1) * ow + ox0 + n].copy_from_slice(&a1[..n]);
            }
        }
    }
    epilogue_row(out, 0.0, act, residual);
});

/// Depthwise convolution (groups = c_in = c_out), `w` is [c, k*k].
pub fn conv_depthwise(
    x: &[f32],
    g: &ConvGeom,
    w: &[f32],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let (oh, ow) = g.out_hw();
    let hw = oh * ow;
    let kk = g.k * g.k;
    let mut out = vec![0f32; g.c_out * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(c, o)| {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        let r = residual.map(|r| &r[c * hw..(c + 1) * hw]);
        if g.stride == 1 {
            DW_PAD.with(|pad| dw_channel_s1(plane, g, &w[c * kk..(c + 1) * kk], bias[c], act, r, o, &mut pad.borrow_mut()));
        } else {
            dw_channel(plane, g, &w[c * kk..(c + 1) * kk], bias[c], act, r, o);
        }
    });
    out
}

/// Area attention core of YOLOv12's AAttn on a channel-major qkv map [3C, N] (N = H*W):
/// tokens are split into `area` consecutive row bands; channel `h*3d + j` of head `h` is q for
/// j < d, k for d <= j < 2d, v after. Returns (attn_out [C, N], v [C, N]) channel-major, with
/// output channel `h*d + j`.
pub fn area_attention(qkv: &[f32], c: usize, n: usize, heads: usize, area: usize) -> (Vec<f32>, Vec<f32>) {
    let d = c / heads;
    let na = n / area;
    let scale = (d as f32).powf(-0.5);
    let mut out = vec![0f32; c * n];
    let mut v = vec![0f32; c * n];
    for h in 0..heads {
        let src = &qkv[(h * 3 * d + 2 * d) * n..(h * 3 * d + 3 * d) * n];
        v[h * d * n..(h + 1) * d * n].copy_from_slice(src);
    }
    let outp = SendPtr(out.as_mut_ptr());
    let pairs = area * heads;
    let par_inner = pairs < threads();
    let run = |idx: usize| {
        let (a, h) = (idx / heads, idx % heads);
        let q = &qkv[(h * 3 * d) * n + a * na..];
        let k = &qkv[(h * 3 * d + d) * n + a * na..];
        let vv = &qkv[(h * 3 * d + 2 * d) * n + a * na..];
        let outp = outp;
        // Rows of S in blocks that stay in L2 (a whole 400x400 S is 640 KB).
        let rb = (32 * 1024 / na).clamp(8, na);
        // The GEMMs run in parallel when there are fewer pairs than threads: the scratch is moved
        // out of the thread-local meanwhile (`with_scratch`), so tasks this thread runs while it
        // waits cannot collide with it.
        with_scratch(rb * na, |s| {
            for i0 in (0..na).step_by(rb) {
                let m = rb.min(na - i0);
                // SAFETY: q and k are channel-major maps of this head with row stride n: rows i0..i0+m
                // of q^T (columns of q) and all na columns of k lie inside `qkv`; `s` holds m x na.
                unsafe {
                    // S[i, j] = sum_t q[t, i] * k[t, j]   (q^T k), i in the block, j all tokens of the area
                    gemm_into(m, na, d, s.as_mut_ptr(), na, q.as_ptr().add(i0), 1, n, k.as_ptr(), n, 1, false, par_inner);
                }
                softmax_rows(&mut s[..m * na], na, scale);
                // SAFETY: `dst` addresses d rows (stride n) of m columns of this (area, head)'s output
                // block, written by this task only; `vv` holds d rows of na tokens; `s` m x na.
                unsafe {
                    // O[t, i] = sum_j v[t, j] * S[i, j]
                    let dst = outp.0.add(h * d * n + a * na + i0);
                    gemm_into(d, m, na, dst, n, vv.as_ptr(), n, 1, s.as_ptr(), 1, na, false, par_inner);
                }
            }
        });
    };
    if par_inner {
        (0..pairs).for_each(run);
    } else {
        (0..pairs).into_par_iter().for_each(run);
    }
    (out, v)
}

/// Max pooling, stride 1, "same" padding with -inf (SPPF's nn.MaxPool2d(k, 1, k // 2)).
pub fn maxpool_same(x: &[f32], c: usize, h: usize, w: usize, k: usize) -> Vec<f32> {
    let p = k / 2;
    let mut out = vec![0f32; c * h * w];
    out.par_chunks_mut(h * w).enumerate().for_each(|(ch, o)| {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        // separable: rows then columns
        let mut tmp = vec![f32::NEG_INFINITY; h * w];
        for y in 0..h {
            for xx in 0..w {
                let lo = xx.saturating_sub(p);
                let hi = (xx + p + 1).min(w);
                let mut m = f32::NEG_INFINITY;
                for i in lo..hi {
                    m = m.max(plane[y * w + i]);
                }
                tmp[y * w + xx] = m;
            }
        }
        for y in 0..h {
            let lo = y.saturating_sub(p);
            let hi = (y + p + 1).min(h);
            for xx in 0..w {
                let mut m = f32::NEG_INFINITY;
                for i in lo..hi {
                    m = m.max(tmp[i * w + xx]);
                }
                o[y * w + xx] = m;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((fast_exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }

    /// A task that needs scratch while another holds it on the same thread (rayon runs queued
    /// tasks on a thread that waits inside a parallel GEMM) gets its own buffer: no panic, and the
    /// outer task's data is untouched.
    #[test]
    fn scratch_is_reentrant_on_one_thread() {
        let outer = with_scratch(8, |a| {
            a.fill(1.0);
            let inner = with_scratch(16, |b| {
                b.fill(2.0);
                b.iter().sum::<f32>()
            });
            assert!(a.iter().all(|&v| v == 1.0), "the nested call wrote into the outer buffer");
            inner + a.iter().sum::<f32>()
        });
        assert_eq!(outer, 32.0 + 8.0);
        // The buffer is reused afterwards (no allocation once it is large enough).
        assert_eq!(with_scratch(4, |a| a.len()), 4);
    }

    #[test]
    fn valid_ox_matches_bruteforce() {
        for &(w, k, s) in &[(7usize, 3usize, 1usize), (8, 3, 2), (5, 7, 1), (9, 1, 1), (10, 3, 2)] {
            let p = k / 2;
            let ow = (w + 2 * p - k) / s + 1;
            for kx in 0..k {
                let (lo, hi) = valid_ox(kx, p, s, w, ow);
                for ox in 0..ow {
                    let ix = (ox * s + kx) as isize - p as isize;
                    let valid = ix >= 0 && ix < w as isize;
                    assert_eq!(valid, ox >= lo && ox < hi, "w{w} k{k} s{s} kx{kx} ox{ox}");
                }
            }
        }
    }
}
