//! Where annotated frames go: an mp4 (or mkv/mov/avi/webm) encoded by an external `ffmpeg` process
//! fed raw RGB on its stdin, or a numbered JPEG sequence in a folder (no system dependency at all).
//! perch links no codec library: ffmpeg is a separate program (`apt-get install ffmpeg`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{bail, Context as _};

/// Extensions written through ffmpeg; any other path is a folder of JPEGs.
const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "mkv", "mov", "avi", "webm"];

/// What `--save-video PATH` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoTarget {
    /// A video file, encoded by `ffmpeg` (H.264 in mp4/mkv/mov, MPEG-4 part 2 in avi, VP9 in webm).
    Ffmpeg(PathBuf),
    /// A folder of `000000.jpg`, `000001.jpg`, ... (one per published frame, by sequence number).
    Images(PathBuf),
}

impl VideoTarget {
    pub fn from_path(path: &Path) -> Self {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext {
            Some(e) if VIDEO_EXTENSIONS.contains(&e.as_str()) => Self::Ffmpeg(path.to_path_buf()),
            _ => Self::Images(path.to_path_buf()),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Ffmpeg(p) | Self::Images(p) => p,
        }
    }

    /// Fail before the run when the target cannot work: ffmpeg missing, a folder that cannot be
    /// created, a file where a folder must go.
    pub fn check(&self) -> anyhow::Result<()> {
        match self {
            Self::Ffmpeg(path) => {
                let ok = Command::new(ffmpeg()).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status();
                if !ok.is_ok_and(|s| s.success()) {
                    bail!(
                        "--save-video {}: writing a video needs the `ffmpeg` program on PATH (or PERCH_FFMPEG=/path/to/ffmpeg); \
                         install it (`apt-get install ffmpeg`), or give a folder to write a JPEG sequence instead",
                        path.display()
                    );
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| format!("--save-video: creating {}", dir.display()))?;
                }
                std::fs::File::create(path).with_context(|| format!("--save-video: cannot create {}", path.display()))?;
            }
            Self::Images(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("--save-video: cannot create the folder {}", dir.display()))?;
            }
        }
        Ok(())
    }
}

/// The ffmpeg program: `PERCH_FFMPEG` or `ffmpeg` from PATH.
fn ffmpeg() -> PathBuf {
    std::env::var_os("PERCH_FFMPEG").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("ffmpeg"))
}

/// An open writer; frames must all have the size it was opened with.
pub struct VideoWriter {
    kind: Writer,
    pub width: u32,
    pub height: u32,
    frames: u64,
}

enum Writer {
    Ffmpeg { child: Child, stdin: Option<ChildStdin>, path: PathBuf },
    Images { dir: PathBuf },
}

impl VideoWriter {
    /// Start writing `width x height` RGB frames at `fps` frames per second.
    pub fn open(target: &VideoTarget, width: u32, height: u32, fps: f64) -> anyhow::Result<Self> {
        let kind = match target {
            VideoTarget::Images(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                Writer::Images { dir: dir.clone() }
            }
            VideoTarget::Ffmpeg(path) => {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
                let codec: &[&str] = match ext.as_str() {
                    "webm" => &["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32"],
                    "avi" => &["-c:v", "mpeg4", "-q:v", "4"],
                    _ => &["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"],
                };
                let mut cmd = Command::new(ffmpeg());
                cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
                    .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{width}x{height}")])
                    .args(["-r", &format!("{fps}"), "-i", "-"])
                    // yuv420p (what players expect) needs even sides.
                    .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"])
                    .args(codec);
                if ext == "mp4" || ext == "mov" {
                    cmd.args(["-movflags", "+faststart"]);
                }
                cmd.arg(path).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
                let mut child = cmd.spawn().with_context(|| format!("starting {} for {}", ffmpeg().display(), path.display()))?;
                let stdin = child.stdin.take();
                Writer::Ffmpeg { child, stdin, path: path.clone() }
            }
        };
        Ok(Self { kind, width, height, frames: 0 })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Append one frame (`width * height * 3` RGB bytes); `seq` names it in an image sequence.
    pub fn write(&mut self, rgb: &[u8], seq: u64) -> anyhow::Result<()> {
        anyhow::ensure!(rgb.len() == self.width as usize * self.height as usize * 3, "frame size changed");
        match &mut self.kind {
            Writer::Images { dir } => {
                let path = dir.join(format!("{seq:06}.jpg"));
                let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut out = std::io::BufWriter::new(file);
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                    .encode(rgb, self.width, self.height, image::ExtendedColorType::Rgb8)
                    .with_context(|| format!("writing {}", path.display()))?;
                out.flush().with_context(|| format!("writing {}", path.display()))?;
            }
            Writer::Ffmpeg { stdin, path, .. } => {
                let pipe = stdin.as_mut().context("ffmpeg's input is closed")?;
                pipe.write_all(rgb).with_context(|| format!("ffmpeg stopped taking frames for {}", path.display()))?;
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// Close the stream and wait for the encoder; an encoder failure is an error naming its message.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        if let Writer::Ffmpeg { child, stdin, path } = &mut self.kind {
            drop(stdin.take());
            let mut errors = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut errors);
            }
            let status = child.wait().context("waiting for ffmpeg")?;
            if !status.success() {
                bail!("ffmpeg failed writing {} ({status}): {}", path.display(), errors.trim());
            }
        }
        Ok(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_writer() {
        assert_eq!(VideoTarget::from_path(Path::new("out.mp4")), VideoTarget::Ffmpeg("out.mp4".into()));
        assert_eq!(VideoTarget::from_path(Path::new("a/B.MKV")), VideoTarget::Ffmpeg("a/B.MKV".into()));
        assert_eq!(VideoTarget::from_path(Path::new("frames/")), VideoTarget::Images("frames/".into()));
        assert_eq!(VideoTarget::from_path(Path::new("runs/video")), VideoTarget::Images("runs/video".into()));
    }

    #[test]
    fn an_image_sequence_writes_one_decodable_jpeg_per_frame() {
        let dir = std::env::temp_dir().join(format!("perch-annotate-seq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let target = VideoTarget::Images(dir.clone());
        target.check().unwrap();
        let mut w = VideoWriter::open(&target, 32, 16, 10.0).unwrap();
        let frame = vec![200u8; 32 * 16 * 3];
        w.write(&frame, 7).unwrap();
        w.write(&frame, 8).unwrap();
        assert!(w.write(&frame[..10], 9).is_err(), "a frame of another size is refused");
        assert_eq!(w.finish().unwrap(), 2);
        let img = image::open(dir.join("000007.jpg")).unwrap();
        assert_eq!((img.width(), img.height()), (32, 16));
        assert!(dir.join("000008.jpg").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
