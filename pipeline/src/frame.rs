//! The frame envelope that travels through the pipeline, and the payload types it carries.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::letterbox::Letterbox;
use crate::pool::Pooled;

/// Most stages a pipeline can have (fixed so the stamps need no allocation).
pub const MAX_STAGES: usize = 12;

/// Pixel layouts a source can deliver. Preprocessing converts any of them to the model tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    Rgb8,
    Bgr8,
    Rgba8,
    Gray8,
    /// YUYV 4:2:2 packed (YUY2), what most USB cameras deliver.
    Yuyv,
    /// Y plane followed by interleaved UV plane at half resolution (CSI cameras, hardware decoders).
    Nv12,
}

impl PixelFormat {
    /// Bytes needed for a tightly packed image of this format.
    pub fn buffer_len(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => w * h * 3,
            PixelFormat::Rgba8 => w * h * 4,
            PixelFormat::Gray8 => w * h,
            PixelFormat::Yuyv => w * h * 2,
            PixelFormat::Nv12 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }
}

/// A source image in a pooled buffer. `data` keeps its capacity between frames.
#[derive(Debug, Clone)]
pub struct ImageBuf {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Default for ImageBuf {
    fn default() -> Self {
        Self { format: PixelFormat::Rgb8, width: 0, height: 0, data: Vec::new() }
    }
}

impl ImageBuf {
    /// Set the geometry and size `data` for it, reusing the existing allocation when it is big enough.
    pub fn reshape(&mut self, format: PixelFormat, width: u32, height: u32) {
        self.format = format;
        self.width = width;
        self.height = height;
        self.data.resize(format.buffer_len(width, height), 0);
    }
}

/// The model input: f32, CHW, values 0..1. `data` keeps its capacity between frames.
#[derive(Debug, Clone, Default)]
pub struct TensorBuf {
    /// [channels, height, width]
    pub shape: [usize; 3],
    pub data: Vec<f32>,
    /// The letterbox whose padding `data` already holds: the preprocess stage then writes only the
    /// content rectangle of a frame with the same geometry (in a pipeline's steady state the
    /// pool's buffers keep their padding, ~40 % of a 16:9 frame's tensor). Anything else that
    /// writes into `data` must set this to `None`; [`TensorBuf::reshape`] to another shape does.
    pub padded_for: Option<crate::Letterbox>,
}

impl TensorBuf {
    pub fn reshape(&mut self, shape: [usize; 3]) {
        if shape != self.shape {
            self.padded_for = None;
        }
        self.shape = shape;
        self.data.resize(shape.iter().product(), 0.0);
    }
}

/// Axis-aligned box in source-image pixels: top-left and bottom-right corners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }
}

/// How old a detection is, seen from the frame that carries it: frames and source time between the
/// frame the detector ran on and this one. Zero for a box detected on this very frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionAge {
    pub frames: u32,
    /// Source time (`source_ts`) between the two frames, in milliseconds.
    pub ms: f32,
}

impl DetectionAge {
    pub const FRESH: DetectionAge = DetectionAge { frames: 0, ms: 0.0 };

    /// The age of a detection computed on `of`, seen from `now`.
    pub fn between(of: &FrameId, now: &FrameId) -> Self {
        Self {
            frames: now.seq.saturating_sub(of.seq).min(u32::MAX as u64) as u32,
            ms: now.source_ts.saturating_sub(of.source_ts).as_secs_f32() * 1000.0,
        }
    }
}

/// One detected (or tracked) object, always in source-image pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class_id: u32,
    /// Set by the tracker; `None` when tracking is off.
    pub track_id: Option<u64>,
    /// True when the box is a tracker prediction, not a detection made on this frame: the track was
    /// carried forward from its last detection (`age` frames ago).
    pub predicted: bool,
    /// How old the detection behind this box is (zero when `predicted` is false).
    pub age: DetectionAge,
}

impl Detection {
    /// A detection made on the frame that carries it (not tracked, not predicted).
    pub fn new(bbox: BBox, score: f32, class_id: u32) -> Self {
        Self { bbox, score, class_id, ..Default::default() }
    }
}

/// Which frame something belongs to: its sequence number and both of its clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameId {
    pub seq: u64,
    pub source_ts: Duration,
    pub captured_at: Instant,
}

/// What the source itself says about a frame, for sources that carry it (a ROS 2 image's
/// `std_msgs/Header`): outputs echo it so consumers can pair results with the input image.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceHeader {
    /// The image's own timestamp (ROS `header.stamp`: since the Unix epoch, or simulation time).
    pub stamp: Option<Duration>,
    /// The image's coordinate frame (ROS `header.frame_id`); empty when the source names none.
    /// Refilled in place per frame, so it keeps its allocation.
    pub frame_id: String,
}

impl SourceHeader {
    /// Set both fields, reusing the `frame_id` allocation.
    pub fn set(&mut self, stamp: Duration, frame_id: &str) {
        self.stamp = Some(stamp);
        self.frame_id.clear();
        self.frame_id.push_str(frame_id);
    }

    pub fn clear(&mut self) {
        self.stamp = None;
        self.frame_id.clear();
    }
}

/// Everything a frame owns that is recycled through the pool. Who writes which field: the table
/// in `pipeline/README.md`.
#[derive(Debug, Default)]
pub struct FrameData {
    pub image: ImageBuf,
    /// The source's own stamp and frame id of this image, when it has them (ROS 2 input).
    pub header: SourceHeader,
    pub tensor: TensorBuf,
    /// How `tensor` was cut from `image`; identity until preprocessing runs.
    pub letterbox: Letterbox,
    /// Before the tracker: the detector result riding with this frame (see `detections_of`).
    /// After it: the published tracks.
    pub detections: Vec<Detection>,
    /// True when `detections` were computed on this very frame. False when the detector skipped
    /// the frame or its result belongs to an earlier frame: a tracker then predicts (coasts).
    pub detections_fresh: bool,
    /// The frame `detections` were computed on, when a detector result rides with this frame:
    /// this frame (`detections_fresh`), or an earlier one whose result arrived late (the async
    /// schedules). `None`: no detector result came with this frame.
    pub detections_of: Option<FrameId>,
    /// Set by the tracker: the age of the newest detection folded into this frame's output
    /// (`None` until any detection has been). Fresh frames have age zero.
    pub detection_age: Option<DetectionAge>,
}

impl FrameData {
    /// Clear per-frame state while keeping every allocation.
    pub fn clear(&mut self) {
        self.detections.clear();
        self.detections_fresh = false;
        self.detections_of = None;
        self.detection_age = None;
        self.header.clear();
        self.letterbox = Letterbox::default();
    }

    /// No detector result rides with this frame.
    pub fn clear_detections(&mut self) {
        self.detections.clear();
        self.detections_fresh = false;
        self.detections_of = None;
    }
}

/// When a frame entered and left one stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageStamp {
    pub enter: Option<Instant>,
    pub leave: Option<Instant>,
}

/// The envelope: identity, time and deadline, plus the pooled payload (reachable through `Deref`).
#[derive(Debug)]
pub struct Frame {
    /// Position in the capture order, starting at 0 and counting frames that failed to decode.
    pub seq: u64,
    /// Index of the frame in its source (file number, camera sequence), for replay and ground truth.
    pub source_index: u64,
    /// Timestamp given by the source (dataset time or camera timestamp), from the start of the stream.
    pub source_ts: Duration,
    /// Monotonic instant at which the capture stage produced the frame.
    pub captured_at: Instant,
    /// `captured_at + budget`: past this instant the frame is no longer worth processing.
    pub deadline: Instant,
    pub stamps: [StageStamp; MAX_STAGES],
    pub data: Pooled,
}

impl Frame {
    /// A frame captured at `captured_at`, due `budget` later, with no stage stamps yet.
    pub fn new(seq: u64, source_index: u64, source_ts: Duration, captured_at: Instant, budget: Duration, data: Pooled) -> Self {
        // Budgets are validated to 24 h; a library caller's Duration::MAX must not panic.
        let deadline = captured_at.checked_add(budget).unwrap_or(captured_at + Duration::from_secs(86_400 * 365));
        Self { seq, source_index, source_ts, captured_at, deadline, stamps: Default::default(), data }
    }

    pub fn is_late(&self, now: Instant) -> bool {
        now > self.deadline
    }

    /// This frame's identity, to stamp results computed on it.
    pub fn id(&self) -> FrameId {
        FrameId { seq: self.seq, source_ts: self.source_ts, captured_at: self.captured_at }
    }

    /// Put a detector result computed on frame `of` on this frame (`detections` already written).
    pub fn mark_detections(&mut self, of: FrameId) {
        self.data.detections_fresh = of.seq == self.seq;
        self.data.detections_of = Some(of);
    }
}

impl Deref for Frame {
    type Target = FrameData;
    fn deref(&self) -> &FrameData {
        &self.data
    }
}

impl DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut FrameData {
        &mut self.data
    }
}
