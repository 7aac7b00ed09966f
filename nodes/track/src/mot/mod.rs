//! Multi-object tracking metrics: CLEAR MOT (MOTA, MOTP, ID switches, FP, FN, MT/PT/ML, Frag),
//! identity metrics (IDF1, IDP, IDR) and HOTA.
//!
//! CLEAR MOT and identity metrics follow motmetrics 1.4.0 (`MOTAccumulator` + `compare_to_groundtruth`
//! with `'iou'` distance and `distth = 0.5`) exactly:
//! - distance = 1 - IoU; a pair with distance > `max_distance` cannot be matched;
//! - per frame, a ground-truth object keeps the hypothesis it was last matched to if that
//!   hypothesis is present and still within the distance; the rest is matched by a minimum-cost
//!   assignment that first maximises the number of pairs;
//! - a match is an ID switch when the object was matched before, to another hypothesis
//!   (motmetrics' default `max_switch_time = inf`: across any gap);
//! - MOTP is the mean matched *distance* (1 - IoU), lower is better;
//! - IDF1 comes from the global one-to-one id assignment that maximises the frames in which
//!   paired ids are within the distance.
//!
//! HOTA follows TrackEval (`HOTA` class: alpha = 0.05..0.95, IoU similarity, per-frame assignment
//! on alignment-weighted similarity).

mod io;

pub use io::{format_mot, parse_mot, read_mot, MotRow};

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::assign::{cardinality_weight, Assigner, Edge, SCALE};

/// How boxes are filtered and matched. Defaults = motmetrics' MOTChallenge evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotOptions {
    /// Largest 1 - IoU at which a ground-truth box and a hypothesis can still match (0.5 = IoU >= 0.5).
    pub max_distance: f64,
    /// Ground-truth rows with `conf` below this are ignored (MOT16/17 use conf 0 for "do not consider").
    pub gt_min_confidence: f64,
    /// Hypothesis rows with `conf` below this are ignored (motmetrics' default keeps all >= -1).
    pub hyp_min_confidence: f64,
}

impl Default for MotOptions {
    fn default() -> Self {
        Self {
            max_distance: 0.5,
            gt_min_confidence: 1.0,
            hyp_min_confidence: -1.0,
        }
    }
}

/// HOTA and its components, each averaged over the 19 localisation thresholds alpha.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HotaMetrics {
    pub hota: f64,
    pub deta: f64,
    pub assa: f64,
    pub detre: f64,
    pub detpr: f64,
    pub assre: f64,
    pub asspr: f64,
    pub loca: f64,
}

/// Everything `evaluate` measures. Names follow motmetrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotMetrics {
    pub num_frames: usize,
    /// Ground-truth boxes (after the confidence filter).
    pub num_objects: usize,
    /// Hypothesis boxes.
    pub num_predictions: usize,
    pub num_unique_objects: usize,
    /// Matches that are not switches.
    pub num_matches: usize,
    pub num_switches: usize,
    pub num_false_positives: usize,
    pub num_misses: usize,
    pub num_fragmentations: usize,
    pub mostly_tracked: usize,
    pub partially_tracked: usize,
    pub mostly_lost: usize,
    pub mota: f64,
    /// Mean 1 - IoU of matched pairs (motmetrics' definition; 0 is perfect).
    pub motp: f64,
    pub idf1: f64,
    pub idp: f64,
    pub idr: f64,
    pub idtp: usize,
    pub idfp: usize,
    pub idfn: usize,
    pub recall: f64,
    pub precision: f64,
    pub hota: HotaMetrics,
}

/// IoU of two `[left, top, width, height]` boxes, 0 when they do not intersect (motmetrics' `boxiou`).
pub fn iou_ltwh(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let ih = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    if inter == 0.0 {
        return 0.0;
    }
    let union = a[2].max(0.0) * a[3].max(0.0) + b[2].max(0.0) * b[3].max(0.0) - inter;
    if union == 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Boxes of one frame, with ids mapped to dense indices.
#[derive(Default)]
struct FrameBoxes {
    gt: Vec<(usize, [f64; 4])>,
    hyp: Vec<(usize, [f64; 4])>,
}

struct Prepared {
    frames: Vec<FrameBoxes>,
    n_gt_ids: usize,
    n_hyp_ids: usize,
}

fn prepare(gt: &[MotRow], hyp: &[MotRow], opts: &MotOptions) -> Prepared {
    let mut by_frame: BTreeMap<i64, FrameBoxes> = BTreeMap::new();
    let mut gt_ids: HashMap<i64, usize> = HashMap::new();
    let mut hyp_ids: HashMap<i64, usize> = HashMap::new();
    for r in gt.iter().filter(|r| r.conf >= opts.gt_min_confidence) {
        let n = gt_ids.len();
        let id = *gt_ids.entry(r.id).or_insert(n);
        by_frame.entry(r.frame).or_default().gt.push((id, r.bbox));
    }
    for r in hyp.iter().filter(|r| r.conf >= opts.hyp_min_confidence) {
        let n = hyp_ids.len();
        let id = *hyp_ids.entry(r.id).or_insert(n);
        by_frame.entry(r.frame).or_default().hyp.push((id, r.bbox));
    }
    Prepared {
        frames: by_frame.into_values().collect(),
        n_gt_ids: gt_ids.len(),
        n_hyp_ids: hyp_ids.len(),
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

/// Compute all metrics of `hyp` (tracker output) against `gt`.
pub fn evaluate(gt: &[MotRow], hyp: &[MotRow], opts: &MotOptions) -> MotMetrics {
    let p = prepare(gt, hyp, opts);
    let mut out = clear_and_identity(&p, opts);
    out.hota = hota(&p);
    out
}

fn clear_and_identity(p: &Prepared, opts: &MotOptions) -> MotMetrics {
    let mut m = MotMetrics {
        num_frames: p.frames.len(),
        num_unique_objects: p.n_gt_ids,
        ..Default::default()
    };
    let mut last_hyp: Vec<Option<usize>> = vec![None; p.n_gt_ids];
    // Per object, in frame order: was it matched (true) or missed (false)?
    let mut states: Vec<Vec<bool>> = vec![Vec::new(); p.n_gt_ids];
    // Frames in which each (object, hypothesis) pair is within the distance: IDF1's counts.
    let mut pair_frames: HashMap<(usize, usize), usize> = HashMap::new();
    let mut dist_sum = 0.0;
    let mut assigner = Assigner::default();
    let mut dist: Vec<f64> = Vec::new();
    let mut edges = Vec::new();
    let mut pairs = Vec::new();
    for f in &p.frames {
        let (no, nh) = (f.gt.len(), f.hyp.len());
        m.num_objects += no;
        m.num_predictions += nh;
        dist.clear();
        for (o, ob) in &f.gt {
            for (h, hb) in &f.hyp {
                let d = 1.0 - iou_ltwh(ob, hb);
                let d = if d > opts.max_distance { f64::NAN } else { d };
                if d.is_finite() {
                    *pair_frames.entry((*o, *h)).or_insert(0) += 1;
                }
                dist.push(d);
            }
        }
        let mut o_done = vec![false; no];
        let mut h_done = vec![false; nh];
        // 1. Keep last frame's correspondences that are still valid.
        for (i, (o, _)) in f.gt.iter().enumerate() {
            let Some(hprev) = last_hyp[*o] else { continue };
            let Some(j) = (0..nh).find(|&j| !h_done[j] && f.hyp[j].0 == hprev) else {
                continue;
            };
            let d = dist[i * nh + j];
            if d.is_finite() {
                o_done[i] = true;
                h_done[j] = true;
                m.num_matches += 1;
                dist_sum += d;
            }
        }
        // 2. Assign the rest: most pairs, then least total distance.
        edges.clear();
        let n_free = o_done
            .iter()
            .filter(|d| !**d)
            .count()
            .min(h_done.iter().filter(|d| !**d).count());
        for i in (0..no).filter(|&i| !o_done[i]) {
            for j in (0..nh).filter(|&j| !h_done[j]) {
                let d = dist[i * nh + j];
                if d.is_finite() {
                    let w = cardinality_weight(d, opts.max_distance.max(0.0), n_free);
                    edges.push(Edge {
                        row: i,
                        col: j,
                        weight: w,
                    });
                }
            }
        }
        assigner.max_weight_matching(no, nh, &edges, &mut pairs);
        for &(i, j) in &pairs {
            let (o, h) = (f.gt[i].0, f.hyp[j].0);
            match last_hyp[o] {
                Some(prev) if prev != h => m.num_switches += 1,
                _ => m.num_matches += 1,
            }
            dist_sum += dist[i * nh + j];
            last_hyp[o] = Some(h);
            o_done[i] = true;
            h_done[j] = true;
        }
        m.num_misses += o_done.iter().filter(|d| !**d).count();
        m.num_false_positives += h_done.iter().filter(|d| !**d).count();
        for (i, (o, _)) in f.gt.iter().enumerate() {
            states[*o].push(o_done[i]);
        }
    }

    for s in &states {
        let tracked = s.iter().filter(|t| **t).count();
        let r = tracked as f64 / s.len() as f64;
        if r >= 0.8 {
            m.mostly_tracked += 1;
        } else if r >= 0.2 {
            m.partially_tracked += 1;
        } else {
            m.mostly_lost += 1;
        }
        if let (Some(first), Some(last)) = (s.iter().position(|t| *t), s.iter().rposition(|t| *t)) {
            m.num_fragmentations += s[first..=last].windows(2).filter(|w| w[0] && !w[1]).count();
        }
    }

    let detections = (m.num_matches + m.num_switches) as f64;
    m.motp = ratio(dist_sum, detections);
    m.mota = 1.0
        - ratio(
            (m.num_misses + m.num_switches + m.num_false_positives) as f64,
            m.num_objects as f64,
        );
    m.recall = ratio(detections, m.num_objects as f64);
    m.precision = ratio(detections, detections + m.num_false_positives as f64);

    // Identity: the id pairing that maximises frames spent together.
    edges.clear();
    edges.extend(pair_frames.iter().map(|(&(o, h), &n)| Edge {
        row: o,
        col: h,
        weight: n as i64,
    }));
    edges.sort_unstable_by_key(|e| (e.row, e.col));
    assigner.max_weight_matching(p.n_gt_ids, p.n_hyp_ids, &edges, &mut pairs);
    m.idtp = pairs.iter().map(|pr| pair_frames[pr]).sum();
    m.idfn = m.num_objects - m.idtp;
    m.idfp = m.num_predictions - m.idtp;
    m.idp = ratio(m.idtp as f64, (m.idtp + m.idfp) as f64);
    m.idr = ratio(m.idtp as f64, (m.idtp + m.idfn) as f64);
    m.idf1 = ratio(
        2.0 * m.idtp as f64,
        (m.num_objects + m.num_predictions) as f64,
    );
    m
}

/// HOTA as TrackEval computes it (IoU similarity, alpha in 0.05, 0.10, ..., 0.95).
fn hota(p: &Prepared) -> HotaMetrics {
    const N_ALPHA: usize = 19;
    let alphas: [f64; N_ALPHA] = std::array::from_fn(|k| 0.05 + 0.05 * k as f64);
    let eps = f64::EPSILON;
    let mut gt_count = vec![0f64; p.n_gt_ids];
    let mut tr_count = vec![0f64; p.n_hyp_ids];
    let mut potential: HashMap<(usize, usize), f64> = HashMap::new();
    let mut sims: Vec<Vec<f64>> = Vec::with_capacity(p.frames.len());
    // Pass 1: global alignment between ids, from per-frame similarity normalised by its row and
    // column sums.
    for f in &p.frames {
        let (ng, nt) = (f.gt.len(), f.hyp.len());
        let mut sim = vec![0.0; ng * nt];
        for (i, (_, gb)) in f.gt.iter().enumerate() {
            for (j, (_, tb)) in f.hyp.iter().enumerate() {
                sim[i * nt + j] = iou_ltwh(gb, tb);
            }
        }
        let row_sum: Vec<f64> = (0..ng)
            .map(|i| sim[i * nt..(i + 1) * nt].iter().sum())
            .collect();
        let col_sum: Vec<f64> = (0..nt)
            .map(|j| (0..ng).map(|i| sim[i * nt + j]).sum())
            .collect();
        for i in 0..ng {
            for j in 0..nt {
                let s = sim[i * nt + j];
                let den = row_sum[i] + col_sum[j] - s;
                if den > eps && s != 0.0 {
                    *potential.entry((f.gt[i].0, f.hyp[j].0)).or_insert(0.0) += s / den;
                }
            }
        }
        for (g, _) in &f.gt {
            gt_count[*g] += 1.0;
        }
        for (t, _) in &f.hyp {
            tr_count[*t] += 1.0;
        }
        sims.push(sim);
    }
    let global = |g: usize, t: usize| -> f64 {
        match potential.get(&(g, t)) {
            Some(&pm) => pm / (gt_count[g] + tr_count[t] - pm),
            None => 0.0,
        }
    };
    // Pass 2: per-frame matching on alignment-weighted similarity, scored at each alpha.
    let mut tp = [0f64; N_ALPHA];
    let mut fn_ = [0f64; N_ALPHA];
    let mut fp = [0f64; N_ALPHA];
    let mut loc = [0f64; N_ALPHA];
    let mut matches: Vec<HashMap<(usize, usize), f64>> = vec![HashMap::new(); N_ALPHA];
    let mut assigner = Assigner::default();
    let mut edges = Vec::new();
    let mut pairs = Vec::new();
    for (f, sim) in p.frames.iter().zip(&sims) {
        let (ng, nt) = (f.gt.len(), f.hyp.len());
        edges.clear();
        for i in 0..ng {
            for j in 0..nt {
                let s = sim[i * nt + j];
                if s > 0.0 {
                    let w = (global(f.gt[i].0, f.hyp[j].0) * s * SCALE).round() as i64;
                    edges.push(Edge {
                        row: i,
                        col: j,
                        weight: w.max(1),
                    });
                }
            }
        }
        assigner.max_weight_matching(ng, nt, &edges, &mut pairs);
        for (a, &alpha) in alphas.iter().enumerate() {
            let mut n = 0usize;
            for &(i, j) in &pairs {
                let s = sim[i * nt + j];
                if s >= alpha - eps {
                    n += 1;
                    loc[a] += s;
                    *matches[a].entry((f.gt[i].0, f.hyp[j].0)).or_insert(0.0) += 1.0;
                }
            }
            tp[a] += n as f64;
            fn_[a] += (ng - n) as f64;
            fp[a] += (nt - n) as f64;
        }
    }
    let mut h = HotaMetrics::default();
    for a in 0..N_ALPHA {
        let (mut assa, mut assre, mut asspr) = (0.0, 0.0, 0.0);
        for (&(g, t), &mc) in &matches[a] {
            assa += mc * mc / (gt_count[g] + tr_count[t] - mc).max(1.0);
            assre += mc * mc / gt_count[g].max(1.0);
            asspr += mc * mc / tr_count[t].max(1.0);
        }
        let tpa = tp[a].max(1.0);
        let (assa, assre, asspr) = (assa / tpa, assre / tpa, asspr / tpa);
        let deta = tp[a] / (tp[a] + fn_[a] + fp[a]).max(1.0);
        h.hota += (deta * assa).sqrt();
        h.deta += deta;
        h.assa += assa;
        h.assre += assre;
        h.asspr += asspr;
        h.detre += tp[a] / (tp[a] + fn_[a]).max(1.0);
        h.detpr += tp[a] / (tp[a] + fp[a]).max(1.0);
        h.loca += loc[a].max(1e-10) / tp[a].max(1e-10);
    }
    let n = N_ALPHA as f64;
    for v in [
        &mut h.hota,
        &mut h.deta,
        &mut h.assa,
        &mut h.detre,
        &mut h.detpr,
        &mut h.assre,
        &mut h.asspr,
        &mut h.loca,
    ] {
        *v /= n;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: i64, id: i64, x: f64) -> MotRow {
        MotRow {
            frame,
            id,
            bbox: [x, 0.0, 10.0, 10.0],
            conf: 1.0,
            col8: None,
            col9: None,
        }
    }

    #[test]
    fn perfect_tracking_scores_one() {
        let gt: Vec<_> = (1..=5)
            .flat_map(|f| [row(f, 1, 0.0), row(f, 2, 50.0)])
            .collect();
        let hyp: Vec<_> = gt
            .iter()
            .map(|r| MotRow {
                id: r.id + 10,
                ..*r
            })
            .collect();
        let m = evaluate(&gt, &hyp, &MotOptions::default());
        assert_eq!((m.mota, m.idf1, m.motp), (1.0, 1.0, 0.0));
        assert_eq!(
            (m.num_switches, m.num_fragmentations, m.mostly_tracked),
            (0, 0, 2)
        );
        assert!((m.hota.hota - 1.0).abs() < 1e-12);
    }

    #[test]
    fn switch_is_counted_once_and_kept() {
        // Object 1 is tracked by hypothesis 7, then by 8 (a switch), then stays with 8.
        let gt: Vec<_> = (1..=4).map(|f| row(f, 1, 0.0)).collect();
        let hyp = vec![
            row(1, 7, 0.0),
            row(2, 7, 0.0),
            row(3, 8, 0.0),
            row(4, 8, 0.0),
        ];
        let m = evaluate(&gt, &hyp, &MotOptions::default());
        assert_eq!((m.num_switches, m.num_matches), (1, 3));
        assert_eq!(m.idtp, 2);
        assert!((m.mota - 0.75).abs() < 1e-12);
    }

    #[test]
    fn previous_match_is_kept_when_still_valid() {
        // Frame 2: hypothesis 8 overlaps object 1 better, but 7 is still within the threshold.
        let gt = vec![row(1, 1, 0.0), row(2, 1, 0.0)];
        let hyp = vec![row(1, 7, 0.0), row(2, 7, 2.0), row(2, 8, 0.0)];
        let m = evaluate(&gt, &hyp, &MotOptions::default());
        assert_eq!(
            (m.num_switches, m.num_false_positives, m.num_matches),
            (0, 1, 2)
        );
    }

    #[test]
    fn fragmentation_counts_interruptions_inside_the_span() {
        let gt: Vec<_> = (1..=6).map(|f| row(f, 1, 0.0)).collect();
        let hyp = vec![row(2, 7, 0.0), row(4, 7, 0.0), row(5, 7, 0.0)];
        let m = evaluate(&gt, &hyp, &MotOptions::default());
        // matched at 2, 4, 5: missed at 3 inside the span -> one fragmentation
        assert_eq!(m.num_fragmentations, 1);
        assert_eq!(m.num_misses, 3);
        assert_eq!(m.partially_tracked, 1);
    }
}
