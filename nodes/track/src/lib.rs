#![doc = include_str!("../README.md")]

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
