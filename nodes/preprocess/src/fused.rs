//! The fast path: one pass per model row — vertical blend of two source rows (u8 → f32, with the
//! 1/255 normalisation folded into the weights), then horizontal taps per channel written straight
//! into the three CHW planes. Padding is written once, content once; nothing is allocated after the
//! first frame of a given geometry.
//!
//! The loops are plain Rust, `#[inline(always)]`, run inside `pulp::Arch::dispatch`, which compiles
//! them a second time with AVX2+FMA (x86_64, chosen at run time) or NEON (aarch64) enabled, so LLVM
//! vectorises them for the CPU at hand; `Path::Baseline` runs the same code without that dispatch.
//! YUV rows are converted to RGB8 first (bit-exact with [`crate::pixel::yuv_to_rgb`]) and cached,
//! so a source row shared by two model rows is converted once.

use perch_pipeline::{ImageBuf, Letterbox, PixelFormat, TensorBuf};

use crate::geometry::{taps_into, Tap};
use crate::pixel::{validate, CUB, CUG, CVG, CVR, CY, HALF, SHIFT};
use crate::{check_target, PAD_VALUE};

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
    /// Per channel, the offsets into the blended row of the left/right neighbour of each model column.
    x_i0: [Vec<u32>; 3],
    x_i1: [Vec<u32>; 3],
    x_f: Vec<f32>,
    y_taps: Vec<Tap>,
    /// One source row blended vertically, interleaved like the source, already scaled by 1/255.
    vrow: Vec<f32>,
    /// YUV only: two source rows converted to RGB8, and which source rows they hold.
    rgb: [Vec<u8>; 2],
    rgb_of: [Option<u32>; 2],
    /// f16 output only: the f32 tensor before conversion.
    f32_scratch: TensorBuf,
    /// Use AVX2 gathers for the horizontal taps (x86_64 `Path::Auto` only; see [`Preprocessor::set_gather`]).
    gather: bool,
}

/// Proof that the CPU has AVX2: a value of this type exists only after run-time detection
/// (pulp's `V3::try_new`), so the gather kernel cannot be reached from safe code without it.
#[cfg(target_arch = "x86_64")]
type GatherToken = pulp::x86::V3;
/// No AVX2 gathers off x86_64: the type has no values.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
enum GatherToken {}

fn gather_token() -> Option<GatherToken> {
    #[cfg(target_arch = "x86_64")]
    {
        pulp::x86::V3::try_new()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Bytes per pixel of the rows the kernel blends, and the offset of R, G, B within a pixel.
fn layout(format: PixelFormat) -> (usize, [usize; 3]) {
    match format {
        PixelFormat::Rgb8 | PixelFormat::Yuyv | PixelFormat::Nv12 => (3, [0, 1, 2]),
        PixelFormat::Bgr8 => (3, [2, 1, 0]),
        PixelFormat::Rgba8 => (4, [0, 1, 2]),
        PixelFormat::Gray8 => (1, [0, 0, 0]),
    }
}

impl Preprocessor {
    pub fn new(path: Path) -> Self {
        Self { path, gather: true, ..Self::default() }
    }

    /// Turn the explicit AVX2 gather for horizontal taps on (default) or off (then LLVM's own
    /// vectorisation of the same loop is used). Results are bit-identical either way.
    pub fn set_gather(&mut self, on: bool) {
        self.gather = on;
    }

    /// Letterbox `src` into `out` (`[3, dst_h, dst_w]`, f32 0..1). See [`crate::letterbox_into`].
    pub fn run(&mut self, src: &ImageBuf, dst_w: u32, dst_h: u32, out: &mut TensorBuf) -> anyhow::Result<Letterbox> {
        validate(src)?;
        check_target(dst_w, dst_h)?;
        let lb = self.prepare(src, dst_w, dst_h);
        out.reshape([3, dst_h as usize, dst_w as usize]);
        match self.path {
            Path::Auto => pulp::Arch::new().dispatch(|| self.fill(src, &lb, &mut out.data)),
            Path::Baseline => self.fill(src, &lb, &mut out.data),
        }
        Ok(lb)
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
        let (bpp, offs) = layout(src.format);
        let mut x_taps = Vec::new();
        taps_into(src.width, lb.content_w, &mut x_taps);
        self.x_f.clear();
        self.x_f.extend(x_taps.iter().map(|t| t.f));
        for c in 0..3 {
            self.x_i0[c].clear();
            self.x_i0[c].extend(x_taps.iter().map(|t| (t.i0 as usize * bpp + offs[c]) as u32));
            self.x_i1[c].clear();
            self.x_i1[c].extend(x_taps.iter().map(|t| (t.i1 as usize * bpp + offs[c]) as u32));
        }
        taps_into(src.height, lb.content_h, &mut self.y_taps);
        self.vrow.clear();
        self.vrow.resize(src.width as usize * bpp, 0.0);
        for row in &mut self.rgb {
            row.clear();
            row.resize(src.width as usize * 3, 0);
        }
        self.rgb_of = [None; 2];
        self.key = Some(key);
        self.lb = Some(lb);
        lb
    }

    #[inline(always)]
    fn fill(&mut self, src: &ImageBuf, lb: &Letterbox, out: &mut [f32]) {
        let (w, h) = (lb.dst_w as usize, lb.dst_h as usize);
        let (cw, ch) = (lb.content_w as usize, lb.content_h as usize);
        let (left, top) = (lb.pad_left as usize, lb.pad_top as usize);
        let plane = w * h;
        for c in 0..3 {
            let p = &mut out[c * plane..(c + 1) * plane];
            p[..top * w].fill(PAD_VALUE);
            p[(top + ch) * w..].fill(PAD_VALUE);
            for y in top..top + ch {
                p[y * w..y * w + left].fill(PAD_VALUE);
                p[y * w + left + cw..(y + 1) * w].fill(PAD_VALUE);
            }
        }
        let (bpp, _) = layout(src.format);
        let stride = src.width as usize * bpp;
        let gray = src.format == PixelFormat::Gray8;
        let gather = if self.path == Path::Auto && self.gather { gather_token() } else { None };
        let Self { x_i0, x_i1, x_f, y_taps, vrow, rgb, rgb_of, .. } = self;
        for (cy, ty) in y_taps.iter().enumerate() {
            let (r0, r1): (&[u8], &[u8]) = match src.format {
                PixelFormat::Yuyv | PixelFormat::Nv12 => {
                    let (a, b) = rgb_rows(src, ty.i0, ty.i1, rgb, rgb_of);
                    (&rgb[a], &rgb[b])
                }
                _ => {
                    let (i0, i1) = (ty.i0 as usize, ty.i1 as usize);
                    (&src.data[i0 * stride..(i0 + 1) * stride], &src.data[i1 * stride..(i1 + 1) * stride])
                }
            };
            vertical(r0, r1, ty.f, vrow);
            let row = (top + cy) * w + left;
            let planes = if gray { 1 } else { 3 };
            for c in 0..planes {
                horizontal(vrow, &x_i0[c], &x_i1[c], x_f, &mut out[c * plane + row..c * plane + row + cw], gather);
            }
            if gray {
                out.copy_within(row..row + cw, plane + row);
                out.copy_within(row..row + cw, 2 * plane + row);
            }
        }
    }
}

/// Make the RGB8 cache hold source rows `y0` and `y1`; returns which slots hold them.
#[inline(always)]
fn rgb_rows(src: &ImageBuf, y0: u32, y1: u32, rgb: &mut [Vec<u8>; 2], rgb_of: &mut [Option<u32>; 2]) -> (usize, usize) {
    let slot_of = |of: &[Option<u32>; 2], y: u32| of.iter().position(|&s| s == Some(y));
    let s0 = match slot_of(rgb_of, y0) {
        Some(s) => s,
        None => {
            // Evict the slot that does not hold y1.
            let s = if rgb_of[0] == Some(y1) { 1 } else { 0 };
            convert_row(src, y0, &mut rgb[s]);
            rgb_of[s] = Some(y0);
            s
        }
    };
    let s1 = match slot_of(rgb_of, y1) {
        Some(s) => s,
        None => {
            let s = 1 - s0;
            convert_row(src, y1, &mut rgb[s]);
            rgb_of[s] = Some(y1);
            s
        }
    };
    (s0, s1)
}

#[inline(always)]
fn yuv_px(y: u8, ruv: i32, guv: i32, buv: i32, o: &mut [u8]) {
    let yy = (y as i32 - 16).max(0) * CY + HALF;
    o[0] = ((yy + ruv) >> SHIFT).clamp(0, 255) as u8;
    o[1] = ((yy + guv) >> SHIFT).clamp(0, 255) as u8;
    o[2] = ((yy + buv) >> SHIFT).clamp(0, 255) as u8;
}

/// One YUYV or NV12 source row to RGB8 (bit-exact with `pixel::yuv_to_rgb`).
#[inline(always)]
fn convert_row(src: &ImageBuf, y: u32, out: &mut [u8]) {
    let (w, h, y) = (src.width as usize, src.height as usize, y as usize);
    match src.format {
        PixelFormat::Yuyv => {
            let row = &src.data[y * w * 2..(y + 1) * w * 2];
            for (p, o) in row.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                let (u, v) = (p[1] as i32 - 128, p[3] as i32 - 128);
                let (ruv, guv, buv) = (CVR * v, CUG * u + CVG * v, CUB * u);
                yuv_px(p[0], ruv, guv, buv, &mut o[..3]);
                yuv_px(p[2], ruv, guv, buv, &mut o[3..]);
            }
        }
        PixelFormat::Nv12 => {
            let ys = &src.data[y * w..(y + 1) * w];
            let stride = 2 * w.div_ceil(2);
            let uv = &src.data[w * h + (y / 2) * stride..w * h + (y / 2 + 1) * stride];
            for ((yp, c), o) in ys.chunks(2).zip(uv.chunks_exact(2)).zip(out.chunks_mut(6)) {
                let (u, v) = (c[0] as i32 - 128, c[1] as i32 - 128);
                let (ruv, guv, buv) = (CVR * v, CUG * u + CVG * v, CUB * u);
                for (&yv, o) in yp.iter().zip(o.chunks_exact_mut(3)) {
                    yuv_px(yv, ruv, guv, buv, o);
                }
            }
        }
        _ => unreachable!("convert_row is only called for YUV formats"),
    }
}

/// `out[i] = (r0[i] (1 - fy) + r1[i] fy) / 255`.
#[inline(always)]
fn vertical(r0: &[u8], r1: &[u8], fy: f32, out: &mut [f32]) {
    let (w0, w1) = ((1.0 - fy) * (1.0 / 255.0), fy * (1.0 / 255.0));
    if fy == 0.0 {
        for (o, &a) in out.iter_mut().zip(r0) {
            *o = a as f32 * w0;
        }
    } else {
        for ((o, &a), &b) in out.iter_mut().zip(r0).zip(r1) {
            *o = a as f32 * w0 + b as f32 * w1;
        }
    }
}

/// `out[d] = v[i0[d]] + f[d] (v[i1[d]] - v[i0[d]])`, with AVX2 gathers when given the proof of AVX2.
#[inline(always)]
fn horizontal(v: &[f32], i0: &[u32], i1: &[u32], f: &[f32], out: &mut [f32], gather: Option<GatherToken>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = gather {
        x86::horizontal_avx2(avx2, v, i0, i1, f, out);
        return;
    }
    let _ = gather;
    horizontal_portable(v, i0, i1, f, out)
}

#[inline(always)]
fn horizontal_portable(v: &[f32], i0: &[u32], i1: &[u32], f: &[f32], out: &mut [f32]) {
    let n = out.len().min(i0.len()).min(i1.len()).min(f.len());
    let max = v.len();
    for d in 0..n {
        let (a, b) = (i0[d] as usize, i1[d] as usize);
        // The tables are built from in-range taps; clamping keeps this safe code branch-free.
        let a = v[a.min(max - 1)];
        let b = v[b.min(max - 1)];
        out[d] = a + f[d] * (b - a);
    }
}

/// The only hand-written intrinsics: an 8-wide gather of the horizontal taps. Same arithmetic as
/// `horizontal_portable` (no FMA), so results are bit-identical.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `_avx2` is the proof that the CPU has AVX2 (pulp's `V3` is only constructed after detection).
    #[inline(always)]
    pub(super) fn horizontal_avx2(_avx2: pulp::x86::V3, v: &[f32], i0: &[u32], i1: &[u32], f: &[f32], out: &mut [f32]) {
        let n = out.len();
        assert!(i0.len() >= n && i1.len() >= n && f.len() >= n && !v.is_empty());
        let max = v.len() - 1;
        // SAFETY: a `V3` exists only when AVX2 (and the rest of x86-64-v3) was detected at run time,
        // so the target feature holds; every index is clamped inside the kernel before the gathers.
        unsafe { kernel(v, i0, i1, f, out, max) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn kernel(v: &[f32], i0: &[u32], i1: &[u32], f: &[f32], out: &mut [f32], max: usize) {
        let n = out.len();
        let mut d = 0;
        let limit = _mm256_set1_epi32(max as i32);
        while d + 8 <= n {
            // SAFETY: d + 8 <= n <= len of every slice; indices are clamped to v.len() - 1.
            unsafe {
                let a = _mm256_min_epu32(_mm256_loadu_si256(i0.as_ptr().add(d) as *const __m256i), limit);
                let b = _mm256_min_epu32(_mm256_loadu_si256(i1.as_ptr().add(d) as *const __m256i), limit);
                let va = _mm256_i32gather_ps::<4>(v.as_ptr(), a);
                let vb = _mm256_i32gather_ps::<4>(v.as_ptr(), b);
                let w = _mm256_loadu_ps(f.as_ptr().add(d));
                let r = _mm256_add_ps(va, _mm256_mul_ps(w, _mm256_sub_ps(vb, va)));
                _mm256_storeu_ps(out.as_mut_ptr().add(d), r);
            }
            d += 8;
        }
        for d in d..n {
            let (a, b) = (v[(i0[d] as usize).min(max)], v[(i1[d] as usize).min(max)]);
            out[d] = a + f[d] * (b - a);
        }
    }
}
