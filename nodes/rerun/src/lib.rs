//! perch's visualize stage: a pipeline [`Tap`](perch_pipeline::Tap) that logs every published frame
//! to Rerun (image, labelled boxes, track trails, per-stage latency, drops) from its own thread.
//!
//! ```no_run
//! use perch_rerun::{RerunConfig, RerunTap, Sink};
//! let cfg = RerunConfig { sink: Sink::Save, path: "out.rrd".into(), ..Default::default() };
//! if let Some(tap) = RerunTap::new(&cfg)? {
//!     // pipeline.taps.push(Box::new(tap));
//!     # drop(tap);
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```

mod blueprint;
pub mod config;
pub mod convert;
mod logger;
mod tap;
pub mod trails;

pub use blueprint::default_blueprint;
pub use config::{ImageMode, RerunConfig, Sink};
pub use logger::{paths, timelines};
pub use tap::RerunTap;
