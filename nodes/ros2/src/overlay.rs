//! The optional `image/compressed` payload: the source image with the boxes drawn, as JPEG.

use image::codecs::jpeg::JpegEncoder;
use perch_pipeline::{Detection, ImageBuf, PixelFormat};

/// Reusable buffers for JPEG overlays.
#[derive(Debug, Default)]
pub struct Overlay {
    rgb: Vec<u8>,
}

impl Overlay {
    /// Encode `img` with `dets` drawn into `jpeg` (cleared first). `None` when the pixel format is
    /// not supported for overlays (YUYV, NV12): the caller counts it.
    pub fn encode(&mut self, img: &ImageBuf, dets: &[Detection], quality: u8, jpeg: &mut Vec<u8>) -> anyhow::Result<Option<()>> {
        let (w, h) = (img.width as usize, img.height as usize);
        anyhow::ensure!(w > 0 && h > 0, "image is empty ({}x{})", img.width, img.height);
        anyhow::ensure!(
            img.data.len() >= img.format.buffer_len(img.width, img.height),
            "image buffer holds {} bytes, {}x{} {:?} needs {}",
            img.data.len(),
            img.width,
            img.height,
            img.format,
            img.format.buffer_len(img.width, img.height)
        );
        self.rgb.resize(w * h * 3, 0);
        match img.format {
            PixelFormat::Rgb8 => self.rgb.copy_from_slice(&img.data[..w * h * 3]),
            PixelFormat::Bgr8 => {
                for (o, i) in self.rgb.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
                    o.copy_from_slice(&[i[2], i[1], i[0]]);
                }
            }
            PixelFormat::Rgba8 => {
                for (o, i) in self.rgb.chunks_exact_mut(3).zip(img.data.chunks_exact(4)) {
                    o.copy_from_slice(&i[..3]);
                }
            }
            PixelFormat::Gray8 => {
                for (o, &g) in self.rgb.chunks_exact_mut(3).zip(&img.data[..w * h]) {
                    o.copy_from_slice(&[g, g, g]);
                }
            }
            PixelFormat::Yuyv | PixelFormat::Nv12 => return Ok(None),
        }
        for d in dets {
            draw_box(&mut self.rgb, w, h, d, palette(d.class_id));
        }
        jpeg.clear();
        JpegEncoder::new_with_quality(&mut *jpeg, quality.clamp(1, 100)).encode(
            &self.rgb,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(Some(()))
    }
}

fn palette(class_id: u32) -> [u8; 3] {
    const COLORS: [[u8; 3]; 6] =
        [[255, 56, 56], [56, 255, 56], [56, 120, 255], [255, 210, 40], [255, 56, 255], [40, 230, 230]];
    COLORS[class_id as usize % COLORS.len()]
}

/// A 2-pixel rectangle outline, clipped to the image.
fn draw_box(rgb: &mut [u8], w: usize, h: usize, d: &Detection, color: [u8; 3]) {
    let clamp = |v: f32, hi: usize| (v.round().max(0.0) as usize).min(hi.saturating_sub(1));
    let (x1, x2) = (clamp(d.bbox.x1, w), clamp(d.bbox.x2, w));
    let (y1, y2) = (clamp(d.bbox.y1, h), clamp(d.bbox.y2, h));
    if x2 < x1 || y2 < y1 {
        return;
    }
    let mut put = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        rgb[i..i + 3].copy_from_slice(&color);
    };
    for t in 0..2 {
        for x in x1..=x2 {
            put(x, (y1 + t).min(y2));
            put(x, y2.saturating_sub(t).max(y1));
        }
        for y in y1..=y2 {
            put((x1 + t).min(x2), y);
            put(x2.saturating_sub(t).max(x1), y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::BBox;

    #[test]
    fn jpeg_decodes_with_the_box_drawn() {
        let img = ImageBuf { format: PixelFormat::Bgr8, width: 64, height: 48, data: vec![0; 64 * 48 * 3] };
        let det = Detection::new(BBox { x1: 8.0, y1: 8.0, x2: 40.0, y2: 30.0 }, 0.9, 2);
        let mut jpeg = Vec::new();
        Overlay::default().encode(&img, &[det], 95, &mut jpeg).unwrap().unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (64, 48));
        let edge = back.get_pixel(20, 8).0; // top edge, class 2 colour (blue-ish)
        let inside = back.get_pixel(20, 20).0;
        assert!(edge[2] > 180 && edge[0] < 120, "edge {edge:?}");
        assert!(inside.iter().all(|&c| c < 40), "inside {inside:?}");
    }

    #[test]
    fn unsupported_formats_are_reported_not_guessed() {
        let img = ImageBuf { format: PixelFormat::Yuyv, width: 4, height: 2, data: vec![0; 16] };
        assert!(Overlay::default().encode(&img, &[], 80, &mut Vec::new()).unwrap().is_none());
    }
}
