#![doc = include_str!("../README.md")]

pub mod pacing;
pub mod replay;
pub mod seqinfo;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
    /// Stop before this frame (exclusive, 0-based); default: the end of the sequence.
    pub end_frame: Option<u64>,
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
        }
    }
}

/// Open the configured source on the system clock.
pub fn open(cfg: &SourceConfig) -> anyhow::Result<Box<dyn perch_pipeline::Source>> {
    match cfg.kind {
        SourceKind::Replay => Ok(Box::new(ReplaySource::open(cfg, Arc::new(perch_pipeline::SystemClock))?)),
    }
}
