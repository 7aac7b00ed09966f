#![doc = include_str!("../README.md")]

pub mod config;
pub mod delay;
pub mod fixtures;
pub mod frame;
pub mod ledger;
pub mod letterbox;
pub mod live;
pub mod metrics;
pub mod offload;
pub mod params;
pub mod pool;
pub mod qos;
pub mod queue;
pub mod runtime;
pub mod schedule;
pub mod source;
pub mod stage;
pub mod testing;

pub use config::{ConfigError, RuntimeConfig, StageOverrides, StageRuntimeConfig};
pub use frame::{BBox, Detection, DetectionAge, Frame, FrameData, FrameId, ImageBuf, PixelFormat, SourceHeader, StageStamp, TensorBuf, MAX_STAGES};
pub use ledger::{DropReason, Ledger, LedgerSnapshot};
pub use letterbox::Letterbox;
pub use live::{LiveSnapshot, LiveStats};
pub use metrics::{CountSummary, DetectionReport, LatencySummary, RunReport, StageReport, WorkerReport};
pub use offload::{Done, Offload, Timing, WorkerBoard, WorkerStats};
pub use params::LiveParams;
pub use pool::{FramePool, Pooled};
pub use qos::{DurabilityKind, ImageMessage, QosConfig, QosOverrides, ReliabilityKind};
pub use queue::QueuePolicy;
pub use runtime::{Pipeline, StageSlot};
pub use schedule::{FrameJob, LatencyEstimate, Schedule, ScheduleConfig, Scheduled};
pub use source::{Clock, DeviceInfo, Source, SourceEvent, SourceInfo, SystemClock, VirtualClock};
pub use stage::{Stage, StartContext, Tap};
