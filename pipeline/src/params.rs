//! Detector thresholds that can change while perch runs (e.g. through ROS 2 parameter services),
//! shared between their writer and the detect stage without locks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `conf` and `iou` as `f32` bits in atomics. The detect stage loads both at the start of each frame,
/// so a change applies from the next frame the detector starts.
#[derive(Debug)]
pub struct LiveParams {
    conf: AtomicU32,
    iou: AtomicU32,
    generation: AtomicU64,
}

impl Default for LiveParams {
    /// Ultralytics' defaults: `conf` 0.25, `iou` 0.7.
    fn default() -> Self {
        Self::new(0.25, 0.7)
    }
}

impl LiveParams {
    pub fn new(conf: f32, iou: f32) -> Self {
        Self { conf: AtomicU32::new(conf.to_bits()), iou: AtomicU32::new(iou.to_bits()), generation: AtomicU64::new(0) }
    }

    pub fn conf(&self) -> f32 {
        f32::from_bits(self.conf.load(Ordering::Relaxed))
    }

    pub fn iou(&self) -> f32 {
        f32::from_bits(self.iou.load(Ordering::Relaxed))
    }

    /// Number of accepted changes so far: lets a reader notice a change cheaply.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Set `conf`; a value outside 0..=1 (or NaN) is refused with a message for the caller.
    pub fn set_conf(&self, v: f64) -> Result<(), String> {
        let v = check_unit("conf", v)?;
        self.conf.store(v.to_bits(), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub fn set_iou(&self, v: f64) -> Result<(), String> {
        let v = check_unit("iou", v)?;
        self.iou.store(v.to_bits(), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// A finite fraction in 0..=1.
pub fn check_unit(name: &str, v: f64) -> Result<f32, String> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(format!("{name} must be a number in 0..=1, got {v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_read_back_and_refuse_out_of_range() {
        let p = LiveParams::new(0.3, 0.5);
        assert_eq!((p.conf(), p.iou(), p.generation()), (0.3, 0.5, 0));
        p.set_conf(0.6).unwrap();
        p.set_iou(0.7).unwrap();
        assert_eq!((p.conf(), p.iou(), p.generation()), (0.6, 0.7, 2));
        assert!(p.set_conf(1.5).unwrap_err().contains("0..=1"));
        assert!(p.set_iou(f64::NAN).is_err());
        assert_eq!(p.conf(), 0.6);
    }
}
