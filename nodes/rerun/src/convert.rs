//! Source pixels → what Rerun logs: a JPEG (encoded here) or a raw `Image` in the source layout.

use anyhow::{ensure, Context};
use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use perch_pipeline::frame::{ImageBuf, PixelFormat};
use rerun::datatypes::{ChannelDatatype, ColorModel};

/// Reusable buffers of the logging thread, so steady-state encoding does not grow the heap.
#[derive(Default)]
pub struct Encoder {
    rgb: Vec<u8>,
}

impl Encoder {
    /// JPEG-encode `img` at `quality` into a fresh buffer (handed over to Rerun, which keeps it).
    pub fn jpeg(&mut self, img: &ImageBuf, quality: u8) -> anyhow::Result<Vec<u8>> {
        check_len(img)?;
        let (w, h) = (img.width, img.height);
        let (pixels, color): (&[u8], ExtendedColorType) = match img.format {
            PixelFormat::Rgb8 => (&img.data, ExtendedColorType::Rgb8),
            PixelFormat::Gray8 => (&img.data, ExtendedColorType::L8),
            _ => {
                to_rgb(img, &mut self.rgb);
                (&self.rgb, ExtendedColorType::Rgb8)
            }
        };
        // A 768x576 frame at quality 75 is ~40-60 kB; start there to avoid regrowth.
        let mut out = Vec::with_capacity((w as usize * h as usize) / 8);
        JpegEncoder::new_with_quality(&mut out, quality)
            .encode(pixels, w, h, color)
            .with_context(|| format!("JPEG-encoding a {w}x{h} {:?} frame", img.format))?;
        Ok(out)
    }
}

/// The image in its own pixel layout, for `image = "raw"`.
pub fn raw_image(img: &ImageBuf) -> anyhow::Result<rerun::Image> {
    check_len(img)?;
    let res = [img.width, img.height];
    let bytes = img.data.clone();
    let u8 = ChannelDatatype::U8;
    Ok(match img.format {
        PixelFormat::Rgb8 => rerun::Image::from_color_model_and_bytes(bytes, res, ColorModel::RGB, u8),
        PixelFormat::Bgr8 => rerun::Image::from_color_model_and_bytes(bytes, res, ColorModel::BGR, u8),
        PixelFormat::Rgba8 => rerun::Image::from_color_model_and_bytes(bytes, res, ColorModel::RGBA, u8),
        PixelFormat::Gray8 => rerun::Image::from_color_model_and_bytes(bytes, res, ColorModel::L, u8),
        PixelFormat::Yuyv => rerun::Image::from_pixel_format(res, rerun::PixelFormat::YUY2, bytes),
        PixelFormat::Nv12 => rerun::Image::from_pixel_format(res, rerun::PixelFormat::NV12, bytes),
    })
}

fn check_len(img: &ImageBuf) -> anyhow::Result<()> {
    let want = img.format.buffer_len(img.width, img.height);
    ensure!(
        img.width > 0 && img.height > 0 && img.data.len() == want,
        "image buffer holds {} bytes, a {}x{} {:?} frame needs {want}",
        img.data.len(),
        img.width,
        img.height,
        img.format
    );
    Ok(())
}

/// Convert any supported layout to packed RGB8 into `out` (resized, allocation kept).
pub fn to_rgb(img: &ImageBuf, out: &mut Vec<u8>) {
    let (w, h) = (img.width as usize, img.height as usize);
    out.resize(w * h * 3, 0);
    let src = &img.data;
    match img.format {
        PixelFormat::Rgb8 => out.copy_from_slice(&src[..w * h * 3]),
        PixelFormat::Bgr8 => {
            for (o, i) in out.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                o.copy_from_slice(&[i[2], i[1], i[0]]);
            }
        }
        PixelFormat::Rgba8 => {
            for (o, i) in out.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                o.copy_from_slice(&i[..3]);
            }
        }
        PixelFormat::Gray8 => {
            for (o, &g) in out.chunks_exact_mut(3).zip(src.iter()) {
                o.copy_from_slice(&[g, g, g]);
            }
        }
        PixelFormat::Yuyv if w % 2 == 0 => {
            // Each 4 bytes Y0 U Y1 V cover two pixels of one row.
            for (o, i) in out.chunks_exact_mut(6).zip(src.chunks_exact(4)) {
                o[..3].copy_from_slice(&yuv_to_rgb(i[0], i[1], i[3]));
                o[3..].copy_from_slice(&yuv_to_rgb(i[2], i[1], i[3]));
            }
        }
        // Odd widths (rare): pixel i's luma is byte 2i, its pair's U/V sit in the word around it.
        PixelFormat::Yuyv => yuyv_odd(src, w, h, out),
        PixelFormat::Nv12 => {
            let uv = &src[w * h..];
            let uv_stride = 2 * w.div_ceil(2);
            for y in 0..h {
                for x in 0..w {
                    let c = (y / 2) * uv_stride + (x / 2) * 2;
                    let rgb = yuv_to_rgb(src[y * w + x], uv[c], uv[c + 1]);
                    out[(y * w + x) * 3..][..3].copy_from_slice(&rgb);
                }
            }
        }
    }
}

fn yuyv_odd(src: &[u8], w: usize, h: usize, out: &mut [u8]) {
    for i in 0..w * h {
        let pair = (i / 2) * 4;
        let yv = src[2 * i];
        let (u, v) = (src.get(pair + 1).copied().unwrap_or(128), src.get(pair + 3).copied().unwrap_or(128));
        out[i * 3..][..3].copy_from_slice(&yuv_to_rgb(yv, u, v));
    }
}

/// BT.601 limited range, what USB and CSI cameras deliver.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clamp(c + 409 * e), clamp(c - 100 * d - 208 * e), clamp(c + 516 * d)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(format: PixelFormat, w: u32, h: u32, data: Vec<u8>) -> ImageBuf {
        ImageBuf { format, width: w, height: h, data }
    }

    #[test]
    fn bgr_rgba_gray_to_rgb() {
        let mut out = Vec::new();
        to_rgb(&buf(PixelFormat::Bgr8, 2, 1, vec![1, 2, 3, 4, 5, 6]), &mut out);
        assert_eq!(out, [3, 2, 1, 6, 5, 4]);
        to_rgb(&buf(PixelFormat::Rgba8, 2, 1, vec![1, 2, 3, 9, 4, 5, 6, 9]), &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        to_rgb(&buf(PixelFormat::Gray8, 2, 1, vec![7, 8]), &mut out);
        assert_eq!(out, [7, 7, 7, 8, 8, 8]);
    }

    #[test]
    fn yuv_reference_colours() {
        // BT.601 limited range: black, white, and pure red (Y=81, U=90, V=240).
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let [r, g, b] = yuv_to_rgb(81, 90, 240);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
        let mut out = Vec::new();
        to_rgb(&buf(PixelFormat::Yuyv, 2, 1, vec![16, 128, 235, 128]), &mut out);
        assert_eq!(out, [0, 0, 0, 255, 255, 255]);
        // NV12 2x2: four lumas, one UV pair.
        to_rgb(&buf(PixelFormat::Nv12, 2, 2, vec![16, 235, 235, 16, 128, 128]), &mut out);
        assert_eq!(out, [0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn jpeg_roundtrip_keeps_size_and_colour() {
        let (w, h) = (32u32, 16u32);
        let data: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 40, 30]).collect();
        let jpg = Encoder::default().jpeg(&buf(PixelFormat::Rgb8, w, h, data), 90).unwrap();
        let back = image::load_from_memory(&jpg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (w, h));
        let p = back.get_pixel(5, 5).0;
        assert!(p.iter().zip([200u8, 40, 30]).all(|(a, b)| a.abs_diff(b) <= 6), "{p:?}");
    }

    #[test]
    fn short_buffer_is_an_error_not_a_panic() {
        let err = Encoder::default().jpeg(&buf(PixelFormat::Rgb8, 4, 4, vec![0; 10]), 75).unwrap_err();
        assert!(err.to_string().contains("needs 48"), "{err}");
    }
}
