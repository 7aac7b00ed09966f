//! Seeded, controlled corruption of ground truth into detections, for evaluating trackers
//! without a detector.
//!
//! The model, per frame of the ground truth (rows with conf >= 1; frames numbered as in the file):
//! - **miss**: each ground-truth box is dropped with probability `miss`;
//! - **jitter**: a kept box's centre moves by `N(0, jitter)` times its width (x) and height (y),
//!   and its width and height are each scaled by `1 + N(0, jitter)` (at least 1 px);
//! - **score**: a kept box scores `0.85 + N(0, score_noise)`, clamped to [0.01, 1];
//! - **false positives**: `Poisson(fp)` extra boxes per frame, each with the size of a random
//!   ground-truth box of the sequence, placed uniformly inside the area the ground truth covers,
//!   scoring `U(0.05, 0.6)` (mostly below `track_high_thresh`, like real clutter).
//!
//! The random stream is ChaCha8 seeded with `seed`, so a seed gives the same detections on every
//! machine and build.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::mot::MotRow;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Corruption {
    /// Standard deviation of centre and size noise, as a fraction of the box size.
    pub jitter: f64,
    /// Probability that a ground-truth box is not detected.
    pub miss: f64,
    /// Mean number of false positives per frame.
    pub fp: f64,
    /// Standard deviation of the score noise around 0.85.
    pub score_noise: f64,
    pub seed: u64,
}

impl Default for Corruption {
    fn default() -> Self {
        Self {
            jitter: 0.05,
            miss: 0.1,
            fp: 0.5,
            score_noise: 0.15,
            seed: 0,
        }
    }
}

impl Corruption {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.jitter >= 0.0 && self.jitter <= 1.0) {
            anyhow::bail!(
                "--jitter {}: must be a fraction of the box size in [0, 1]",
                self.jitter
            );
        }
        if !(0.0..=1.0).contains(&self.miss) {
            anyhow::bail!("--miss {}: must be a probability in [0, 1]", self.miss);
        }
        if !(self.fp >= 0.0 && self.fp <= 100.0) {
            anyhow::bail!(
                "--fp {}: must be a mean count per frame in [0, 100]",
                self.fp
            );
        }
        if !(self.score_noise >= 0.0 && self.score_noise <= 1.0) {
            anyhow::bail!("--score-noise {}: must be in [0, 1]", self.score_noise);
        }
        Ok(())
    }
}

pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; u1 in (0, 1] so the log is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> usize {
    // Knuth's method; fine for the small means used here.
    let l = (-mean).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Detections (id -1, conf = score) made from `gt` under `c`, for every frame from the first to
/// the last ground-truth frame. Output is sorted by frame.
pub fn corrupt(gt: &[MotRow], c: &Corruption) -> Vec<MotRow> {
    let gt: Vec<&MotRow> = gt.iter().filter(|r| r.conf >= 1.0).collect();
    if gt.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let (first, last) = gt.iter().fold((i64::MAX, i64::MIN), |(a, b), r| {
        (a.min(r.frame), b.max(r.frame))
    });
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for r in &gt {
        x0 = x0.min(r.bbox[0]);
        y0 = y0.min(r.bbox[1]);
        x1 = x1.max(r.bbox[0] + r.bbox[2]);
        y1 = y1.max(r.bbox[1] + r.bbox[3]);
    }
    let mut by_frame: std::collections::BTreeMap<i64, Vec<&MotRow>> = Default::default();
    for r in &gt {
        by_frame.entry(r.frame).or_default().push(r);
    }
    let mut out = Vec::new();
    for frame in first..=last {
        for r in by_frame.get(&frame).map(|v| v.as_slice()).unwrap_or(&[]) {
            let drop = rng.random::<f64>() < c.miss;
            let n = [
                normal(&mut rng),
                normal(&mut rng),
                normal(&mut rng),
                normal(&mut rng),
                normal(&mut rng),
            ];
            if drop {
                continue;
            }
            let [l, t, w, h] = r.bbox;
            let cx = l + 0.5 * w + n[0] * c.jitter * w;
            let cy = t + 0.5 * h + n[1] * c.jitter * h;
            let nw = (w * (1.0 + n[2] * c.jitter)).max(1.0);
            let nh = (h * (1.0 + n[3] * c.jitter)).max(1.0);
            let score = (0.85 + n[4] * c.score_noise).clamp(0.01, 1.0);
            out.push(MotRow {
                frame,
                id: -1,
                bbox: [cx - 0.5 * nw, cy - 0.5 * nh, nw, nh],
                conf: score,
                col8: None,
                col9: None,
            });
        }
        for _ in 0..poisson(&mut rng, c.fp) {
            let model = gt[rng.random_range(0..gt.len())];
            let (w, h) = (model.bbox[2], model.bbox[3]);
            let l = x0 + rng.random::<f64>() * (x1 - x0 - w).max(0.0);
            let t = y0 + rng.random::<f64>() * (y1 - y0 - h).max(0.0);
            let score = 0.05 + 0.55 * rng.random::<f64>();
            out.push(MotRow {
                frame,
                id: -1,
                bbox: [l, t, w, h],
                conf: score,
                col8: None,
                col9: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt() -> Vec<MotRow> {
        (1..=200)
            .flat_map(|f| {
                (0..5).map(move |i| MotRow {
                    frame: f,
                    id: i,
                    bbox: [100.0 * i as f64, 50.0, 40.0, 100.0],
                    conf: 1.0,
                    col8: None,
                    col9: None,
                })
            })
            .collect()
    }

    #[test]
    fn same_seed_same_detections_other_seed_differs() {
        let c = Corruption::default();
        assert_eq!(corrupt(&gt(), &c), corrupt(&gt(), &c));
        assert_ne!(
            corrupt(&gt(), &c),
            corrupt(&gt(), &Corruption { seed: 1, ..c })
        );
    }

    #[test]
    fn rates_are_as_configured() {
        let c = Corruption {
            jitter: 0.0,
            miss: 0.2,
            fp: 2.0,
            score_noise: 0.0,
            seed: 3,
        };
        let d = corrupt(&gt(), &c);
        let true_pos = d.iter().filter(|r| r.conf == 0.85).count() as f64;
        let fps = d.len() as f64 - true_pos;
        assert!(
            (true_pos / 1000.0 - 0.8).abs() < 0.04,
            "kept {true_pos} of 1000"
        );
        assert!(
            (fps / 200.0 - 2.0).abs() < 0.25,
            "{fps} false positives in 200 frames"
        );
        // Without jitter, kept boxes are exact.
        assert!(d
            .iter()
            .filter(|r| r.conf == 0.85)
            .all(|r| r.bbox[1] == 50.0 && r.bbox[3] == 100.0));
    }

    #[test]
    fn clean_settings_reproduce_ground_truth() {
        let c = Corruption {
            jitter: 0.0,
            miss: 0.0,
            fp: 0.0,
            score_noise: 0.0,
            seed: 0,
        };
        let d = corrupt(&gt(), &c);
        assert_eq!(d.len(), 1000);
        assert!(d
            .iter()
            .zip(gt())
            .all(|(a, b)| a.frame == b.frame && a.bbox == b.bbox));
    }
}
