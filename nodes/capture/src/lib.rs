//! perch's capture stage: where frames come from.
//!
//! Replayed image sequences ([`replay::ReplaySource`]) and V4L2 cameras ([`camera`], nokhwa's backend,
//! cargo feature `camera`). Video files slot in as a further [`SourceConfig`] kind implementing
//! [`perch_pipeline::Source`].

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
