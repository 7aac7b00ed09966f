#![doc = include_str!("../README.md")]

pub mod camera;
pub mod pacing;
pub mod replay;
pub mod seqinfo;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use camera::{CameraFormat, DeviceSpec, Reconnect};
pub use pacing::{Pacer, Pacing};
pub use replay::ReplaySource;
pub use seqinfo::SeqInfo;

/// Which kind of source feeds the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A folder of jpg/png frames in name order, optionally with a MOT-style `seqinfo.ini`.
    #[default]
    Replay,
    /// A V4L2 camera (USB/UVC, or a CSI bridge that speaks V4L2): `device`, `width`, `height`,
    /// `fps`, `format`, `timeout_ms`, `reconnect_ms`, `reconnect`.
    Camera,
}

/// `[source]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Sequence folder: holds `seqinfo.ini` (and its `imDir`), or the images themselves.
    pub path: PathBuf,
    /// `realtime` delivers at the recorded frame rate (as a camera would); `max` as fast as the pipeline takes them.
    pub pacing: Pacing,
    /// Frame rate for `realtime` when the folder has no `seqinfo.ini` (or to override it).
    pub fps: Option<f64>,
    /// Start again at `start_frame` after the last frame, until interrupted.
    #[serde(rename = "loop")]
    pub looping: bool,
    /// First frame to deliver, 0-based position in the sorted file list.
    pub start_frame: u64,
    /// Stop before this frame (exclusive, 0-based); default: the end of the sequence. A camera stops
    /// before the frame with this index (its frames are numbered by the driver, lost ones included).
    pub end_frame: Option<u64>,
    /// Most pixels (width x height) a frame may claim; checked from the image header before any
    /// buffer is sized. A larger frame is a `decode_error` naming the file.
    pub max_pixels: u64,
    /// Camera: an index (`0`), a node (`/dev/video2`) or a stable link (`/dev/v4l/by-id/...`); default `0`.
    pub device: Option<DeviceSpec>,
    /// Camera: frame size to ask for (both or neither; default: the offered size nearest 640x480).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Camera: `auto` (default), `mjpeg` or `yuyv`.
    pub format: Option<CameraFormat>,
    /// Camera: no frame for this long ends the stream and starts reconnecting (default 2000).
    pub timeout_ms: Option<u64>,
    /// Camera: time between reconnect attempts (default 1000).
    pub reconnect_ms: Option<u64>,
    /// Camera: reconnect attempts before giving up, or `"always"` (default).
    pub reconnect: Option<Reconnect>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::Replay,
            path: PathBuf::from("datasets/vtest"),
            pacing: Pacing::Realtime,
            fps: None,
            looping: false,
            start_frame: 0,
            end_frame: None,
            max_pixels: perch_preprocess::DEFAULT_MAX_PIXELS,
            device: None,
            width: None,
            height: None,
            format: None,
            timeout_ms: None,
            reconnect_ms: None,
            reconnect: None,
        }
    }
}

/// Highest frame rate `source.fps` accepts (a high-speed camera; beyond it the period is below 0.1 ms).
pub const MAX_FPS: f64 = 10_000.0;
/// Lowest: one frame every 1000 s (time-lapse). Below it the period overflows a `Duration`
/// (found by fuzzing: `source.fps = 1e-300` passed a "> 0" check).
pub const MIN_FPS: f64 = 0.001;

impl SourceConfig {
    /// Check every key on its own; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(f) = self.fps {
            anyhow::ensure!(
                f.is_finite() && (MIN_FPS..=MAX_FPS).contains(&f),
                "source.fps = {f}: must be a frame rate from {MIN_FPS} to {MAX_FPS} frames per second"
            );
        }
        anyhow::ensure!(self.max_pixels > 0, "source.max_pixels = 0: must be at least 1 (default {})", perch_preprocess::DEFAULT_MAX_PIXELS);
        if let Some(end) = self.end_frame {
            anyhow::ensure!(
                end > self.start_frame,
                "source.end_frame = {end} must be greater than source.start_frame = {}",
                self.start_frame
            );
        }
        Ok(())
    }
}

/// Open the configured source on the system clock.
pub fn open(cfg: &SourceConfig) -> anyhow::Result<Box<dyn perch_pipeline::Source>> {
    match cfg.kind {
        SourceKind::Replay => {
            if let Some(key) = camera::settings::camera_keys_set(cfg).first() {
                anyhow::bail!(
                    "source.{key} is a camera key, but source.kind = \"replay\": set source.kind = \"camera\" \
                     (or run with --source 0 / --source /dev/video0)"
                );
            }
            Ok(Box::new(ReplaySource::open(cfg, Arc::new(perch_pipeline::SystemClock))?))
        }
        SourceKind::Camera => camera::open(cfg),
    }
}
