//! Bounded lock-free edges between stages, with a per-edge policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::ledger::{DropReason, Ledger};

/// How an edge behaves when its consumer is busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueuePolicy {
    /// Depth 1: a new frame replaces an unconsumed one, which is dropped as `stale`.
    /// Keeps a slow consumer on the newest frame instead of building lag.
    KeepLatest,
    /// Up to `capacity` frames wait; when full the producer waits (backpressure).
    Fifo { capacity: usize },
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy::KeepLatest
    }
}

impl QueuePolicy {
    /// Frames this edge can hold.
    pub fn capacity(self) -> usize {
        match self {
            QueuePolicy::KeepLatest => 1,
            QueuePolicy::Fifo { capacity } => capacity.max(1),
        }
    }
}

/// The producer side of an edge.
pub struct EdgeSender {
    tx: Sender<Frame>,
    /// keep_latest only: a receiver handle so the producer can evict the stale frame itself.
    evict: Option<Receiver<Frame>>,
    ledger: Arc<Ledger>,
    stale: Arc<AtomicU64>,
}

/// Build an edge: the sender, the receiver and the counter of frames it dropped as stale.
pub fn edge(policy: QueuePolicy, ledger: Arc<Ledger>) -> (EdgeSender, Receiver<Frame>, Arc<AtomicU64>) {
    let (tx, rx) = crossbeam_channel::bounded(policy.capacity());
    let evict = matches!(policy, QueuePolicy::KeepLatest).then(|| rx.clone());
    let stale = Arc::new(AtomicU64::new(0));
    (EdgeSender { tx, evict, ledger, stale: stale.clone() }, rx, stale)
}

impl EdgeSender {
    /// Hand `frame` to the consumer according to the policy. With `wait`, a keep_latest edge waits
    /// for room instead of evicting (used when the source is not live and must not lose frames).
    /// Returns the frame back if the consumer is gone.
    pub fn send(&self, frame: Frame, wait: bool) -> Result<(), Frame> {
        match (&self.evict, wait) {
            (Some(evict), false) => {
                let mut frame = frame;
                loop {
                    match self.tx.try_send(frame) {
                        Ok(()) => return Ok(()),
                        Err(TrySendError::Disconnected(f)) => return Err(f),
                        Err(TrySendError::Full(f)) => {
                            // The consumer may take the old one between our two calls: then there is room.
                            if let Ok(old) = evict.try_recv() {
                                self.stale.fetch_add(1, Ordering::Relaxed);
                                self.ledger.drop_frame(old, DropReason::Stale);
                            }
                            frame = f;
                        }
                    }
                }
            }
            _ => self.tx.send(frame).map_err(|e| e.into_inner()),
        }
    }
}
