#![doc = include_str!("../README.md")]

pub mod assign;
pub mod corrupt;
pub mod eval;
pub mod kalman;
pub mod late;
pub mod mot;
pub mod replay;
pub mod simulate;
pub mod stage;
pub mod tracker;

pub use stage::{TrackConfig, TrackStage};
pub use late::{Input, LateOutcome, LateTracker};
pub use tracker::{Det, TrackOut, Tracker, TrackerKind, TrackerParams, TrackerState};
