//! The geometry of an aspect-preserving resize with centred padding (Ultralytics' letterbox),
//! and the exact mapping of points and boxes between model space and source pixels.

use serde::{Deserialize, Serialize};

use crate::frame::BBox;

/// Largest model input side perch accepts (guards against configs that would allocate gigabytes).
pub const MAX_IMGSZ: u32 = 4096;

/// The one check of a model input side: a multiple of 32 (the detector's stride) in 32..=MAX_IMGSZ.
/// `key` names where the value came from (`detect.imgsz`, `--imgsz`). The detector and
/// preprocessing both use it: `detect.imgsz` sizes both.
pub fn validate_imgsz(imgsz: u32, key: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        imgsz >= 32 && imgsz % 32 == 0 && imgsz <= MAX_IMGSZ,
        "{key} = {imgsz}: must be a multiple of 32 (the network's stride) between 32 and {MAX_IMGSZ}, e.g. 320 or 640"
    );
    Ok(())
}

/// How a `src_w x src_h` image was placed into a `dst_w x dst_h` model input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    /// Source pixels are multiplied by this to get model pixels.
    pub scale: f32,
    /// Width and height of the resized content inside the model input.
    pub content_w: u32,
    pub content_h: u32,
    /// Padding columns on the left / rows on top.
    pub pad_left: u32,
    pub pad_top: u32,
}

impl Default for Letterbox {
    fn default() -> Self {
        Self::new(1, 1, 1, 1)
    }
}

impl Letterbox {
    /// Ultralytics' `LetterBox(auto=False, center=True)`: scale by the smaller ratio, round the
    /// content size, split the padding with `round(d/2 - 0.1)` on the left/top.
    ///
    /// Computed in f64 with ties-to-even rounding, like Python's `round` on the same float64 values,
    /// so the geometry is identical to Ultralytics' for every size (e.g. a content side of exactly
    /// 2.5 px rounds to 2). The content is at least 1 px on each side.
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Self {
        let r = (dst_w as f64 / src_w as f64).min(dst_h as f64 / src_h as f64);
        let content_w = ((src_w as f64 * r).round_ties_even() as u32).clamp(1, dst_w.max(1));
        let content_h = ((src_h as f64 * r).round_ties_even() as u32).clamp(1, dst_h.max(1));
        let dw = dst_w.saturating_sub(content_w) as f64 / 2.0;
        let dh = dst_h.saturating_sub(content_h) as f64 / 2.0;
        let pad_left = (dw - 0.1).round_ties_even().max(0.0) as u32;
        let pad_top = (dh - 0.1).round_ties_even().max(0.0) as u32;
        Self { src_w, src_h, dst_w, dst_h, scale: r as f32, content_w, content_h, pad_left, pad_top }
    }

    /// A model-space point to source pixels.
    ///
    /// Uses the exact per-axis ratios of the resize that was performed (`src / content`, the
    /// ratios `cv2.resize` samples with), in f64, so the content rectangle's edges map exactly to
    /// the source edges. Ultralytics' `scale_boxes` divides by `scale` on both axes instead, which
    /// differs from this by less than half a source pixel.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = self.src_w as f64 / self.content_w.max(1) as f64;
        let sy = self.src_h as f64 / self.content_h.max(1) as f64;
        (((x as f64 - self.pad_left as f64) * sx) as f32, ((y as f64 - self.pad_top as f64) * sy) as f32)
    }

    /// A source-pixel point to model space (the inverse of [`Letterbox::to_source`]).
    pub fn to_model(&self, x: f32, y: f32) -> (f32, f32) {
        let mx = self.content_w as f64 / self.src_w.max(1) as f64;
        let my = self.content_h as f64 / self.src_h.max(1) as f64;
        ((x as f64 * mx + self.pad_left as f64) as f32, (y as f64 * my + self.pad_top as f64) as f32)
    }

    /// A model-space box to source pixels, clipped to the source image (as Ultralytics' `scale_boxes`).
    pub fn box_to_source(&self, b: BBox) -> BBox {
        let (x1, y1) = self.to_source(b.x1, b.y1);
        let (x2, y2) = self.to_source(b.x2, b.y2);
        let (w, h) = (self.src_w as f32, self.src_h as f32);
        BBox { x1: x1.clamp(0.0, w), y1: y1.clamp(0.0, h), x2: x2.clamp(0.0, w), y2: y2.clamp(0.0, h) }
    }

    /// A source box to model space (no clipping).
    pub fn box_to_model(&self, b: BBox) -> BBox {
        let (x1, y1) = self.to_model(b.x1, b.y1);
        let (x2, y2) = self.to_model(b.x2, b.y2);
        BBox { x1, y1, x2, y2 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtest_into_640_matches_ultralytics_geometry() {
        // 768x576 -> 640: scale 0.8333, content 640x480, pad 80 rows top (Ultralytics: top=80, bottom=80).
        let lb = Letterbox::new(768, 576, 640, 640);
        assert_eq!((lb.content_w, lb.content_h, lb.pad_left, lb.pad_top), (640, 480, 0, 80));
        let b = BBox { x1: 10.0, y1: 20.0, x2: 300.5, y2: 400.25 };
        let back = lb.box_to_source(lb.box_to_model(b));
        assert!((back.x1 - b.x1).abs() < 1e-4 && (back.y2 - b.y2).abs() < 1e-3);
    }
}
