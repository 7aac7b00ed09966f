//! Decode the raw YOLO output `[4 + nc, N]` and run class-aware NMS on plain slices, with the
//! semantics of Ultralytics' `non_max_suppression` (single label per box, agnostic = false):
//!
//! 1. a candidate is an anchor whose best class score is `> conf`;
//! 2. its label is that best class (ties: the lowest id), optionally filtered by `classes`;
//! 3. at most `max_nms` (30000) candidates, highest score first;
//! 4. greedy NMS per class (Ultralytics offsets boxes by `class * 7680`, which is the same as
//!    suppressing only within a class): a box is dropped when its IoU with a kept box of its class
//!    is `> iou`; the kept boxes come out by decreasing score, at most `max_det`;
//! 5. boxes go from model pixels to source pixels through the letterbox, clipped to the image
//!    (Ultralytics' `scale_boxes`).
//!
//! Buffers live in [`Postprocessor`] and are reused from frame to frame.

use perch_pipeline::{BBox, Detection, Letterbox};

/// Ultralytics' cap on boxes entering NMS.
pub const MAX_NMS: usize = 30_000;

/// The thresholds of one decode.
#[derive(Clone, Debug, PartialEq)]
pub struct NmsParams {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// Keep only these class ids (None: all).
    pub classes: Option<Vec<u32>>,
}

impl Default for NmsParams {
    fn default() -> Self {
        Self { conf: 0.25, iou: 0.7, max_det: 300, classes: None }
    }
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    b: BBox,
    score: f32,
    class: u32,
    area: f32,
}

/// Reusable decode + NMS state.
#[derive(Debug, Default)]
pub struct Postprocessor {
    best: Vec<f32>,
    best_class: Vec<u32>,
    candidates: Vec<Candidate>,
    kept: Vec<Candidate>,
}

impl Postprocessor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode `out` (row-major `[4 + nc, n]`: cx, cy, w, h in model pixels, then one score per
    /// class) into `dets` (cleared first), in source pixels through `letterbox`.
    pub fn run(
        &mut self,
        out: &[f32],
        nc: usize,
        n: usize,
        params: &NmsParams,
        letterbox: &Letterbox,
        dets: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        dets.clear();
        self.decode(out, nc, n, params)?;
        self.nms(params);
        dets.extend(self.kept.iter().map(|c| Detection::new(letterbox.box_to_source(c.b), c.score, c.class)));
        Ok(())
    }

    /// The boxes kept by the last `run`, in model pixels (x1, y1, x2, y2, score, class).
    pub fn kept_model_space(&self) -> impl Iterator<Item = (BBox, f32, u32)> + '_ {
        self.kept.iter().map(|c| (c.b, c.score, c.class))
    }

    fn decode(&mut self, out: &[f32], nc: usize, n: usize, params: &NmsParams) -> anyhow::Result<()> {
        if nc == 0 || out.len() != (4 + nc) * n {
            anyhow::bail!("model output has {} values, expected (4 + {nc}) x {n}", out.len());
        }
        // Best class per anchor, walking the class rows (contiguous) rather than the anchors (strided).
        self.best.clear();
        self.best.extend_from_slice(&out[4 * n..5 * n]);
        self.best_class.clear();
        self.best_class.resize(n, 0);
        for c in 1..nc {
            let row = &out[(4 + c) * n..(5 + c) * n];
            for ((b, bc), &s) in self.best.iter_mut().zip(self.best_class.iter_mut()).zip(row) {
                if s > *b {
                    *b = s;
                    *bc = c as u32;
                }
            }
        }
        let (cx, rest) = out.split_at(n);
        let (cy, rest) = rest.split_at(n);
        let (w, rest) = rest.split_at(n);
        let h = &rest[..n];
        self.candidates.clear();
        for i in 0..n {
            let score = self.best[i];
            // `!(score > conf)` also rejects NaN.
            if !(score > params.conf) {
                continue;
            }
            let class = self.best_class[i];
            if let Some(keep) = &params.classes {
                if !keep.contains(&class) {
                    continue;
                }
            }
            let (hw, hh) = (w[i] * 0.5, h[i] * 0.5);
            let b = BBox { x1: cx[i] - hw, y1: cy[i] - hh, x2: cx[i] + hw, y2: cy[i] + hh };
            let area = (b.x2 - b.x1).max(0.0) * (b.y2 - b.y1).max(0.0);
            self.candidates.push(Candidate { b, score, class, area });
        }
        // Highest score first; equal scores keep anchor order (a stable sort).
        self.candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.candidates.truncate(MAX_NMS);
        Ok(())
    }

    fn nms(&mut self, params: &NmsParams) {
        self.kept.clear();
        'next: for c in &self.candidates {
            if self.kept.len() >= params.max_det {
                break;
            }
            for k in self.kept.iter().filter(|k| k.class == c.class) {
                if iou(k, c) > params.iou {
                    continue 'next;
                }
            }
            self.kept.push(*c);
        }
    }
}

/// Intersection over union as torchvision's `box_iou` computes it.
fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let iw = (a.b.x2.min(b.b.x2) - a.b.x1.max(b.b.x1)).max(0.0);
    let ih = (a.b.y2.min(b.b.y2) - a.b.y1.max(b.b.y1)).max(0.0);
    let inter = iw * ih;
    inter / (a.area + b.area - inter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a [4 + nc, n] output from (cx, cy, w, h, scores) rows.
    fn output(anchors: &[([f32; 4], Vec<f32>)]) -> (Vec<f32>, usize, usize) {
        let n = anchors.len();
        let nc = anchors[0].1.len();
        let mut out = vec![0.0; (4 + nc) * n];
        for (i, (b, s)) in anchors.iter().enumerate() {
            for r in 0..4 {
                out[r * n + i] = b[r];
            }
            for (c, v) in s.iter().enumerate() {
                out[(4 + c) * n + i] = *v;
            }
        }
        (out, nc, n)
    }

    fn run(anchors: &[([f32; 4], Vec<f32>)], params: &NmsParams) -> Vec<Detection> {
        let (out, nc, n) = output(anchors);
        let mut dets = Vec::new();
        Postprocessor::new().run(&out, nc, n, params, &Letterbox::new(640, 640, 640, 640), &mut dets).unwrap();
        dets
    }

    #[test]
    fn overlapping_boxes_of_one_class_are_suppressed_by_score() {
        let dets = run(
            &[
                ([100.0, 100.0, 50.0, 50.0], vec![0.6, 0.1]),
                ([102.0, 100.0, 50.0, 50.0], vec![0.9, 0.1]),
                ([300.0, 300.0, 20.0, 20.0], vec![0.1, 0.5]),
            ],
            &NmsParams::default(),
        );
        assert_eq!(dets.len(), 2);
        assert_eq!((dets[0].score, dets[0].class_id), (0.9, 0));
        assert_eq!(dets[0].bbox, BBox { x1: 77.0, y1: 75.0, x2: 127.0, y2: 125.0 });
        assert_eq!((dets[1].score, dets[1].class_id), (0.5, 1));
    }

    #[test]
    fn overlapping_boxes_of_different_classes_both_stay() {
        let dets = run(
            &[([100.0, 100.0, 50.0, 50.0], vec![0.9, 0.0]), ([100.0, 100.0, 50.0, 50.0], vec![0.0, 0.8])],
            &NmsParams::default(),
        );
        assert_eq!(dets.len(), 2);
    }

    #[test]
    fn iou_threshold_is_strict() {
        // Two 10x10 boxes offset so IoU = 50 / 150 = 1/3 exactly.
        let a = ([10.0, 10.0, 10.0, 10.0], vec![0.9]);
        let b = ([15.0, 10.0, 10.0, 10.0], vec![0.8]);
        let p = NmsParams { iou: 1.0 / 3.0, ..Default::default() };
        assert_eq!(run(&[a.clone(), b.clone()], &p).len(), 2);
        let p = NmsParams { iou: 0.33, ..Default::default() };
        assert_eq!(run(&[a, b], &p).len(), 1);
    }

    #[test]
    fn conf_is_strict_and_classes_filter_and_max_det_cap() {
        let anchors: Vec<_> = (0..10).map(|i| ([i as f32 * 50.0 + 20.0, 20.0, 10.0, 10.0], vec![0.25 + i as f32 * 0.05, 0.0])).collect();
        // 0.25 itself is not > 0.25.
        assert_eq!(run(&anchors, &NmsParams::default()).len(), 9);
        assert_eq!(run(&anchors, &NmsParams { max_det: 3, ..Default::default() }).len(), 3);
        assert_eq!(run(&anchors, &NmsParams { classes: Some(vec![1]), ..Default::default() }).len(), 0);
        // The label is the best class; a box whose best class is filtered out is gone even if another class passes conf.
        let two = [([20.0, 20.0, 10.0, 10.0], vec![0.5, 0.9])];
        assert_eq!(run(&two, &NmsParams { classes: Some(vec![0]), ..Default::default() }).len(), 0);
    }

    #[test]
    fn boxes_are_mapped_to_source_pixels_and_clipped() {
        let (out, nc, n) = output(&[([320.0, 100.0, 100.0, 60.0], vec![0.9])]);
        let lb = Letterbox::new(768, 576, 640, 640);
        let mut dets = Vec::new();
        Postprocessor::new().run(&out, nc, n, &NmsParams::default(), &lb, &mut dets).unwrap();
        let b = dets[0].bbox;
        // model y1 = 70 is inside the top padding (80 rows): clipped to 0.
        assert_eq!(b.y1, 0.0);
        assert!((b.x1 - 270.0 / lb.scale).abs() < 1e-3 && (b.y2 - (130.0 - 80.0) / lb.scale).abs() < 1e-3);
    }

    #[test]
    fn wrong_output_size_is_an_error() {
        let mut dets = Vec::new();
        let err = Postprocessor::new()
            .run(&[0.0; 10], 80, 8400, &NmsParams::default(), &Letterbox::default(), &mut dets)
            .unwrap_err();
        assert!(err.to_string().contains("expected (4 + 80) x 8400"));
    }
}
