//! Decodes the first N JPEG frames of a folder with perch's own decoder (perch_preprocess, the one
//! the replay source uses) and writes each as raw RGB8 bytes, `NNNNNN.rgb`, plus `frames.json`
//! (`{"width", "height", "files": [...]}`). The live image-source test publishes these as
//! `sensor_msgs/Image` rgb8, so perch subscribed to ROS 2 sees exactly the pixels its folder replay
//! sees, and the detections of the two runs can be compared closely.
//!
//! ```text
//! cargo run -p perch-ros2 --example decode_frames -- datasets/vtest/img1 20 /tmp/frames
//! ```

use std::path::PathBuf;

use anyhow::Context;
use perch_pipeline::ImageBuf;
use perch_preprocess::{DecodeLimits, ImageDecoder};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: decode_frames FOLDER N OUT_DIR";
    let folder = PathBuf::from(args.next().context(usage)?);
    let n: usize = args.next().context(usage)?.parse().context("N must be a number")?;
    let out = PathBuf::from(args.next().context(usage)?);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    files.sort();
    anyhow::ensure!(files.len() >= n, "{} has {} JPEG files, fewer than {n}", folder.display(), files.len());
    let mut decoder = ImageDecoder::new(DecodeLimits::default());
    let mut image = ImageBuf::default();
    let mut names = Vec::new();
    let (mut width, mut height) = (0, 0);
    for (i, path) in files.iter().take(n).enumerate() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        decoder.decode(&bytes, &mut image).with_context(|| path.display().to_string())?;
        (width, height) = (image.width, image.height);
        let name = format!("{i:06}.rgb");
        std::fs::write(out.join(&name), &image.data)?;
        names.push(serde_json::json!({ "raw": name, "jpeg": path.display().to_string() }));
    }
    let index = serde_json::json!({ "width": width, "height": height, "files": names });
    std::fs::write(out.join("frames.json"), serde_json::to_vec_pretty(&index)?)?;
    println!("decode_frames: {n} frames of {width}x{height} in {}", out.display());
    Ok(())
}
