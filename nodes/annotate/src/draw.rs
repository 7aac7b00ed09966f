//! Drawing detections on an RGB8 image: a box outline (solid for a fresh detection, dashed for a
//! tracker prediction), and a filled label above it with the class, score and track id.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use perch_pipeline::Detection;

/// DejaVu Sans Bold, printable ASCII only (see `fonts/LICENSE`).
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold-ascii.ttf");

/// Box colours, indexed by track id when the frame is tracked, else by class id. Chosen to stay
/// distinct from each other and readable on typical outdoor footage.
const PALETTE: [[u8; 3]; 16] = [
    [255, 56, 56],
    [255, 157, 51],
    [255, 221, 0],
    [134, 219, 61],
    [26, 147, 52],
    [0, 212, 187],
    [44, 153, 168],
    [0, 194, 255],
    [52, 69, 147],
    [100, 115, 255],
    [0, 24, 236],
    [132, 56, 255],
    [203, 56, 255],
    [255, 149, 200],
    [255, 55, 199],
    [146, 204, 23],
];

/// An RGB8 image to draw on: `data` is `width * height * 3` bytes, row-major.
pub struct Canvas<'a> {
    pub data: &'a mut [u8],
    pub width: u32,
    pub height: u32,
}

impl Canvas<'_> {
    fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let a = alpha.min(1.0);
        for (c, v) in rgb.iter().enumerate() {
            let old = self.data[i + c] as f32;
            self.data[i + c] = (old + (*v as f32 - old) * a).round() as u8;
        }
    }

    fn fill(&mut self, x1: i64, y1: i64, x2: i64, y2: i64, rgb: [u8; 3]) {
        let (x1, x2) = (x1.max(0), x2.min(self.width as i64));
        let (y1, y2) = (y1.max(0), y2.min(self.height as i64));
        for y in y1..y2 {
            let row = y as usize * self.width as usize;
            for x in x1..x2 {
                let i = (row + x as usize) * 3;
                self.data[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }
}

/// Draws boxes and labels. Cheap to build (the font is parsed from bytes in the binary).
pub struct Annotator {
    font: FontRef<'static>,
}

impl Default for Annotator {
    fn default() -> Self {
        Self::new()
    }
}

impl Annotator {
    pub fn new() -> Self {
        // The bundled font is checked by a unit test; parsing it cannot fail at run time.
        let font = FontRef::try_from_slice(FONT).expect("the bundled font parses");
        Self { font }
    }

    /// The colour a detection is drawn in: by track id when tracked, else by class.
    pub fn colour(d: &Detection) -> [u8; 3] {
        let key = d.track_id.unwrap_or(d.class_id as u64);
        PALETTE[(key % PALETTE.len() as u64) as usize]
    }

    /// `"#3 person 0.87"`; a predicted (coasted) box says `pred` instead of a score it does not have.
    pub fn label(d: &Detection, class_names: &[String]) -> String {
        let class = class_names.get(d.class_id as usize).cloned().unwrap_or_else(|| d.class_id.to_string());
        let id = d.track_id.map(|t| format!("#{t} ")).unwrap_or_default();
        if d.predicted {
            format!("{id}{class} pred")
        } else {
            format!("{id}{class} {:.2}", d.score)
        }
    }

    /// Line width and label height for an image of this size (thicker on bigger images).
    fn sizes(width: u32, height: u32) -> (i64, f32) {
        let lw = (((width + height) as f32 / 2.0 * 0.003).round() as i64).max(2);
        let text_px = (lw as f32 * 6.0).max(12.0);
        (lw, text_px)
    }

    /// Draw every detection: outline, then label (labels on top of every outline).
    pub fn draw(&self, canvas: &mut Canvas<'_>, detections: &[Detection], class_names: &[String]) {
        let (lw, text_px) = Self::sizes(canvas.width, canvas.height);
        for d in detections {
            let b = &d.bbox;
            let rect = [b.x1.round() as i64, b.y1.round() as i64, b.x2.round() as i64, b.y2.round() as i64];
            outline(canvas, rect, lw, Self::colour(d), d.predicted);
        }
        for d in detections {
            let b = &d.bbox;
            self.draw_label(canvas, b.x1.round() as i64, b.y1.round() as i64, &Self::label(d, class_names), Self::colour(d), text_px);
        }
    }

    /// A filled box with `text`, its bottom-left at the box's top-left corner (inside the box when
    /// there is no room above it).
    fn draw_label(&self, canvas: &mut Canvas<'_>, x: i64, y: i64, text: &str, bg: [u8; 3], px: f32) {
        let scaled = self.font.as_scaled(PxScale::from(px));
        let pad = (px * 0.2).round() as i64;
        let text_w = text_width(&scaled, text).ceil() as i64;
        let h = (scaled.ascent() - scaled.descent()).ceil() as i64 + pad;
        let top = if y - h >= 0 { y - h } else { y };
        let x = x.clamp(0, (canvas.width as i64 - text_w - 2 * pad).max(0));
        canvas.fill(x, top, x + text_w + 2 * pad, top + h, bg);
        // White text on dark colours, black on bright ones (luma of the background).
        let luma = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
        let fg = if luma > 150.0 { [0, 0, 0] } else { [255, 255, 255] };
        let baseline = top as f32 + pad as f32 / 2.0 + scaled.ascent();
        let mut caret = (x + pad) as f32;
        let mut prev = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), ab_glyph::point(caret, baseline));
            caret += scaled.h_advance(id);
            prev = Some(id);
            if let Some(outlined) = self.font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    canvas.blend(bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64, fg, coverage);
                });
            }
        }
    }
}

fn text_width<F: Font, S: ScaleFont<F>>(scaled: &S, text: &str) -> f32 {
    let mut w = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            w += scaled.kern(p, id);
        }
        w += scaled.h_advance(id);
        prev = Some(id);
    }
    w
}

/// A rectangle outline `lw` pixels wide, drawn inward from `[x1, y1, x2, y2]`; dashed when `dashed`.
fn outline(canvas: &mut Canvas<'_>, [x1, y1, x2, y2]: [i64; 4], lw: i64, rgb: [u8; 3], dashed: bool) {
    if x2 <= x1 || y2 <= y1 {
        return;
    }
    let dash = lw * 4;
    // Spans along one edge: the whole edge, or dashes of `dash` px with gaps of the same length.
    let spans = |from: i64, to: i64| -> Vec<(i64, i64)> {
        if !dashed {
            return vec![(from, to)];
        }
        (from..to).step_by((2 * dash) as usize).map(|s| (s, (s + dash).min(to))).collect()
    };
    for (a, b) in spans(x1, x2) {
        canvas.fill(a, y1, b, y1 + lw, rgb);
        canvas.fill(a, y2 - lw, b, y2, rgb);
    }
    for (a, b) in spans(y1, y2) {
        canvas.fill(x1, a, x1 + lw, b, rgb);
        canvas.fill(x2 - lw, a, x2, b, rgb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::BBox;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, predicted: bool) -> Detection {
        Detection { bbox: BBox { x1, y1, x2, y2 }, score: 0.87, class_id: 0, track_id: Some(3), predicted, ..Default::default() }
    }

    fn px(data: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * w + x) * 3) as usize;
        [data[i], data[i + 1], data[i + 2]]
    }

    #[test]
    fn the_bundled_font_has_every_printable_ascii_glyph() {
        let font = FontRef::try_from_slice(FONT).unwrap();
        for ch in ' '..='~' {
            assert_ne!(font.glyph_id(ch).0, 0, "no glyph for {ch:?}");
        }
    }

    #[test]
    fn a_fresh_box_is_solid_a_predicted_box_is_dashed() {
        let (w, h) = (200u32, 200u32);
        let a = Annotator::new();
        let names = vec!["person".to_string()];
        let mut solid = vec![0u8; (w * h * 3) as usize];
        a.draw(&mut Canvas { data: &mut solid, width: w, height: h }, &[det(40.0, 60.0, 160.0, 180.0, false)], &names);
        let colour = Annotator::colour(&det(0.0, 0.0, 1.0, 1.0, false));
        // Every pixel of the bottom edge is the box colour; the inside stays untouched.
        assert!((40..160).all(|x| px(&solid, w, x, 179) == colour));
        assert_eq!(px(&solid, w, 100, 120), [0, 0, 0]);
        let mut dashed = vec![0u8; (w * h * 3) as usize];
        a.draw(&mut Canvas { data: &mut dashed, width: w, height: h }, &[det(40.0, 60.0, 160.0, 180.0, true)], &names);
        let on = (40..160).filter(|&x| px(&dashed, w, x, 179) == colour).count();
        assert!(on > 40 && on < 80, "a dashed edge is about half drawn: {on} of 120");
    }

    #[test]
    fn the_label_sits_above_the_box_with_readable_text() {
        let (w, h) = (300u32, 200u32);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let names = vec!["person".to_string()];
        let d = det(50.0, 100.0, 250.0, 190.0, false);
        Annotator::new().draw(&mut Canvas { data: &mut img, width: w, height: h }, &[d], &names);
        assert_eq!(Annotator::label(&d, &names), "#3 person 0.87");
        let colour = Annotator::colour(&d);
        // The label band above the box holds the box colour and text pixels of another colour.
        let band: Vec<[u8; 3]> = (50..150).flat_map(|x| (80..99).map(move |y| (x, y))).map(|(x, y)| px(&img, w, x, y)).collect();
        assert!(band.iter().filter(|p| **p == colour).count() > band.len() / 3, "label background");
        assert!(band.iter().filter(|p| **p != colour && **p != [0, 0, 0]).count() > 50, "label text");
        assert_eq!(px(&img, w, 10, 10), [0, 0, 0], "nothing drawn far from the box");
    }

    #[test]
    fn boxes_off_the_image_are_clipped_not_a_panic() {
        let (w, h) = (64u32, 48u32);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let dets = [det(-50.0, -20.0, 500.0, 400.0, false), det(60.0, 40.0, 10.0, 5.0, true), det(0.0, 0.0, 1.0, 1.0, false)];
        Annotator::new().draw(&mut Canvas { data: &mut img, width: w, height: h }, &dets, &[]);
        assert_eq!(Annotator::label(&dets[1], &[]), "#3 0 pred");
    }
}
