//! Per-pixel format conversion to RGB8: the definition every fast path must reproduce bit-exactly.
//!
//! YUV is ITU-R BT.601 *limited range* (Y 16..235, Cb/Cr 16..240), the usual camera/V4L2 default,
//! with the textbook coefficients (1.164, 1.596, -0.391, -0.813, 2.018) in 20-bit fixed point and
//! round-to-nearest, the same arithmetic as OpenCV's `COLOR_YUV2BGR_YUYV` / `COLOR_YUV2BGR_NV12`.
//! Chroma is replicated (nearest) over the 2x1 (YUYV) or 2x2 (NV12) pixels that share it.

use anyhow::{bail, ensure};
use perch_pipeline::{ImageBuf, PixelFormat};

pub(crate) const SHIFT: i32 = 20;
pub(crate) const HALF: i32 = 1 << (SHIFT - 1);
/// 1.164 * 2^20: scale of (Y - 16).
pub(crate) const CY: i32 = 1_220_542;
/// 1.596 * 2^20: V contribution to R.
pub(crate) const CVR: i32 = 1_673_527;
/// -0.391 * 2^20: U contribution to G.
pub(crate) const CUG: i32 = -409_993;
/// -0.813 * 2^20: V contribution to G.
pub(crate) const CVG: i32 = -852_492;
/// 2.018 * 2^20: U contribution to B.
pub(crate) const CUB: i32 = 2_116_026;

/// BT.601 limited-range Y'CbCr to RGB8 (see the module docs).
#[inline(always)]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let yy = (y as i32 - 16).max(0) * CY + HALF;
    let (u, v) = (u as i32 - 128, v as i32 - 128);
    let r = (yy + CVR * v) >> SHIFT;
    let g = (yy + CUG * u + CVG * v) >> SHIFT;
    let b = (yy + CUB * u) >> SHIFT;
    [r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8]
}

/// Check that `src` is a well-formed image this crate can read.
pub fn validate(src: &ImageBuf) -> anyhow::Result<()> {
    ensure!(src.width > 0 && src.height > 0, "preprocess: empty source image ({}x{})", src.width, src.height);
    if src.format == PixelFormat::Yuyv && !src.width.is_multiple_of(2) {
        bail!("preprocess: YUYV needs an even width (2 pixels share one U/V pair), got {}x{}", src.width, src.height);
    }
    let want = src.format.buffer_len(src.width, src.height);
    if src.data.len() != want {
        bail!(
            "preprocess: {:?} {}x{} needs a tightly packed buffer of {} bytes, got {} bytes",
            src.format,
            src.width,
            src.height,
            want,
            src.data.len()
        );
    }
    Ok(())
}

/// The RGB value of source pixel (x, y). Slow (one `match` per pixel): the reference path and tests use it.
#[inline]
pub fn rgb_at(src: &ImageBuf, x: u32, y: u32) -> [u8; 3] {
    let (w, h) = (src.width as usize, src.height as usize);
    let (x, y) = (x as usize, y as usize);
    let d = &src.data;
    match src.format {
        PixelFormat::Rgb8 => {
            let i = (y * w + x) * 3;
            [d[i], d[i + 1], d[i + 2]]
        }
        PixelFormat::Bgr8 => {
            let i = (y * w + x) * 3;
            [d[i + 2], d[i + 1], d[i]]
        }
        PixelFormat::Rgba8 => {
            let i = (y * w + x) * 4;
            [d[i], d[i + 1], d[i + 2]]
        }
        PixelFormat::Gray8 => {
            let g = d[y * w + x];
            [g, g, g]
        }
        PixelFormat::Yuyv => {
            let base = y * w * 2 + (x / 2) * 4;
            yuv_to_rgb(d[base + (x & 1) * 2], d[base + 1], d[base + 3])
        }
        PixelFormat::Nv12 => {
            let stride = 2 * w.div_ceil(2);
            let uv = w * h + (y / 2) * stride + (x / 2) * 2;
            yuv_to_rgb(d[y * w + x], d[uv], d[uv + 1])
        }
    }
}
