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
}

impl TensorBuf {
    pub fn reshape(&mut self, shape: [usize; 3]) {
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

/// One detected (or tracked) object, always in source-image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class_id: u32,
    /// Set by the tracker; `None` when tracking is off.
    pub track_id: Option<u64>,
    /// True when the box is a tracker prediction without a fresh detection behind it (coasting).
    pub predicted: bool,
}

/// Everything a frame owns that is recycled through the pool.
#[derive(Debug, Default)]
pub struct FrameData {
    pub image: ImageBuf,
    pub tensor: TensorBuf,
    /// How `tensor` was cut from `image`; identity until preprocessing runs.
    pub letterbox: Letterbox,
    pub detections: Vec<Detection>,
    /// False when the detector did not run on this frame (skipped), so a tracker must coast.
    pub detections_fresh: bool,
}

impl FrameData {
    /// Clear per-frame state while keeping every allocation.
    pub fn clear(&mut self) {
        self.detections.clear();
        self.detections_fresh = false;
        self.letterbox = Letterbox::default();
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
    pub fn is_late(&self, now: Instant) -> bool {
        now > self.deadline
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
