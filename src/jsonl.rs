//! `--detections FILE`: every published frame's detections as one JSON line, for scripts and tests.
//!
//! Each line goes to the file with one `write` as soon as its frame is published (no user-space
//! buffer: nothing is lost when the process ends, and a reader sees whole lines). The first failed
//! write stops the file at its last whole line; every later frame is counted as `lost`, and `stop`
//! fails, so the run exits with [`crate::outputs::EXIT_OUTPUT_LOST`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use perch_pipeline::{Frame, StartContext, Tap};
use serde::Serialize;

use crate::outputs;

pub struct JsonlTap {
    path: PathBuf,
    file: File,
    /// The line being written, reused between frames.
    line: Vec<u8>,
    class_names: Option<Arc<[String]>>,
    written: u64,
    /// Bytes of whole lines in the file.
    bytes: u64,
    lost: u64,
    first_error: Option<std::io::Error>,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    source_index: u64,
    source_ts_s: f64,
    /// The detector ran on this frame (its boxes rest on its own detection).
    fresh: bool,
    /// Age of the newest detection behind this frame's boxes (`null` before the first one).
    detection_age: Option<Age>,
    detections: Vec<Det<'a>>,
}

#[derive(Serialize)]
struct Age {
    frames: u32,
    ms: f32,
}

#[derive(Serialize)]
struct Det<'a> {
    /// x1, y1, x2, y2 in source pixels.
    bbox: [f32; 4],
    class_id: u32,
    class: Option<&'a str>,
    score: f32,
    track_id: Option<u64>,
    /// The box is the tracker's prediction, not a detection made on this frame.
    predicted: bool,
    /// Frames and source milliseconds since the detection behind the box (0 when not predicted).
    age_frames: u32,
    age_ms: f32,
}

impl JsonlTap {
    /// Create (truncate) the file now, before the run starts, creating its folders.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = outputs::create(path, "--detections")?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            line: Vec::with_capacity(4096),
            class_names: None,
            written: 0,
            bytes: 0,
            lost: 0,
            first_error: None,
        })
    }

    /// Write `self.line` whole, or cut the file back to its last whole line.
    fn write_line(&mut self) {
        if self.first_error.is_some() {
            self.lost += 1;
            return;
        }
        let _guard = outputs::write_guard();
        match self.file.write_all(&self.line) {
            Ok(()) => {
                self.written += 1;
                self.bytes += self.line.len() as u64;
            }
            Err(e) => {
                tracing::error!("--detections {}: writing failed ({e}); later frames are not written", self.path.display());
                // A partial line would be a corrupt record: keep only whole lines.
                let _ = self.file.set_len(self.bytes);
                self.first_error = Some(e);
                self.lost += 1;
            }
        }
    }
}

impl Tap for JsonlTap {
    fn name(&self) -> &'static str {
        "detections_jsonl"
    }

    fn start(&mut self, ctx: &StartContext) -> anyhow::Result<()> {
        self.class_names = ctx.class_names.clone();
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        let names = self.class_names.as_deref();
        let detections = frame
            .detections
            .iter()
            .map(|d| Det {
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                class_id: d.class_id,
                class: names.and_then(|n| n.get(d.class_id as usize)).map(|s| s.as_str()),
                score: d.score,
                track_id: d.track_id,
                predicted: d.predicted,
                age_frames: d.age.frames,
                age_ms: d.age.ms,
            })
            .collect();
        let age = if frame.detections_fresh { Some(perch_pipeline::DetectionAge::FRESH) } else { frame.detection_age };
        let line = Line {
            seq: frame.seq,
            source_index: frame.source_index,
            source_ts_s: frame.source_ts.as_secs_f64(),
            fresh: frame.detections_fresh,
            detection_age: age.map(|a| Age { frames: a.frames, ms: a.ms }),
            detections,
        };
        self.line.clear();
        // Serialising plain numbers and strings into a Vec cannot fail.
        if serde_json::to_writer(&mut self.line, &line).is_err() {
            self.lost += 1;
            return;
        }
        self.line.push(b'\n');
        self.write_line();
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Err(e) = self.file.sync_data() {
            // A regular file's data reached the disk or not; a pipe or /dev/null cannot sync.
            if self.first_error.is_none() && self.file.metadata().map(|m| m.is_file()).unwrap_or(false) {
                self.first_error = Some(e);
            }
        }
        if let Some(e) = &self.first_error {
            bail!(
                "--detections {}: {} of {} lines lost ({e}); the file holds the first {} whole lines",
                self.path.display(),
                self.lost,
                self.lost + self.written,
                self.written
            );
        }
        Ok(())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("written".into(), self.written), ("lost".into(), self.lost)]
    }
}
