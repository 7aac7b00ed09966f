//! `perch detect --save`: where annotated images go and how they are written.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use image::ImageEncoder as _;

/// `base/name`, or `base/name2`, `base/name3`, ... for the first that does not exist yet (as
/// Ultralytics numbers `runs/detect/predict`, `predict2`, ...); created.
pub fn next_run_dir(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut k = 1u32;
    loop {
        let dir = if k == 1 { base.join(name) } else { base.join(format!("{name}{k}")) };
        if !dir.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            return Ok(dir);
        }
        k += 1;
    }
}

/// Write an RGB8 image; the format follows the extension (`.png`, else JPEG at quality 90).
pub fn save_rgb(path: &Path, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = if ext == "png" {
        image::codecs::png::PngEncoder::new(&mut out).write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
    } else {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode(rgb, width, height, image::ExtendedColorType::Rgb8)
    };
    written.with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))
}

/// The output name of `input` in `dir`: its file name with a `.jpg` or `.png` extension (other image
/// types become `.jpg`), made unique with `_2`, `_3`, ... when two inputs share a name.
pub fn output_path(dir: &Path, input: &Path, taken: &mut std::collections::HashSet<PathBuf>) -> PathBuf {
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("image").to_string();
    let ext = match input.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "png",
        _ => "jpg",
    };
    let mut k = 1;
    loop {
        let name = if k == 1 { format!("{stem}.{ext}") } else { format!("{stem}_{k}.{ext}") };
        let p = dir.join(name);
        if taken.insert(p.clone()) {
            return p;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_count_up_like_ultralytics() {
        let base = std::env::temp_dir().join(format!("perch-runs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(next_run_dir(&base, "predict").unwrap(), base.join("predict"));
        assert_eq!(next_run_dir(&base, "predict").unwrap(), base.join("predict2"));
        assert_eq!(next_run_dir(&base, "predict").unwrap(), base.join("predict3"));
        assert!(base.join("predict2").is_dir());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn output_names_keep_the_input_name_and_never_collide() {
        let mut taken = Default::default();
        let d = Path::new("out");
        assert_eq!(output_path(d, Path::new("a/1.jpg"), &mut taken), d.join("1.jpg"));
        assert_eq!(output_path(d, Path::new("b/1.jpeg"), &mut taken), d.join("1_2.jpg"));
        assert_eq!(output_path(d, Path::new("c/x.PNG"), &mut taken), d.join("x.png"));
    }
}
