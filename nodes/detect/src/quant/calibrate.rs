//! Activation statistics and the choice of a u8 quantization per tensor group.
//!
//! Every conv's input (all parts of its concatenation together) is observed on the f32 model
//! over the calibration frames: exact min/max plus a histogram. Histograms cover a symmetric
//! range [-2^e, 2^e) that doubles when a value falls outside (pairs of bins merge exactly), so
//! one pass suffices and histograms of different convs merge. A [`CalibMethod`] turns the
//! (merged) statistics of a tensor group into a clipping range [lo, hi] and then `QParams`.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::model::conv::with_cpu_data;
use crate::model::fmap::{Fmap, Observer, QParams};

/// How a tensor's clipping range is chosen from its statistics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibMethod {
    /// The observed minimum and maximum.
    Minmax,
    /// The given percentile at the top (and its complement at the bottom), e.g. 99.99.
    Percentile(f64),
    /// The range (searched over clipped candidates) with the least expected squared
    /// quantization error on the observed histogram.
    Mse,
}

impl std::fmt::Display for CalibMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibMethod::Minmax => write!(f, "minmax"),
            CalibMethod::Percentile(p) => write!(f, "percentile({p})"),
            CalibMethod::Mse => write!(f, "mse"),
        }
    }
}

/// Bins of a histogram over [-2^e, 2^e).
pub const BINS: usize = 8192;

/// Statistics of the values one conv reads.
#[derive(Clone, Debug)]
pub struct Hist {
    /// The range is [-2^exp, 2^exp).
    exp: i32,
    bins: Vec<u64>,
    pub min: f32,
    pub max: f32,
    pub count: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self { exp: -24, bins: vec![0; BINS], min: f32::INFINITY, max: f32::NEG_INFINITY, count: 0 }
    }
}

impl Hist {
    fn range(&self) -> f32 {
        (self.exp as f32).exp2()
    }

    /// Doubles the range: bin pairs merge into the middle half.
    fn grow(&mut self) {
        let mut bins = vec![0u64; BINS];
        for (i, &c) in self.bins.iter().enumerate() {
            bins[BINS / 4 + i / 2] += c;
        }
        self.bins = bins;
        self.exp += 1;
    }

    fn grow_to(&mut self, m: f32) {
        while m >= self.range() && self.exp < 127 {
            self.grow();
        }
    }

    pub fn add(&mut self, data: &[f32]) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in data.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return;
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.grow_to(lo.abs().max(hi.abs()));
        let r = self.range();
        let k = BINS as f32 / (2.0 * r);
        for &v in data.iter().filter(|v| v.is_finite()) {
            let b = ((v + r) * k) as usize;
            self.bins[b.min(BINS - 1)] += 1;
        }
        self.count += data.len() as u64;
    }

    pub fn merge(&mut self, other: &Hist) {
        if other.count == 0 {
            return;
        }
        let mut o = other.clone();
        while o.exp < self.exp {
            o.grow();
        }
        while self.exp < o.exp {
            self.grow();
        }
        self.bins.iter_mut().zip(&o.bins).for_each(|(a, b)| *a += b);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.count += o.count;
    }

    fn bin_width(&self) -> f32 {
        2.0 * self.range() / BINS as f32
    }

    fn center(&self, i: usize) -> f32 {
        -self.range() + (i as f32 + 0.5) * self.bin_width()
    }

    /// The value below which a fraction `q` of the observations lie (bin resolution).
    pub fn quantile(&self, q: f64) -> f32 {
        let total: u64 = self.bins.iter().sum();
        let target = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, &c) in self.bins.iter().enumerate() {
            acc += c;
            if acc >= target {
                // The upper edge of the bin, never past the observed extremes.
                return (-self.range() + (i + 1) as f32 * self.bin_width()).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Expected squared error of quantizing the observed values with `qp`.
    fn sq_error(&self, qp: QParams) -> f64 {
        let zp = qp.zero_point as f32;
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let x = self.center(i);
                let q = (x / qp.scale + zp).round_ties_even().clamp(0.0, 255.0);
                let e = (q - zp) * qp.scale - x;
                (e * e) as f64 * c as f64
            })
            .sum()
    }

    /// The clipping range [lo, hi] the method picks.
    pub fn clip_range(&self, method: CalibMethod) -> (f32, f32) {
        if self.count == 0 {
            return (0.0, 1.0);
        }
        match method {
            CalibMethod::Minmax => (self.min, self.max),
            CalibMethod::Percentile(p) => {
                let p = (p / 100.0).clamp(0.5, 1.0);
                (self.quantile(1.0 - p).min(0.0).max(self.min), self.quantile(p))
            }
            CalibMethod::Mse => {
                let mut best = (f64::INFINITY, (self.min, self.max));
                // The top clip matters most (the long tail of post-SiLU maps); the bottom is
                // tried at a few fractions of the minimum.
                for i in 0..=40 {
                    let hi = self.max * (1.0 - i as f32 * 0.02);
                    for lo_frac in [1.0f32, 0.8, 0.6, 0.4] {
                        let lo = self.min * lo_frac;
                        let qp = qparams_for_range(lo, hi);
                        let e = self.sq_error(qp);
                        if e < best.0 {
                            best = (e, (lo, hi));
                        }
                    }
                }
                best.1
            }
        }
    }
}

/// u8 asymmetric quantization covering [lo, hi] (widened to include 0, which must be exact).
pub fn qparams_for_range(lo: f32, hi: f32) -> QParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = hi - lo;
    if !(span.is_finite() && span > 1e-12) {
        // A constant-zero tensor: any scale represents it exactly.
        return QParams { scale: 1.0 / 255.0, zero_point: 0 };
    }
    let scale = span / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    QParams { scale, zero_point }
}

/// The network input: `pixel / 255` is exactly `QParams { scale: 1/255, zero_point: 0 }` of the
/// (rounded) pixel.
pub const INPUT_QPARAMS: QParams = QParams { scale: 1.0 / 255.0, zero_point: 0 };

/// Collects a [`Hist`] of every conv's input over the forward passes it sees.
#[derive(Default)]
pub struct StatsObserver {
    stats: Mutex<HashMap<String, Hist>>,
}

impl StatsObserver {
    pub fn into_stats(self) -> HashMap<String, Hist> {
        self.stats.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for StatsObserver {
    fn conv(&self, name: &str, inputs: &[Fmap], _residual: Option<&Fmap>, _output: &Fmap) {
        // Histogram outside the lock (the head's branches run in parallel).
        let mut h = Hist::default();
        for p in inputs {
            let Ok(t) = p.to_float(DType::F32).and_then(|t| Ok(t.contiguous()?)) else { continue };
            let _ = with_cpu_data(&t, |d| h.add(d));
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.entry(name.to_string()).or_default().merge(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_grow_and_merge_exactly() {
        let mut a = Hist::default();
        a.add(&[0.1, 0.2, 0.3]);
        let mut b = Hist::default();
        b.add(&[5.0, -1.0]);
        a.merge(&b);
        assert_eq!((a.count, a.min, a.max), (5, -1.0, 5.0));
        assert_eq!(a.bins.iter().sum::<u64>(), 5);
        assert!(a.range() > 5.0 && a.range() <= 8.0);
        // Growing keeps every count.
        a.grow();
        assert_eq!(a.bins.iter().sum::<u64>(), 5);
    }

    #[test]
    fn percentile_clips_the_tail_and_minmax_does_not() {
        let mut h = Hist::default();
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(50.0); // one outlier
        h.add(&v);
        assert_eq!(h.clip_range(CalibMethod::Minmax), (0.0, 50.0));
        let (lo, hi) = h.clip_range(CalibMethod::Percentile(99.99));
        assert!(lo == 0.0 && (0.99..1.01).contains(&hi), "{lo} {hi}");
        let (_, hi) = h.clip_range(CalibMethod::Mse);
        assert!(hi < 50.0, "mse keeps the outlier's range: {hi}");
    }

    #[test]
    fn qparams_cover_the_range_with_an_integer_zero_point() {
        let q = qparams_for_range(-0.28, 6.0);
        let deq = |v: u8| (v as f32 - q.zero_point as f32) * q.scale;
        // Real 0 is the integer zero point (exact); the ends land within half a step.
        assert_eq!(q.zero_point, 11);
        assert!((deq(0) + 0.28).abs() <= q.scale / 2.0 && (deq(255) - 6.0).abs() <= q.scale / 2.0, "{q:?}");
        assert_eq!(qparams_for_range(0.5, 2.0).zero_point, 0);
        assert_eq!(qparams_for_range(-2.0, -0.5).zero_point, 255);
    }
}
