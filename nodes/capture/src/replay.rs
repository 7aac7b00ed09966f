//! Replay an image-sequence folder as if it were a camera.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use image::{ColorType, ImageDecoder};
use perch_pipeline::{Clock, FrameData, PixelFormat, Source, SourceEvent, SourceInfo};

use crate::pacing::{Pacer, Pacing};
use crate::seqinfo::SeqInfo;
use crate::SourceConfig;

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Frames of a folder in name order, decoded to RGB8 straight into the frame's pooled buffer.
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
    /// Reused between frames: the encoded file, and a conversion buffer for non-RGB images.
    file_buf: Vec<u8>,
    scratch: Vec<u8>,
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
        let files = list_images(&image_dir)?;
        if files.is_empty() {
            bail!(
                "replay source: no {} images in `{}`",
                IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join("/"),
                image_dir.display()
            );
        }
        let total = files.len() as u64;
        let end = cfg.end_frame.unwrap_or(total).min(total);
        if cfg.start_frame >= end {
            bail!(
                "replay source: start_frame {} is not before the end frame {} (`{}` has {} frames)",
                cfg.start_frame,
                end,
                image_dir.display(),
                total
            );
        }
        let fps = cfg.fps.or(seq.as_ref().and_then(|s| s.frame_rate));
        if cfg.pacing == Pacing::Realtime && fps.is_none() {
            bail!(
                "replay source: pacing = \"realtime\" needs a frame rate: `{}` has no seqinfo.ini with frameRate; set source.fps",
                root.display()
            );
        }
        if let Some(f) = cfg.fps {
            if !(f > 0.0 && f.is_finite()) {
                bail!("replay source: source.fps must be a positive number, found {f}");
            }
        }
        let (mut width, mut height) = (seq.as_ref().and_then(|s| s.width), seq.as_ref().and_then(|s| s.height));
        if width.is_none() || height.is_none() {
            if let Ok((w, h)) = image::image_dimensions(&files[cfg.start_frame as usize]) {
                (width, height) = (Some(w), Some(h));
            }
        }
        Ok(Self {
            name: root.display().to_string(),
            files,
            start: cfg.start_frame,
            end,
            next: cfg.start_frame,
            looping: cfg.looping,
            pacer: Pacer::new(cfg.pacing, fps.unwrap_or(30.0), clock),
            pacing: cfg.pacing,
            fps,
            width: width.unwrap_or(0),
            height: height.unwrap_or(0),
            file_buf: Vec::new(),
            scratch: Vec::new(),
            due_ts: None,
        })
    }

    fn decode_into(&mut self, path: &Path, data: &mut FrameData) -> anyhow::Result<()> {
        self.file_buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.file_buf))
            .with_context(|| format!("reading {}", path.display()))?;
        let decoder = image::ImageReader::new(Cursor::new(&self.file_buf[..]))
            .with_guessed_format()?
            .into_decoder()
            .with_context(|| format!("{}: not a decodable image", path.display()))?;
        let (w, h) = decoder.dimensions();
        let color = decoder.color_type();
        data.image.reshape(PixelFormat::Rgb8, w, h);
        match color {
            ColorType::Rgb8 => decoder.read_image(&mut data.image.data)?,
            ColorType::L8 | ColorType::Rgba8 | ColorType::La8 => {
                self.scratch.resize(decoder.total_bytes() as usize, 0);
                decoder.read_image(&mut self.scratch)?;
                let channels = color.channel_count() as usize;
                for (dst, src) in data.image.data.chunks_exact_mut(3).zip(self.scratch.chunks_exact(channels)) {
                    match channels {
                        1 | 2 => dst.fill(src[0]),
                        _ => dst.copy_from_slice(&src[..3]),
                    }
                }
            }
            other => {
                // 16-bit and float images are rare in recordings: take the slow, allocating path.
                let img = image::DynamicImage::from_decoder(decoder)?.to_rgb8();
                tracing::debug!("{}: converted {other:?} to RGB8", path.display());
                data.image.data.copy_from_slice(img.as_raw());
            }
        }
        Ok(())
    }
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
    files.sort();
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
        let path = self.files[index as usize].clone();
        match self.decode_into(&path, data) {
            Ok(()) => SourceEvent::Frame { source_index: index, source_ts },
            Err(e) => SourceEvent::DecodeError { source_index: index, what: format!("{e:#}") },
        }
    }

    fn is_live(&self) -> bool {
        self.pacing == Pacing::Realtime
    }
}
