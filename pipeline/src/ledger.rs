//! Where every frame ends: published, or dropped with a reason. Lock-free counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::frame::Frame;

/// Why a frame did not reach the end of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Replaced in a `keep_latest` queue by a newer frame before anyone consumed it.
    Stale,
    /// Reached a stage after its end-to-end deadline.
    Deadline,
    /// The source could not decode it (corrupt or unreadable file).
    DecodeError,
    /// A stage returned an error (or panicked) while processing it.
    StageError,
    /// Still in flight when the run was interrupted.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 5] =
        [DropReason::Stale, DropReason::Deadline, DropReason::DecodeError, DropReason::StageError, DropReason::Shutdown];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Stale => "stale",
            DropReason::Deadline => "deadline",
            DropReason::DecodeError => "decode_error",
            DropReason::StageError => "stage_error",
            DropReason::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of frames by fate. Shared by every thread of a run.
#[derive(Debug, Default)]
pub struct Ledger {
    captured: AtomicU64,
    published: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

/// A consistent-enough copy of the ledger for reporting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSnapshot {
    pub captured: u64,
    pub published: u64,
    pub dropped: std::collections::BTreeMap<DropReason, u64>,
}

impl LedgerSnapshot {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
    /// `captured == published + Σ dropped`: every frame that entered ended exactly once.
    pub fn balanced(&self) -> bool {
        self.captured == self.published + self.dropped_total()
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
    /// The invariant as one human line.
    pub fn invariant_line(&self) -> String {
        format!(
            "invariant: captured {} == published {} + dropped {} ... {}",
            self.captured,
            self.published,
            self.dropped_total(),
            if self.balanced() { "OK" } else { "VIOLATED" }
        )
    }
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame entered the pipeline (counted before it can end, so the books never run negative).
    pub fn captured(&self) {
        self.captured.fetch_add(1, Ordering::SeqCst);
    }

    /// The frame reached the end of the pipeline. Consumes it: it cannot end twice.
    pub fn publish(&self, frame: Frame) {
        drop(frame);
        self.published.fetch_add(1, Ordering::SeqCst);
    }

    /// The frame is dropped for `reason`. Consumes it: it cannot end twice.
    pub fn drop_frame(&self, frame: Frame, reason: DropReason) {
        drop(frame);
        self.count_drop(reason);
    }

    /// A frame that never got an envelope (e.g. failed to decode) was dropped.
    pub fn count_drop(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> LedgerSnapshot {
        let dropped = DropReason::ALL
            .iter()
            .map(|&r| (r, self.dropped[r.index()].load(Ordering::SeqCst)))
            .collect();
        LedgerSnapshot {
            captured: self.captured.load(Ordering::SeqCst),
            published: self.published.load(Ordering::SeqCst),
            dropped,
        }
    }
}
