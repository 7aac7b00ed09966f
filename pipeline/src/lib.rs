//! perch's runtime: frames with deadlines, pooled buffers, one thread per stage joined by bounded
//! lock-free queues, accounting of every frame, latency metrics and the run report.

pub mod config;
pub mod delay;
pub mod frame;
pub mod ledger;
pub mod letterbox;
pub mod live;
pub mod metrics;
pub mod params;
pub mod pool;
pub mod queue;
pub mod runtime;
pub mod source;
pub mod stage;

pub use config::{ConfigError, RuntimeConfig, StageOverrides, StageRuntimeConfig};
pub use frame::{BBox, Detection, Frame, FrameData, ImageBuf, PixelFormat, StageStamp, TensorBuf, MAX_STAGES};
pub use ledger::{DropReason, Ledger, LedgerSnapshot};
pub use letterbox::Letterbox;
pub use live::{LiveSnapshot, LiveStats};
pub use metrics::{LatencySummary, RunReport, StageReport};
pub use params::LiveParams;
pub use pool::{FramePool, Pooled};
pub use queue::QueuePolicy;
pub use runtime::{Pipeline, StageSlot};
pub use source::{Clock, DeviceInfo, Source, SourceEvent, SourceInfo, SystemClock, VirtualClock};
pub use stage::{Flow, Stage, StartContext, Tap};
