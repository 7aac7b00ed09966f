#![doc = include_str!("../README.md")]

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
