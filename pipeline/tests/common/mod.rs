//! Test doubles for runtime tests (never used by a shipped pipeline).
#![allow(dead_code)]

use std::time::Duration;

use perch_pipeline::{Flow, Frame, FrameData, PixelFormat, Source, SourceEvent, SourceInfo, Stage};

/// Yields `n` synthetic frames; every `decode_error_every`-th one (if non-zero) fails to decode.
pub struct CountingSource {
    pub n: u64,
    pub next: u64,
    pub live: bool,
    pub period: Duration,
    pub decode_error_every: u64,
}

impl CountingSource {
    pub fn new(n: u64) -> Self {
        Self { n, next: 0, live: false, period: Duration::ZERO, decode_error_every: 0 }
    }
}

impl Source for CountingSource {
    fn info(&self) -> SourceInfo {
        SourceInfo { name: "counting".into(), width: 8, height: 4, fps: None, frames: Some(self.n), ..Default::default() }
    }
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.next >= self.n {
            return SourceEvent::End;
        }
        let i = self.next;
        self.next += 1;
        if !self.period.is_zero() {
            std::thread::sleep(self.period);
        }
        if self.decode_error_every > 0 && i % self.decode_error_every == self.decode_error_every - 1 {
            return SourceEvent::DecodeError { source_index: i, what: "synthetic corrupt frame".into() };
        }
        data.image.reshape(PixelFormat::Rgb8, 8, 4);
        data.image.data[0] = i as u8;
        SourceEvent::Frame { source_index: i, source_ts: Duration::from_millis(i) }
    }
    fn is_live(&self) -> bool {
        self.live
    }
}

/// Sleeps, and fails every `fail_every`-th frame it sees.
pub struct SleepyStage {
    pub name: &'static str,
    pub delay: Duration,
    pub fail_every: u64,
    pub seen: u64,
}

impl SleepyStage {
    pub fn new(name: &'static str, delay: Duration) -> Self {
        Self { name, delay, fail_every: 0, seen: 0 }
    }
}

impl Stage for SleepyStage {
    fn name(&self) -> &'static str {
        self.name
    }
    fn process(&mut self, _frame: &mut Frame) -> anyhow::Result<Flow> {
        self.seen += 1;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.fail_every > 0 && self.seen % self.fail_every == 0 {
            anyhow::bail!("synthetic failure");
        }
        Ok(Flow::Continue)
    }
}
