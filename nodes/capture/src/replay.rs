//! Replay an image-sequence folder as if it were a camera.

use std::cmp::Ordering;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use perch_pipeline::{Clock, FrameData, Source, SourceEvent, SourceInfo};
use perch_preprocess::{DecodeLimits, ImageDecoder};

use crate::pacing::{Pacer, Pacing};
use crate::seqinfo::SeqInfo;
use crate::SourceConfig;

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Frames of a folder in natural name order (`2.jpg` before `10.jpg`), decoded to RGB8 straight
/// into the frame's pooled buffer. A frame that is truncated, corrupt or larger than
/// `source.max_pixels` is a `decode_error` naming the file, never a partial frame.
pub struct ReplaySource {
    name: String,
    files: Vec<PathBuf>,
    start: u64,
    end: u64,
    next: u64,
    looping: bool,
    pacer: Pacer,
    pacing: Pacing,
    fps: Option<f64>,
    width: u32,
    height: u32,
    /// Reused between frames: the encoded file, and the decoder (with its conversion buffer).
    file_buf: Vec<u8>,
    decoder: ImageDecoder,
    /// Timestamp of the frame `wait_until_due` waited for.
    due_ts: Option<std::time::Duration>,
}

impl ReplaySource {
    pub fn open(cfg: &SourceConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let root = &cfg.path;
        if !root.exists() {
            bail!("replay source: folder `{}` does not exist", root.display());
        }
        if !root.is_dir() {
            bail!("replay source: `{}` is not a folder (expected a folder of .jpg/.png frames)", root.display());
        }
        cfg.validate()?;
        let ini_path = root.join("seqinfo.ini");
        let seq = if ini_path.is_file() {
            let text = std::fs::read_to_string(&ini_path).with_context(|| format!("reading {}", ini_path.display()))?;
            Some(SeqInfo::parse(&text, &ini_path)?)
        } else {
            None
        };
        let image_dir = match seq.as_ref().and_then(|s| s.im_dir.as_ref()) {
            Some(d) => root.join(d),
            None => root.to_path_buf(),
        };
        if !image_dir.is_dir() {
            bail!("replay source: {}: imDir `{}` is not a folder", ini_path.display(), image_dir.display());
        }
        let files = list_images(&image_dir)?;
        if files.is_empty() {
            let hint = match &seq {
                Some(s) if s.im_dir.is_none() => format!(
                    " ({} has no `imDir`: name the folder of the frames, e.g. imDir=img1)",
                    ini_path.display()
                ),
                _ => String::new(),
            };
            bail!(
                "replay source: no {} images in `{}`{hint}",
                IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join("/"),
                image_dir.display()
            );
        }
        let total = files.len() as u64;
        let fps = cfg.fps.or(seq.as_ref().and_then(|s| s.frame_rate));
        let (start_frame, end_frame) = crate::keys::frame_range(cfg, fps)?;
        let end = end_frame.unwrap_or(total).min(total);
        if start_frame >= end {
            bail!(
                "replay source: start_frame {} is not before the end frame {} (`{}` has {} frames)",
                start_frame,
                end,
                image_dir.display(),
                total
            );
        }
        if cfg.pacing == Pacing::Realtime && fps.is_none() {
            bail!(
                "replay source: pacing = \"realtime\" needs a frame rate: `{}` has no seqinfo.ini with frameRate; set source.fps",
                root.display()
            );
        }
        // The frames' own header is the truth about their size; seqinfo.ini only fills in.
        let first = image::image_dimensions(&files[start_frame as usize]).ok();
        if let Some(seq) = &seq {
            for warning in seqinfo_mismatches(seq, &ini_path, &image_dir, files.len() as u64, first) {
                tracing::warn!("{warning}");
            }
        }
        let (width, height) = match first {
            Some((w, h)) => (Some(w), Some(h)),
            None => (seq.as_ref().and_then(|s| s.width), seq.as_ref().and_then(|s| s.height)),
        };
        Ok(Self {
            name: root.display().to_string(),
            files,
            start: start_frame,
            end,
            next: start_frame,
            looping: cfg.looping,
            pacer: Pacer::new(cfg.pacing, fps.unwrap_or(30.0), clock),
            pacing: cfg.pacing,
            fps,
            width: width.unwrap_or(0),
            height: height.unwrap_or(0),
            file_buf: Vec::new(),
            decoder: ImageDecoder::new(DecodeLimits { max_pixels: cfg.max_pixels }),
            due_ts: None,
        })
    }

    fn decode_into(&mut self, index: usize, data: &mut FrameData) -> anyhow::Result<()> {
        let path = self.files[index].as_path();
        // No file can hold more than its pixels raw, plus headers: read at most that much.
        let limit = self.decoder.limits.max_pixels.saturating_mul(8).saturating_add(16 << 20);
        self.file_buf.clear();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut self.file_buf))
            .with_context(|| format!("reading {}", path.display()))?;
        if self.file_buf.len() as u64 > limit {
            bail!("{}: larger than {limit} bytes, more than a frame of source.max_pixels can take", path.display());
        }
        self.decoder.decode(&self.file_buf, &mut data.image).with_context(|| path.display().to_string())
    }
}

/// What `seqinfo.ini` claims that the files contradict (each a warning: the files win).
pub fn seqinfo_mismatches(seq: &SeqInfo, ini: &Path, dir: &Path, files: u64, first: Option<(u32, u32)>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = seq.seq_length {
        if n != files {
            out.push(format!(
                "{}: seqLength={n}, but `{}` has {files} images: replaying the {files} images",
                ini.display(),
                dir.display()
            ));
        }
    }
    if let (Some((w, h)), Some(sw), Some(sh)) = (first, seq.width, seq.height) {
        if (w, h) != (sw, sh) {
            out.push(format!(
                "{}: imWidth x imHeight = {sw}x{sh}, but the first frame is {w}x{h}: using {w}x{h}",
                ini.display()
            ));
        }
    }
    out
}

/// Compare file names as people number frames: digit runs by value (`2.jpg` < `10.jpg`), the
/// rest byte by byte; equal keys (`01` vs `1`) fall back to plain byte order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let x = std::str::from_utf8(&ab[si..i]).unwrap_or("").trim_start_matches('0');
            let y = std::str::from_utf8(&bb[sj..j]).unwrap_or("").trim_start_matches('0');
            let ord = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| a.cmp(b))
}

fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("replay source: cannot list `{}`", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(files)
}

impl Source for ReplaySource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: self.name.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            frames: (!self.looping).then_some(self.end - self.start),
            device: None,
        }
    }

    fn wait_until_due(&mut self) {
        if self.next < self.end || self.looping {
            self.due_ts = Some(self.pacer.wait_next());
        }
    }

    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.next >= self.end {
            if !self.looping {
                return SourceEvent::End;
            }
            self.next = self.start;
        }
        let index = self.next;
        self.next += 1;
        // A caller that skipped `wait_until_due` still gets paced frames.
        let source_ts = match self.due_ts.take() {
            Some(ts) => ts,
            None => self.pacer.wait_next(),
        };
        match self.decode_into(index as usize, data) {
            Ok(()) => SourceEvent::Frame { source_index: index, source_ts },
            Err(e) => SourceEvent::DecodeError { source_index: index, what: format!("{e:#}") },
        }
    }

    fn is_live(&self) -> bool {
        self.pacing == Pacing::Realtime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut v = vec!["10.jpg", "2.jpg", "1.jpg", "frame_100.png", "frame_20.png", "000003.jpg", "b.jpg", "a10.jpg", "a9.jpg"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1.jpg", "2.jpg", "000003.jpg", "10.jpg", "a9.jpg", "a10.jpg", "b.jpg", "frame_20.png", "frame_100.png"]);
        // Zero-padded names (MOT's 000001.jpg) keep their order; equal numbers fall back to bytes.
        assert_eq!(natural_cmp("000009.jpg", "000010.jpg"), Ordering::Less);
        assert_eq!(natural_cmp("01.jpg", "1.jpg"), Ordering::Less);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }

    #[test]
    fn a_folder_replays_in_natural_order() {
        let dir = std::env::temp_dir().join(format!("perch-natural-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["10.jpg", "2.jpg", "1.jpg", "notes.txt", "3.PNG"] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        let names: Vec<String> =
            list_images(&dir).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["1.jpg", "2.jpg", "3.PNG", "10.jpg"]);
    }

    #[test]
    fn seqinfo_that_disagrees_with_the_files_is_reported() {
        let seq = SeqInfo { seq_length: Some(200), width: Some(640), height: Some(480), ..Default::default() };
        let w = seqinfo_mismatches(&seq, Path::new("s/seqinfo.ini"), Path::new("s/img1"), 150, Some((768, 576)));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("seqLength=200") && w[0].contains("150 images"), "{}", w[0]);
        assert!(w[1].contains("640x480") && w[1].contains("768x576"), "{}", w[1]);
        let ok = SeqInfo { seq_length: Some(150), width: Some(768), height: Some(576), ..Default::default() };
        assert!(seqinfo_mismatches(&ok, Path::new("s"), Path::new("s"), 150, Some((768, 576))).is_empty());
    }
}
