//! The fast path, separable and row-cached: each source row the model samples is converted once
//! into planar R, G, B u8 ([`planar`]) and resampled horizontally in exact integers
//! ([`horizontal`]: `vpshufb` + `vpmaddwd` on x86_64 AVX2, `tbl` + `smull` on aarch64); the two rows an output row
//! needs are then blended vertically in f32, the 1/255 and the 2^-14 of the integer weights folded
//! into the two vertical weights, straight into the three CHW planes. Padding is written only when
//! the tensor does not hold it already (`TensorBuf::padded_for`), content once; nothing is
//! allocated after the first frame of a given geometry.
//!
//! The loops are plain Rust, `#[inline(always)]`; on x86_64 `Path::Auto` runs them inside a
//! `#[target_feature(enable = "avx2,fma")]` function (chosen at run time), so LLVM vectorises them
//! for AVX2, plus the hand-written AVX2 kernels. On aarch64 NEON is the baseline, and `Path::Auto`
//! adds the NEON horizontal kernel. `Path::Baseline` runs the same code for the baseline target
//! (x86_64: SSE2) without the hand-written kernels.
//! Every path computes the same integers and the same f32 operations (no FMA contraction), so their
//! tensors are bit-identical.

mod horizontal;
mod planar;

use perch_pipeline::{ImageBuf, Letterbox, PixelFormat, TensorBuf};

use crate::geometry::{taps_into, Tap};
use crate::pixel::validate;
use crate::{check_target, PAD_VALUE};
use horizontal::{simd, HTaps, Simd, ROW_PAD, WEIGHT_BITS};

/// Which compiled variant of the fused kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Path {
    /// The best instruction set detected at run time (AVX2+FMA on x86_64, NEON on aarch64).
    #[default]
    Auto,
    /// The same code built for the baseline target only (x86_64: SSE2; no runtime dispatch).
    Baseline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    format: PixelFormat,
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
}

/// Reusable state of the fused kernel: sampling tables for the current geometry and row scratch.
/// Keep one per thread (the stage owns one); [`crate::letterbox_into`] uses a thread-local one.
#[derive(Default)]
pub struct Preprocessor {
    path: Path,
    key: Option<Key>,
    lb: Option<Letterbox>,
    x_taps: HTaps,
    y_taps: Vec<Tap>,
    /// One source row as planar R, G, B u8, `src_w + ROW_PAD` bytes per plane (padding stays 0).
    planar: Vec<u8>,
    /// Two source rows resampled horizontally (planar, content width per plane), and which rows.
    hrows: [Vec<f32>; 2],
    hrow_of: [Option<u32>; 2],
    /// f16 output only: the f32 tensor before conversion.
    f32_scratch: TensorBuf,
}

/// The instruction set `Path::Auto` runs on this CPU (pulp's run-time dispatch; printed by `perch info`).
pub fn simd_path() -> &'static str {
    match pulp::Arch::new() {
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V3(_) if simd().is_some() => "x86-64-v3 (AVX2+FMA), AVX2 shuffle taps",
        #[cfg(target_arch = "x86_64")]
        pulp::Arch::V3(_) => "x86-64-v3 (AVX2+FMA)",
        #[cfg(target_arch = "aarch64")]
        pulp::Arch::Neon(_) => "neon, NEON tbl taps",
        _ => "scalar",
    }
}

impl Preprocessor {
    pub fn new(path: Path) -> Self {
        Self { path, ..Self::default() }
    }

    /// Letterbox `src` into `out` (`[3, dst_h, dst_w]`, f32 0..1). See [`crate::letterbox_into`].
    pub fn run(&mut self, src: &ImageBuf, dst_w: u32, dst_h: u32, out: &mut TensorBuf) -> anyhow::Result<Letterbox> {
        validate(src)?;
        check_target(dst_w, dst_h)?;
        let lb = self.prepare(src, dst_w, dst_h);
        out.reshape([3, dst_h as usize, dst_w as usize]);
        let pad = out.padded_for != Some(lb);
        match (self.path, simd()) {
            #[cfg(target_arch = "x86_64")]
            (Path::Auto, Some(v3)) => {
                // SAFETY: a `V3` value exists only when x86-64-v3 (AVX2, FMA, ...) was detected at run time.
                unsafe { self.fill_v3(src, &lb, &mut out.data, pad, v3) }
            }
            (Path::Auto, proof) => self.fill(src, &lb, &mut out.data, pad, proof),
            (Path::Baseline, _) => self.fill(src, &lb, &mut out.data, pad, None),
        }
        out.padded_for = Some(lb);
        Ok(lb)
    }

    /// `fill` compiled with AVX2 enabled (it is `inline(always)`, so its loops are vectorised for
    /// AVX2 here), plus the hand-written kernels.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fill_v3(&mut self, src: &ImageBuf, lb: &Letterbox, out: &mut [f32], pad: bool, v3: Simd) {
        self.fill(src, lb, out, pad, Some(v3))
    }

    /// Like [`Preprocessor::run`], but the tensor is f16 (for a CUDA detector that takes half
    /// precision input). `out` is resized to `3 * dst_h * dst_w` and keeps its capacity. Not fused:
    /// the f32 tensor is converted in a second pass (`half`'s slice conversion, F16C when present).
    pub fn run_f16(&mut self, src: &ImageBuf, dst_w: u32, dst_h: u32, out: &mut Vec<half::f16>) -> anyhow::Result<Letterbox> {
        use half::slice::HalfFloatSliceExt;
        let mut tmp = std::mem::take(&mut self.f32_scratch);
        let lb = self.run(src, dst_w, dst_h, &mut tmp);
        if lb.is_ok() {
            out.resize(tmp.data.len(), half::f16::ZERO);
            out.as_mut_slice().convert_from_f32_slice(&tmp.data);
        }
        self.f32_scratch = tmp;
        lb
    }

    fn prepare(&mut self, src: &ImageBuf, dst_w: u32, dst_h: u32) -> Letterbox {
        let key = Key { format: src.format, src_w: src.width, src_h: src.height, dst_w, dst_h };
        if self.key == Some(key) {
            if let Some(lb) = self.lb {
                return lb;
            }
        }
        let lb = Letterbox::new(src.width, src.height, dst_w, dst_h);
        self.x_taps.build(src.width, lb.content_w);
        taps_into(src.height, lb.content_h, &mut self.y_taps);
        self.planar.clear();
        self.planar.resize(3 * (src.width as usize + ROW_PAD), 0);
        for row in &mut self.hrows {
            row.clear();
            row.resize(3 * lb.content_w as usize, 0.0);
        }
        self.hrow_of = [None; 2];
        self.key = Some(key);
        self.lb = Some(lb);
        lb
    }

    #[inline(always)]
    fn fill(&mut self, src: &ImageBuf, lb: &Letterbox, out: &mut [f32], pad: bool, simd: Option<Simd>) {
        let (w, h) = (lb.dst_w as usize, lb.dst_h as usize);
        let (cw, ch) = (lb.content_w as usize, lb.content_h as usize);
        let (left, top) = (lb.pad_left as usize, lb.pad_top as usize);
        let plane = w * h;
        for c in (0..3).filter(|_| pad) {
            let p = &mut out[c * plane..(c + 1) * plane];
            p[..top * w].fill(PAD_VALUE);
            p[(top + ch) * w..].fill(PAD_VALUE);
            for y in top..top + ch {
                p[y * w..y * w + left].fill(PAD_VALUE);
                p[y * w + left + cw..(y + 1) * w].fill(PAD_VALUE);
            }
        }
        let planes = planar::planes(src.format);
        let stride = src.width as usize + ROW_PAD;
        // The horizontal sums are in 1/2^14 of a 0..255 value: fold both scales into the weights.
        let unit = 1.0 / (255.0 * (1u32 << WEIGHT_BITS) as f64);
        let Self { x_taps, y_taps, planar: prow, hrows, hrow_of, .. } = self;
        for (cy, ty) in y_taps.iter().enumerate() {
            let both = ty.f != 0.0 && ty.i1 != ty.i0;
            for y in [Some(ty.i0), both.then_some(ty.i1)].into_iter().flatten() {
                if hrow_of.contains(&Some(y)) {
                    continue;
                }
                // Evict a slot this output row does not need (rows only move down, so the other one).
                let keep = |s: Option<u32>| s == Some(ty.i0) || (both && s == Some(ty.i1));
                let slot = if keep(hrow_of[0]) { 1 } else { 0 };
                planar::row(src, y as usize, prow, stride, simd);
                for c in 0..planes {
                    x_taps.run(&prow[c * stride..(c + 1) * stride], &mut hrows[slot][c * cw..(c + 1) * cw], simd);
                }
                hrow_of[slot] = Some(y);
            }
            let s0 = hrow_of.iter().position(|&s| s == Some(ty.i0)).unwrap_or(0);
            let s1 = if both { hrow_of.iter().position(|&s| s == Some(ty.i1)).unwrap_or(0) } else { s0 };
            let (a, b) = (((1.0 - ty.f as f64) * unit) as f32, (ty.f as f64 * unit) as f32);
            let row = (top + cy) * w + left;
            for c in 0..planes {
                let (h0, h1) = (&hrows[s0][c * cw..(c + 1) * cw], &hrows[s1][c * cw..(c + 1) * cw]);
                vertical(h0, h1, a, b, both, &mut out[c * plane + row..c * plane + row + cw]);
            }
            if planes == 1 {
                out.copy_within(row..row + cw, plane + row);
                out.copy_within(row..row + cw, 2 * plane + row);
            }
        }
    }
}

/// `out[i] = h0[i] a + h1[i] b` (or `h0[i] a` when the row has one tap).
#[inline(always)]
fn vertical(h0: &[f32], h1: &[f32], a: f32, b: f32, both: bool, out: &mut [f32]) {
    if both {
        for ((o, &x), &y) in out.iter_mut().zip(h0).zip(h1) {
            *o = x * a + y * b;
        }
    } else {
        for (o, &x) in out.iter_mut().zip(h0) {
            *o = x * a;
        }
    }
}
