//! Calibration frames: which files, their identity (hash), and the exact network input the
//! pipeline would build from each (image-crate decode to RGB8, then perch-preprocess's letterbox,
//! as the replay source and `perch detect` do).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use sha2::{Digest, Sha256};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The images of a calibration folder, sorted by name: the folder itself, or its `img1/` (a
/// MOT-style sequence such as `datasets/vtest`).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("calibration folder {} does not exist or is not a directory", dir.display());
    }
    let img1 = dir.join("img1");
    let root = if img1.is_dir() { img1 } else { dir.to_path_buf() };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("listing {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("calibration folder {} holds no .jpg/.jpeg/.png images (nor does its img1/)", dir.display());
    }
    Ok(files)
}

/// `n` frames spread evenly over `files` (all of them when `n` is 0 or at least their count).
pub fn spread(files: &[PathBuf], n: usize) -> Vec<PathBuf> {
    if n == 0 || n >= files.len() {
        return files.to_vec();
    }
    (0..n).map(|i| files[i * files.len() / n].clone()).collect()
}

/// sha256 over every frame's file name and bytes, in order: names the calibration set.
pub fn hash(files: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = Vec::new();
    for f in files {
        buf.clear();
        std::fs::File::open(f)
            .and_then(|mut r| r.read_to_end(&mut buf))
            .with_context(|| format!("reading calibration frame {}", f.display()))?;
        h.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        h.update((buf.len() as u64).to_le_bytes());
        h.update(&buf);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The folder the frames are in, as the report names it (their common parent).
pub fn folder_of(files: &[PathBuf]) -> String {
    let Some(first) = files.first().and_then(|f| f.parent()) else { return String::new() };
    let mut common = first.to_path_buf();
    for f in files {
        while !f.starts_with(&common) {
            if !common.pop() {
                return String::new();
            }
        }
    }
    common.display().to_string()
}

/// Decodes `path` and letterboxes it to `imgsz` into `tensor` (f32 CHW 0..1).
pub fn load_input(path: &Path, imgsz: u32, image: &mut ImageBuf, tensor: &mut TensorBuf) -> Result<()> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("opening calibration frame {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading calibration frame {}", path.display()))?
        .decode()
        .with_context(|| format!("calibration frame {}: not a decodable image", path.display()))?
        .into_rgb8();
    image.reshape(PixelFormat::Rgb8, img.width(), img.height());
    image.data.copy_from_slice(img.as_raw());
    perch_preprocess::letterbox_into(image, imgsz, imgsz, tensor)
        .with_context(|| format!("letterboxing calibration frame {}", path.display()))?;
    Ok(())
}
