//! perch's track stage: ByteTrack and SORT over a constant-velocity Kalman filter (nalgebra),
//! coasting through frames without fresh detections, and a MOT metrics module (CLEAR MOT,
//! identity metrics, HOTA) that reproduces motmetrics' and TrackEval's numbers.

pub mod assign;
pub mod corrupt;
pub mod eval;
pub mod kalman;
pub mod mot;
pub mod replay;
pub mod stage;
pub mod tracker;

pub use stage::{TrackConfig, TrackStage};
pub use tracker::{Det, TrackOut, Tracker, TrackerKind, TrackerParams};
