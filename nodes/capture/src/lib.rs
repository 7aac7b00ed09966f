#![doc = include_str!("../README.md")]

pub mod camera;
pub mod keys;
pub mod pacing;
pub mod replay;
pub mod seqinfo;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use camera::{CameraFormat, DeviceSpec, Reconnect};
pub use pacing::{Pacer, Pacing};
pub use replay::ReplaySource;
pub use seqinfo::SeqInfo;
pub use perch_pipeline::ImageMessage;
pub use stream::{RtspTransport, NO_VIDEO_SUPPORT};

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
    /// A video file (`path`: .mp4, .mkv, .avi, .mov, ...) or a network stream (`url`: `rtsp://...`),
    /// decoded by GStreamer (cargo feature `video`).
    Video,
    /// A GStreamer pipeline of your own (`pipeline`, ending in an `appsink`): CSI cameras on a Jetson,
    /// hardware decoders (cargo feature `video`).
    Gstreamer,
    /// A ROS 2 image topic (`topic`: `sensor_msgs/Image` or `sensor_msgs/CompressedImage`); the
    /// published detections carry each image's header (cargo feature `ros2` of the binary).
    Ros2,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Replay => "replay",
            SourceKind::Camera => "camera",
            SourceKind::Video => "video",
            SourceKind::Gstreamer => "gstreamer",
            SourceKind::Ros2 => "ros2",
        }
    }
}

/// `[source]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Replay: the sequence folder (holds `seqinfo.ini` and its `imDir`, or the images themselves).
    /// Video: the file.
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
    /// Replay, video file: first frame as a time in seconds (instead of `start_frame`).
    pub start_s: Option<f64>,
    /// Replay, video file: stop before this time in seconds (instead of `end_frame`).
    pub end_s: Option<f64>,
    /// Video: a network stream instead of a file, `rtsp://host[:port]/path` (credentials as `rtsp://user:pass@...`).
    pub url: Option<String>,
    /// Video stream: RTSP transport, `tcp` (default: one connection, works through NAT and firewalls)
    /// or `udp` (lower latency on a clean link; lost packets are lost frames).
    pub transport: Option<RtspTransport>,
    /// Video stream: the jitter buffer, milliseconds of reordering/delay tolerance (default 200).
    pub latency_ms: Option<u64>,
    /// GStreamer: the pipeline, in `gst-launch-1.0` syntax, ending in an `appsink`.
    pub pipeline: Option<String>,
    /// ROS 2: the image topic, e.g. `/camera/image_raw` or `/camera/image_raw/compressed`.
    pub topic: Option<String>,
    /// ROS 2: `image` (`sensor_msgs/Image`) or `compressed` (`sensor_msgs/CompressedImage`); default:
    /// `compressed` when the topic ends in `/compressed` (image_transport's naming), else `image`.
    pub message: Option<ImageMessage>,
    /// ROS 2: the subscription's QoS; each key defaults to the sensor-data profile (best effort, keep last 1, volatile).
    pub qos: Option<perch_pipeline::QosOverrides>,
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
            start_s: None,
            end_s: None,
            url: None,
            transport: None,
            latency_ms: None,
            pipeline: None,
            topic: None,
            message: None,
            qos: None,
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

/// Open the configured source on the system clock. `kind = "ros2"` is opened by the binary (the
/// ROS 2 node belongs to `perch-ros2`); here it is an error.
pub fn open(cfg: &SourceConfig) -> anyhow::Result<Box<dyn perch_pipeline::Source>> {
    keys::check(cfg)?;
    match cfg.kind {
        SourceKind::Replay => Ok(Box::new(ReplaySource::open(cfg, Arc::new(perch_pipeline::SystemClock))?)),
        SourceKind::Camera => camera::open(cfg),
        SourceKind::Video | SourceKind::Gstreamer => stream::open(cfg),
        SourceKind::Ros2 => anyhow::bail!(
            "source.kind = \"ros2\" is opened with the ROS 2 node: this program was built without ROS 2 support"
        ),
    }
}
