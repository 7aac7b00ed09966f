//! How far a quantized model is from its f32 source: signal-to-quantization-noise ratios of the
//! network output and of every conv's output, accumulated over frames.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::DType;
use serde::Serialize;

use crate::model::conv::with_cpu_data;
use crate::model::fmap::{Fmap, Observer};

/// Σ signal² and Σ (signal - test)², weighted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Acc {
    pub signal: f64,
    pub noise: f64,
}

impl Acc {
    pub fn add(&mut self, reference: &[f32], test: &[f32]) {
        for (&r, &t) in reference.iter().zip(test) {
            self.signal += (r as f64).powi(2);
            self.noise += (r as f64 - t as f64).powi(2);
        }
    }

    /// 10 log10(signal / noise), capped at 120 dB (identical outputs).
    pub fn db(&self) -> f64 {
        if self.noise <= self.signal * 1e-12 {
            return 120.0;
        }
        10.0 * (self.signal / self.noise).log10()
    }
}

/// SQNR of the network output [4 + nc, N]: the class scores (sigmoid) over all anchors, and the
/// boxes (cx, cy, w, h in pixels) weighted per anchor by its best f32 class score, so that
/// background anchors (whose boxes are arbitrary and never reported) do not dominate.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputAcc {
    scores: Acc,
    boxes: Acc,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct OutputSqnr {
    pub scores_db: f64,
    pub boxes_db: f64,
}

impl OutputSqnr {
    /// The worse of the two: what ranks layer sensitivity.
    pub fn min_db(&self) -> f64 {
        self.scores_db.min(self.boxes_db)
    }
}

impl OutputAcc {
    pub fn add(&mut self, reference: &[f32], test: &[f32], nc: usize) {
        let n = reference.len() / (4 + nc);
        self.scores.add(&reference[4 * n..], &test[4 * n..]);
        for a in 0..n {
            let w = (0..nc).map(|c| reference[(4 + c) * n + a]).fold(0f32, f32::max) as f64;
            for r in 0..4 {
                let (x, y) = (reference[r * n + a] as f64, test[r * n + a] as f64);
                self.boxes.signal += w * x * x;
                self.boxes.noise += w * (x - y) * (x - y);
            }
        }
    }

    pub fn sqnr(&self) -> OutputSqnr {
        OutputSqnr { scores_db: self.scores.db(), boxes_db: self.boxes.db() }
    }
}

fn float_data(m: &Fmap) -> Option<Vec<f32>> {
    let t = m.to_float(DType::F32).ok()?.contiguous().ok()?;
    with_cpu_data(&t, |d| d.to_vec()).ok()
}

/// Records every conv's output (f32) of one forward pass of the reference model.
#[derive(Default)]
pub struct RecordOutputs {
    pub outputs: Mutex<HashMap<String, Vec<f32>>>,
}

impl Observer for RecordOutputs {
    fn conv(&self, name: &str, _inputs: &[Fmap], _residual: Option<&Fmap>, output: &Fmap) {
        if let Some(d) = float_data(output) {
            self.outputs.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), d);
        }
    }
}

/// Compares every conv's output (dequantized) with a recorded reference pass.
pub struct CompareOutputs<'a> {
    pub reference: &'a HashMap<String, Vec<f32>>,
    pub acc: Mutex<HashMap<String, Acc>>,
}

impl<'a> CompareOutputs<'a> {
    pub fn new(reference: &'a HashMap<String, Vec<f32>>) -> Self {
        Self { reference, acc: Mutex::default() }
    }
}

impl Observer for CompareOutputs<'_> {
    fn conv(&self, name: &str, _inputs: &[Fmap], _residual: Option<&Fmap>, output: &Fmap) {
        let (Some(r), Some(d)) = (self.reference.get(name), float_data(output)) else { return };
        let mut a = Acc::default();
        a.add(r, &d);
        let mut acc = self.acc.lock().unwrap_or_else(|p| p.into_inner());
        let e = acc.entry(name.to_string()).or_default();
        e.signal += a.signal;
        e.noise += a.noise;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_of_known_noise() {
        let r = vec![1.0f32; 1000];
        let t: Vec<f32> = r.iter().enumerate().map(|(i, v)| v + if i % 2 == 0 { 0.1 } else { -0.1 }).collect();
        let mut a = Acc::default();
        a.add(&r, &t);
        assert!((a.db() - 20.0).abs() < 1e-3, "{}", a.db());
        let mut b = Acc::default();
        b.add(&r, &r);
        assert_eq!(b.db(), 120.0);
    }
}
