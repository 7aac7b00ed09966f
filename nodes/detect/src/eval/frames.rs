//! Frame sets of an evaluation: the images of a folder (sorted by name), a selection of them, and
//! what the report says about them (folder, count, first and last name, a hash of their contents),
//! so a table names exactly which frames calibrated and which were held out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use perch_pipeline::{ImageBuf, PixelFormat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Which images of a folder: every `every`-th from `skip`, at most `limit` (0: all).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSelect {
    pub skip: usize,
    pub every: usize,
    pub limit: usize,
}

impl Default for FrameSelect {
    fn default() -> Self {
        Self { skip: 0, every: 1, limit: 0 }
    }
}

/// What a report records about a frame set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameSetInfo {
    pub dir: String,
    pub count: usize,
    pub first: String,
    pub last: String,
    /// Selection inside the folder (sorted by file name).
    pub skip: usize,
    pub every: usize,
    /// sha256 over the selected files' sha256s, in order.
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct FrameSet {
    pub info: FrameSetInfo,
    pub paths: Vec<PathBuf>,
    /// sha256 of each file (to prove two sets disjoint by content, not just by name).
    pub hashes: Vec<[u8; 32]>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// The JPEG/PNG files directly in `dir`, sorted by name.
pub fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).with_context(|| format!("reading frame folder {}", dir.display()))?;
    let mut v = Vec::new();
    for e in rd {
        let p = e.with_context(|| format!("reading frame folder {}", dir.display()))?.path();
        if p.is_file() && is_image(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

impl FrameSet {
    /// Select frames of `dir`; an empty selection is an error that says what the folder holds.
    pub fn select(dir: &Path, sel: &FrameSelect) -> anyhow::Result<Self> {
        ensure!(sel.every >= 1, "the frame step must be at least 1");
        let all = list_images(dir)?;
        if all.is_empty() {
            bail!("{}: no .jpg/.jpeg/.png frames in this folder", dir.display());
        }
        let mut paths: Vec<PathBuf> = all.iter().skip(sel.skip).step_by(sel.every).cloned().collect();
        if sel.limit > 0 {
            paths.truncate(sel.limit);
        }
        if paths.is_empty() {
            bail!("{}: the selection (skip {}, every {}) leaves no frame of the {} in the folder", dir.display(), sel.skip, sel.every, all.len());
        }
        let mut hashes = Vec::with_capacity(paths.len());
        let mut all_h = Sha256::new();
        for p in &paths {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let h: [u8; 32] = Sha256::digest(&bytes).into();
            all_h.update(h);
            hashes.push(h);
        }
        let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let info = FrameSetInfo {
            dir: dir.display().to_string(),
            count: paths.len(),
            first: name(&paths[0]),
            last: name(&paths[paths.len() - 1]),
            skip: sel.skip,
            every: sel.every,
            sha256: hex(&all_h.finalize()),
        };
        Ok(Self { info, paths, hashes })
    }

    /// Fails when a frame of `other` is also in this set (same file or same contents).
    pub fn ensure_disjoint(&self, other: &FrameSet) -> anyhow::Result<()> {
        let mine: HashSet<[u8; 32]> = self.hashes.iter().copied().collect();
        for (p, h) in other.paths.iter().zip(&other.hashes) {
            if mine.contains(h) {
                let same = self.paths[self.hashes.iter().position(|x| x == h).unwrap_or(0)].display().to_string();
                bail!(
                    "calibration and evaluation frames overlap: {} has the same contents as {} (choose disjoint folders or ranges, e.g. --frames-skip)",
                    p.display(),
                    same
                );
            }
        }
        Ok(())
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decode an image file into an RGB8 buffer.
pub fn decode(path: &Path) -> anyhow::Result<ImageBuf> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("{}: not a decodable image (JPEG and PNG are supported)", path.display()))?
        .into_rgb8();
    let mut buf = ImageBuf::default();
    buf.reshape(PixelFormat::Rgb8, img.width(), img.height());
    buf.data.copy_from_slice(img.as_raw());
    Ok(buf)
}
