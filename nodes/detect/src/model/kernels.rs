//! Hand-written CPU kernels for the f32 path: the im2col strips and the bias/SiLU/residual
//! epilogue that perch's GEMM ([`super::sgemm`]) runs inside its micro-kernel loop, a direct
//! depthwise conv, max pooling, the DFL decode, and the entry to the area attention (whose
//! products run on the same micro-kernels).
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
                if $crate::model::kernels::has_avx2_fma() {
                    // SAFETY: the features were detected just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// Whether the AVX2+FMA instantiations run (the test every `dispatch_avx2!` function makes).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The code paths the f32 network runs on this CPU (printed by `perch info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelPaths {
    /// The fused conv/SiLU/depthwise/attention kernels of this module.
    pub fused: &'static str,
    /// The GEMM of the convs and the attention: perch's own driver and micro-kernel
    /// ([`super::sgemm`]).
    pub gemm: &'static str,
}

pub fn kernel_paths() -> KernelPaths {
    let fused = if has_avx2_fma() {
        "avx2+fma"
    } else if cfg!(target_arch = "aarch64") {
        "generic (compiled for NEON)"
    } else {
        "generic (baseline SIMD of the target)"
    };
    KernelPaths { fused, gemm: super::sgemm::Isa::detect().name() }
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

/// `dst = act(acc + bias) (+ residual)`: the GEMM's epilogue on one tile row while it is in L1.
/// `inline(always)`: it compiles inside the GEMM driver's ISA.
#[inline(always)]
pub(crate) fn epilogue_into(acc: &[f32], bias: f32, act: Act, residual: Option<&[f32]>, dst: &mut [f32]) {
    match (act, residual) {
        (Act::Silu, None) => dst.iter_mut().zip(acc).for_each(|(d, a)| *d = silu(*a + bias)),
        (Act::Silu, Some(r)) => dst.iter_mut().zip(acc).zip(r).for_each(|((d, a), r)| *d = silu(*a + bias) + *r),
        (Act::None, None) => dst.iter_mut().zip(acc).for_each(|(d, a)| *d = *a + bias),
        (Act::None, Some(r)) => dst.iter_mut().zip(acc).zip(r).for_each(|((d, a), r)| *d = *a + bias + *r),
    }
}

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

/// `dst.copy_from_slice(src)` for the short runs of an im2col strip, inline: a `memmove` call
/// per run of a few dozen floats cost more than the copy itself.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let src = &src[..n];
    let full = n / 8 * 8;
    for (d8, s8) in dst[..full].chunks_exact_mut(8).zip(src[..full].chunks_exact(8)) {
        let d8: &mut [f32; 8] = d8.try_into().expect("chunks of 8");
        *d8 = s8.try_into().expect("chunks of 8");
    }
    // At most 7 left: a 4-wide copy, then at most 3 single ones, too few for the compiler to
    // turn back into a `memmove` call.
    let mut i = full;
    if n - i >= 4 {
        let d4: &mut [f32; 4] = (&mut dst[i..i + 4]).try_into().expect("4");
        *d4 = src[i..i + 4].try_into().expect("4");
        i += 4;
    }
    if i < n {
        dst[i] = src[i];
    }
    if i + 1 < n {
        dst[i + 1] = src[i + 1];
    }
    if i + 2 < n {
        dst[i + 2] = src[i + 2];
    }
}

/// `dst.fill(0.0)` for short runs, inline (see [`copy_short`]).
#[inline(always)]
pub(crate) fn zero_short(dst: &mut [f32]) {
    let n = dst.len();
    let full = n / 8 * 8;
    for d8 in dst[..full].chunks_exact_mut(8) {
        let d8: &mut [f32; 8] = d8.try_into().expect("chunks of 8");
        *d8 = [0.0; 8];
    }
    let mut i = full;
    if n - i >= 4 {
        let d4: &mut [f32; 4] = (&mut dst[i..i + 4]).try_into().expect("4");
        *d4 = [0.0; 4];
        i += 4;
    }
    if i < n {
        dst[i] = 0.0;
    }
    if i + 1 < n {
        dst[i + 1] = 0.0;
    }
    if i + 2 < n {
        dst[i + 2] = 0.0;
    }
}

/// im2col of output columns [j0, j1) and input `channels` into `col` as `channels.len() * k * k`
/// rows of `ld` values (zeros past `j1 - j0`): with `ld` = the GEMM's strip width this is the micro-kernel's layout, so the
/// GEMM reads it without packing it again. `inline(always)`: it compiles inside the caller's ISA.
#[inline(always)]
pub(crate) fn im2col_strip(x: &[f32], g: &ConvGeom, j0: usize, j1: usize, ld: usize, channels: std::ops::Range<usize>, col: &mut [f32]) {
    let (_, ow) = g.out_hw();
    let tw = j1 - j0;
    let (k, s, p) = (g.k, g.stride, g.pad);
    let c0 = channels.start;
    for c in channels {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            for kx in 0..k {
                let r = ((c - c0) * k + ky) * k + kx;
                let (dst, pad) = col[r * ld..(r + 1) * ld].split_at_mut(tw);
                zero_short(pad);
                let (xlo, xhi) = valid_ox(kx, p, s, g.w, ow);
                let mut j = j0;
                while j < j1 {
                    let oy = j / ow;
                    let ox0 = j - oy * ow;
                    let ox1 = (ox0 + (j1 - j)).min(ow);
                    let seg = &mut dst[j - j0..j - j0 + (ox1 - ox0)];
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= g.h as isize {
                        zero_short(seg);
                    } else {
                        let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                        let a = xlo.clamp(ox0, ox1);
                        let b = xhi.clamp(a, ox1);
                        zero_short(&mut seg[..a - ox0]);
                        zero_short(&mut seg[b - ox0..]);
                        if s == 1 {
                            let ix0 = a + kx - p;
                            copy_short(&mut seg[a - ox0..b - ox0], &src[ix0..ix0 + (b - a)]);
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
}

thread_local! {
    static COL: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch buffer, at least `len` long, moved out of the thread-local (give it back
/// with [`scratch_put`]), not borrowed: if the holder waits inside rayon and this thread meanwhile
/// runs another task that needs scratch, that task gets a fresh buffer instead of finding this one
/// borrowed (a `RefCell` would panic there). Not a closure-taking `with_scratch`: the callers are
/// compiled for another ISA, and a closure would be a function of its own, compiled for the
/// baseline target.
pub(crate) fn scratch_take(len: usize) -> Vec<f32> {
    let mut buf = COL.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    buf
}

pub(crate) fn scratch_put(buf: Vec<f32>) {
    COL.set(buf);
}

/// Raw pointer that may cross rayon tasks; each task writes a disjoint column range.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the pointer targets an output buffer that outlives the parallel loop using it, and every
// task writes only its own, disjoint range of it (stated at each use), so sharing it is race-free.
unsafe impl Send for SendPtr {}
// SAFETY: as for Send: tasks only write disjoint ranges through copies of the pointer.
unsafe impl Sync for SendPtr {}

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
    let mut out = vec![0f32; c * n];
    let mut v = vec![0f32; c * n];
    for h in 0..heads {
        let src = &qkv[(h * 3 * d + 2 * d) * n..(h * 3 * d + 3 * d) * n];
        v[h * d * n..(h + 1) * d * n].copy_from_slice(src);
    }
    super::sgemm::area_attention_into(qkv, c, n, heads, area, &mut out);
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
    /// tasks on a thread that waits) gets its own buffer: no panic, and the outer task's data is
    /// untouched.
    #[test]
    fn scratch_is_reentrant_on_one_thread() {
        let mut outer = scratch_take(8);
        outer[..8].fill(1.0);
        let mut inner = scratch_take(16);
        inner[..16].fill(2.0);
        assert!(outer[..8].iter().all(|&v| v == 1.0), "the nested take wrote into the outer buffer");
        scratch_put(inner);
        let cap = outer.capacity();
        scratch_put(outer);
        // The buffer put back last is reused (no allocation once it is large enough).
        let again = scratch_take(4);
        assert!(again.len() >= 8 && again.capacity() == cap);
        scratch_put(again);
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
