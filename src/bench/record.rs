//! What a bench run records per published frame: a tap that keeps, for every frame, when it was
//! published, its end-to-end latency and each stage's time, in one flat preallocated buffer (the
//! run report keeps only percentiles; the bench needs the samples for windows, CDFs and jitter).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use perch_pipeline::{Frame, StartContext, Tap};

/// Columns of one sample: publish time (s since the step started), end to end (ms), flags (bit 0:
/// the boxes come from the frame's own detection; bit 1: the frame carries a detector result no
/// earlier published frame carried, on time or late), then one per stamp slot (capture, stage 1, ...), NaN where a stage did not stamp the frame.
#[derive(Debug)]
pub struct Samples {
    pub stamps: usize,
    pub data: Vec<f32>,
    /// Published frames whose detections were made on that frame.
    pub fresh: u64,
    /// Published frames that brought a new detector result.
    pub results: u64,
}

impl Samples {
    fn stride(&self) -> usize {
        3 + self.stamps
    }
    pub fn len(&self) -> usize {
        self.data.len() / self.stride()
    }
    pub fn published_s(&self, i: usize) -> f64 {
        f64::from(self.data[i * self.stride()])
    }
    pub fn end_to_end_ms(&self, i: usize) -> f64 {
        f64::from(self.data[i * self.stride() + 1])
    }
    pub fn fresh(&self, i: usize) -> bool {
        (self.data[i * self.stride() + 2] as u32) & 1 != 0
    }
    /// The frame brought a new detector result (the detector's output rate, fresh or late).
    pub fn new_result(&self, i: usize) -> bool {
        (self.data[i * self.stride() + 2] as u32) & 2 != 0
    }
    /// Stage time (enter to leave) of stamp slot `slot` (0 = capture), None if not stamped.
    pub fn stage_ms(&self, i: usize, slot: usize) -> Option<f64> {
        let v = self.data[i * self.stride() + 3 + slot];
        (!v.is_nan()).then_some(f64::from(v))
    }
    /// Indices of the frames published in `[from_s, to_s)`.
    pub fn window(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&i| (from_s..to_s).contains(&self.published_s(i)))
    }
}

/// The tap: samples go to a local buffer, handed to the shared slot at `stop`.
pub struct RecordTap {
    started: Instant,
    stamps: usize,
    local: Vec<f32>,
    fresh: u64,
    results: u64,
    last_result: Option<u64>,
    out: Arc<Mutex<Option<Samples>>>,
}

impl RecordTap {
    /// `expected` frames are preallocated, so recording does not allocate on the hot path until
    /// that many frames were published.
    pub fn new(started: Instant, stamps: usize, expected: usize) -> (Self, Arc<Mutex<Option<Samples>>>) {
        let out = Arc::new(Mutex::new(None));
        let local = Vec::with_capacity(expected * (3 + stamps));
        (Self { started, stamps, local, fresh: 0, results: 0, last_result: None, out: out.clone() }, out)
    }
}

impl Tap for RecordTap {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn start(&mut self, _ctx: &StartContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        let now = Instant::now();
        self.local.push(now.saturating_duration_since(self.started).as_secs_f32());
        self.local.push(now.saturating_duration_since(frame.captured_at).as_secs_f32() * 1e3);
        let of = frame.detections_of.map(|id| id.seq);
        let new_result = of.is_some() && of != self.last_result;
        if new_result {
            self.last_result = of;
            self.results += 1;
        }
        self.local.push((u32::from(frame.detections_fresh) | (u32::from(new_result) << 1)) as f32);
        for slot in 0..self.stamps {
            let s = frame.stamps.get(slot);
            let ms = match s.and_then(|s| Some(s.leave?.saturating_duration_since(s.enter?))) {
                Some(d) => d.as_secs_f32() * 1e3,
                None => f32::NAN,
            };
            self.local.push(ms);
        }
        if frame.detections_fresh {
            self.fresh += 1;
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let samples = Samples { stamps: self.stamps, data: std::mem::take(&mut self.local), fresh: self.fresh, results: self.results };
        if let Ok(mut slot) = self.out.lock() {
            *slot = Some(samples);
        }
        Ok(())
    }
}
