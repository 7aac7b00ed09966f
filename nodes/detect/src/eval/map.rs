//! COCO-style box mAP with pycocotools' semantics (`COCOeval`, iouType "bbox"), so numbers are
//! comparable with the reference tool to rounding (tested to 1e-4 against pycocotools on fixed
//! cases, `tests/map_golden.rs`; in practice they agree to ~1e-15):
//!
//! * IoU thresholds 0.50:0.05:0.95 (numpy's `linspace` values), 101 recall points 0:0.01:1;
//! * area range "all", no crowd boxes; at most [`MapParams::max_dets`] detections per image (the
//!   highest scores, ties in input order);
//! * per image and class, each detection (by decreasing score) takes the *unmatched* ground-truth
//!   box with the highest IoU ≥ the threshold (on equal IoU the later box, as pycocotools' loop does);
//! * per class, detections of all images are ranked by score (stable: image order, then rank in
//!   the image), precision is made monotone from the right and sampled at the first index whose
//!   recall reaches each recall point (0 past the last);
//! * AP of a class = mean over thresholds and recall points; mAP = mean over the classes that have
//!   ground truth (a class with detections but no ground truth is not counted, one with ground truth
//!   but no detections counts 0); `None` when no class has ground truth (pycocotools prints -1).
//!
//! Boxes are COCO `[x, y, w, h]` in f64; IoU is pycocotools' `bbIou` (in double precision).

use serde::{Deserialize, Serialize};

/// A ground-truth box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GtBox {
    pub class: u32,
    /// `[x, y, w, h]`.
    pub xywh: [f64; 4],
}

/// A scored detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DtBox {
    pub class: u32,
    pub score: f64,
    /// `[x, y, w, h]`.
    pub xywh: [f64; 4],
}

/// `[x1, y1, x2, y2]` (perch's boxes) → COCO `[x, y, w, h]`.
pub fn xyxy_to_xywh(b: [f32; 4]) -> [f64; 4] {
    let [x1, y1, x2, y2] = b.map(f64::from);
    [x1, y1, x2 - x1, y2 - y1]
}

/// One image: its ground truth and its detections (any order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageBoxes {
    pub gt: Vec<GtBox>,
    pub dt: Vec<DtBox>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapParams {
    /// Detections kept per image (pycocotools' `maxDets`; COCO's AP uses 100).
    pub max_dets: usize,
}

impl Default for MapParams {
    fn default() -> Self {
        Self { max_dets: 100 }
    }
}

/// AP of one class (over the IoU thresholds) and its box counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    pub class: u32,
    pub ap50_95: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub gt: usize,
    /// Detections that entered the evaluation (after the per-image `max_dets` cut).
    pub dt: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapReport {
    /// Mean over classes with ground truth of AP averaged over IoU 0.50:0.95; None without ground truth.
    pub map50_95: Option<f64>,
    pub map50: Option<f64>,
    pub map75: Option<f64>,
    pub images: usize,
    pub gt_boxes: usize,
    pub dt_boxes: usize,
    /// Classes with ground truth, by id.
    pub per_class: Vec<ClassAp>,
}

/// The 10 IoU thresholds as `np.linspace(.5, .95, 10)` computes them (bit for bit).
pub fn iou_thresholds() -> [f64; 10] {
    let step = (0.95f64 - 0.5) / 9.0;
    let mut t = [0.0; 10];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f64 * step + 0.5;
    }
    t[9] = 0.95;
    t
}

/// The 101 recall points as `np.linspace(0, 1, 101)` computes them.
pub fn recall_points() -> [f64; 101] {
    let step = 1.0f64 / 100.0;
    let mut r = [0.0; 101];
    for (i, v) in r.iter_mut().enumerate() {
        *v = i as f64 * step;
    }
    r[100] = 1.0;
    r
}

/// pycocotools' `bbIou` for non-crowd boxes.
pub fn iou_xywh(d: &[f64; 4], g: &[f64; 4]) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    i / (d[2] * d[3] + g[2] * g[3] - i)
}

/// One detection of a class after matching: its score and, per IoU threshold, whether it matched.
struct Scored {
    score: f64,
    tp: [bool; 10],
}

/// COCO mAP of `images` (see the module doc for the exact semantics).
pub fn coco_map(images: &[ImageBoxes], params: &MapParams) -> MapReport {
    let thresholds = iou_thresholds();
    let recalls = recall_points();
    let mut classes: Vec<u32> = images.iter().flat_map(|im| im.gt.iter().map(|g| g.class)).collect();
    classes.sort_unstable();
    classes.dedup();

    let mut per_class = Vec::with_capacity(classes.len());
    let mut scored: Vec<Scored> = Vec::new();
    for &class in &classes {
        scored.clear();
        let mut n_gt = 0usize;
        for im in images {
            let gts: Vec<&GtBox> = im.gt.iter().filter(|g| g.class == class).collect();
            let mut dts: Vec<&DtBox> = im.dt.iter().filter(|d| d.class == class).collect();
            // Stable, like np.argsort(-scores, kind="mergesort").
            dts.sort_by(|a, b| b.score.total_cmp(&a.score));
            dts.truncate(params.max_dets);
            n_gt += gts.len();
            let ious: Vec<Vec<f64>> = dts.iter().map(|d| gts.iter().map(|g| iou_xywh(&d.xywh, &g.xywh)).collect()).collect();
            let mut tps = vec![[false; 10]; dts.len()];
            for (t, &thr) in thresholds.iter().enumerate() {
                let mut taken = vec![false; gts.len()];
                for (di, row) in ious.iter().enumerate() {
                    let mut best = thr.min(1.0 - 1e-10);
                    let mut m = None;
                    for (gi, &iou) in row.iter().enumerate() {
                        if taken[gi] || iou < best {
                            continue;
                        }
                        best = iou;
                        m = Some(gi);
                    }
                    if let Some(gi) = m {
                        taken[gi] = true;
                        tps[di][t] = true;
                    }
                }
            }
            scored.extend(dts.iter().zip(tps).map(|(d, tp)| Scored { score: d.score, tp }));
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut ap = [0.0f64; 10];
        let mut rc = Vec::with_capacity(scored.len());
        let mut pr = Vec::with_capacity(scored.len());
        for (t, ap_t) in ap.iter_mut().enumerate() {
            rc.clear();
            pr.clear();
            let (mut tp, mut fp) = (0.0f64, 0.0f64);
            for s in &scored {
                if s.tp[t] {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
                rc.push(tp / n_gt as f64);
                pr.push(tp / (fp + tp + f64::EPSILON));
            }
            for i in (1..pr.len()).rev() {
                if pr[i] > pr[i - 1] {
                    pr[i - 1] = pr[i];
                }
            }
            let mut sum = 0.0;
            for &r in &recalls {
                let i = rc.partition_point(|&x| x < r);
                if i < pr.len() {
                    sum += pr[i];
                } else {
                    break; // pycocotools leaves the remaining recall points at 0
                }
            }
            *ap_t = sum / recalls.len() as f64;
        }
        per_class.push(ClassAp {
            class,
            ap50_95: ap.iter().sum::<f64>() / ap.len() as f64,
            ap50: ap[0],
            ap75: ap[5],
            gt: n_gt,
            dt: scored.len(),
        });
    }
    let mean = |f: fn(&ClassAp) -> f64| {
        (!per_class.is_empty()).then(|| per_class.iter().map(f).sum::<f64>() / per_class.len() as f64)
    };
    MapReport {
        map50_95: mean(|c| c.ap50_95),
        map50: mean(|c| c.ap50),
        map75: mean(|c| c.ap75),
        images: images.len(),
        gt_boxes: images.iter().map(|im| im.gt.len()).sum(),
        dt_boxes: images.iter().map(|im| im.dt.len()).sum(),
        per_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(class: u32, x: f64, y: f64, w: f64, h: f64) -> GtBox {
        GtBox { class, xywh: [x, y, w, h] }
    }

    fn dt(class: u32, score: f64, x: f64, y: f64, w: f64, h: f64) -> DtBox {
        DtBox { class, score, xywh: [x, y, w, h] }
    }

    /// pycocotools' precision is tp / (tp + fp + eps): a perfect score is 1 - 2e-16.
    fn approx(v: Option<f64>, want: f64) -> bool {
        v.is_some_and(|v| (v - want).abs() < 1e-12)
    }

    #[test]
    fn thresholds_are_numpys() {
        let t = iou_thresholds();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[5], 0.75);
        assert_eq!(t[9], 0.95);
        let r = recall_points();
        assert_eq!((r[0], r[1], r[100]), (0.0, 0.01, 1.0));
    }

    #[test]
    fn identical_boxes_score_one_and_extra_low_scores_do_not_hurt() {
        let im = ImageBoxes {
            gt: vec![gt(0, 10.0, 10.0, 20.0, 40.0), gt(2, 100.0, 50.0, 30.0, 30.0)],
            dt: vec![dt(0, 0.9, 10.0, 10.0, 20.0, 40.0), dt(2, 0.8, 100.0, 50.0, 30.0, 30.0), dt(0, 0.01, 300.0, 300.0, 5.0, 5.0)],
        };
        let r = coco_map(&[im], &MapParams::default());
        assert!(approx(r.map50_95, 1.0) && approx(r.map50, 1.0) && approx(r.map75, 1.0), "{r:?}");
        assert_eq!(r.per_class.iter().map(|c| c.class).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn missed_class_counts_zero_and_class_without_gt_is_ignored() {
        let im = ImageBoxes {
            gt: vec![gt(0, 0.0, 0.0, 10.0, 10.0), gt(1, 50.0, 50.0, 10.0, 10.0)],
            dt: vec![dt(0, 0.9, 0.0, 0.0, 10.0, 10.0), dt(5, 0.9, 50.0, 50.0, 10.0, 10.0)],
        };
        let r = coco_map(&[im], &MapParams::default());
        assert!(approx(r.map50_95, 0.5), "{r:?}");
        assert_eq!(r.per_class.len(), 2);
    }

    #[test]
    fn iou_exactly_at_the_threshold_matches() {
        // IoU = 0.5 exactly: a match at 0.50 only -> AP = 1/10.
        let im = ImageBoxes { gt: vec![gt(0, 0.0, 0.0, 10.0, 20.0)], dt: vec![dt(0, 0.9, 0.0, 0.0, 10.0, 10.0)] };
        assert_eq!(iou_xywh(&im.dt[0].xywh, &im.gt[0].xywh), 0.5);
        let r = coco_map(&[im], &MapParams::default());
        assert!(approx(r.map50, 1.0) && approx(r.map50_95, 0.1), "{r:?}");
    }

    #[test]
    fn max_dets_cuts_the_lowest_scores_per_image() {
        let mut im = ImageBoxes { gt: vec![gt(0, 0.0, 0.0, 10.0, 10.0)], dt: Vec::new() };
        for i in 0..5 {
            im.dt.push(dt(0, 0.9 - f64::from(i) * 0.1, 100.0 + f64::from(i) * 20.0, 0.0, 10.0, 10.0));
        }
        im.dt.push(dt(0, 0.1, 0.0, 0.0, 10.0, 10.0)); // the true box, ranked 6th
        let all = coco_map(std::slice::from_ref(&im), &MapParams { max_dets: 6 });
        let cut = coco_map(&[im], &MapParams { max_dets: 5 });
        assert!(all.map50.unwrap() > 0.0);
        assert_eq!(cut.map50, Some(0.0));
    }

    #[test]
    fn no_ground_truth_is_none() {
        let r = coco_map(&[ImageBoxes { gt: vec![], dt: vec![dt(0, 0.5, 0.0, 0.0, 1.0, 1.0)] }], &MapParams::default());
        assert_eq!((r.map50_95, r.map50), (None, None));
        assert!(r.per_class.is_empty());
    }
}
