//! `[rerun]` in perch's TOML config.

use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Where the recording goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sink {
    /// No recording, no logging thread, no cost.
    #[default]
    Off,
    /// Write an `.rrd` file at `path`.
    Save,
    /// Stream over gRPC to a viewer already listening at `addr` (`rerun` started by hand).
    Connect,
    /// Start the `rerun` viewer found on `PATH` and stream to it.
    Spawn,
}

/// How the source image is logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageMode {
    /// `EncodedImage` (JPEG at `jpeg_quality`): ~10x lighter than raw pixels.
    #[default]
    Jpeg,
    /// `Image` with the source's own pixel layout (RGB, BGR, RGBA, gray, YUYV, NV12).
    Raw,
    /// No image: boxes, trails and metrics only.
    None,
}

/// Configuration of the Rerun visualizer tap (`[rerun]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerunConfig {
    /// `off` | `save` | `connect` | `spawn`.
    pub sink: Sink,
    /// `.rrd` file written by `sink = "save"`.
    pub path: PathBuf,
    /// gRPC proxy URL of a running viewer, for `sink = "connect"`.
    pub addr: String,
    /// `jpeg` | `raw` | `none`.
    pub image: ImageMode,
    /// 1..=100, for `image = "jpeg"`.
    pub jpeg_quality: u8,
    /// Frames of history drawn behind each track (0 turns trails off).
    pub trail_len: usize,
    /// Frames waiting for the logging thread (1 or 2); a newer frame replaces the oldest.
    pub queue_depth: usize,
}

impl Default for RerunConfig {
    fn default() -> Self {
        Self {
            sink: Sink::Off,
            path: PathBuf::from("perch.rrd"),
            addr: rerun::DEFAULT_CONNECT_URL.to_string(),
            image: ImageMode::Jpeg,
            jpeg_quality: 75,
            trail_len: 30,
            queue_depth: 2,
        }
    }
}

/// Longest trail we agree to keep (memory and drawing cost grow with it).
pub const MAX_TRAIL_LEN: usize = 1000;

impl RerunConfig {
    /// Check the values serde cannot; errors name the key and what is accepted.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=100).contains(&self.jpeg_quality) {
            bail!("rerun.jpeg_quality = {}: expected 1..=100", self.jpeg_quality);
        }
        if !(1..=2).contains(&self.queue_depth) {
            bail!("rerun.queue_depth = {}: expected 1 or 2", self.queue_depth);
        }
        if self.trail_len > MAX_TRAIL_LEN {
            bail!("rerun.trail_len = {}: expected 0..={MAX_TRAIL_LEN}", self.trail_len);
        }
        if self.sink == Sink::Save && self.path.as_os_str().is_empty() {
            bail!("rerun.path is empty: sink = \"save\" needs a file name such as \"perch.rrd\"");
        }
        if self.sink == Sink::Connect && !self.addr.starts_with("rerun") {
            bail!(
                "rerun.addr = {:?}: expected a Rerun gRPC proxy URL such as {:?}",
                self.addr,
                rerun::DEFAULT_CONNECT_URL
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_jpeg_and_documented_values() {
        let c = RerunConfig::default();
        assert_eq!(c.sink, Sink::Off);
        assert_eq!(c.path, PathBuf::from("perch.rrd"));
        assert_eq!(c.addr, "rerun+http://127.0.0.1:9876/proxy");
        assert_eq!(c.image, ImageMode::Jpeg);
        c.validate().unwrap();
    }

    #[test]
    fn validate_names_the_key() {
        let c = RerunConfig { jpeg_quality: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("rerun.jpeg_quality"));
        let c = RerunConfig { queue_depth: 3, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("rerun.queue_depth"));
        let c = RerunConfig { sink: Sink::Connect, addr: "localhost:9876".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("rerun.addr"));
    }
}
