//! Real media for the video tests, shared by perch-capture's tests and the binary's `tests/video_e2e.rs`
//! (included with `#[path]`): the ffmpeg-made clip of the vtest frames and GStreamer's RTSP server.

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The repository root (the folder holding `datasets/vtest`), from whichever crate includes this.
pub fn repo() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("datasets/vtest").is_dir() {
        assert!(dir.pop(), "no datasets/vtest above {}", env!("CARGO_MANIFEST_DIR"));
    }
    dir
}

/// The first `frames` vtest frames as an H.264 MP4 (`nodes/capture/scripts/make-clip.sh`).
pub fn make_clip(out: &Path, frames: u32) {
    let script = repo().join("nodes/capture/scripts/make-clip.sh");
    let st = Command::new(&script).arg(out).arg(frames.to_string()).status().unwrap();
    assert!(st.success(), "{} failed", script.display());
}

/// The first `frames` vtest frames as MJPEG in AVI (ffmpeg), with frame `broken` unreadable: its
/// JPEG header (the 600 bytes after its SOI marker) zeroed, as a damaged recording would have it.
pub fn make_mjpeg_avi_with_a_broken_frame(out: &Path, frames: u32, broken: usize) {
    let input = repo().join("datasets/vtest/img1/%06d.jpg");
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "10", "-i"])
        .arg(&input)
        .args(["-frames:v", &frames.to_string(), "-c:v", "mjpeg", "-q:v", "5"])
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg failed");
    let mut bytes = std::fs::read(out).unwrap();
    let soi: Vec<usize> = bytes.windows(3).enumerate().filter(|(_, w)| w == &[0xff, 0xd8, 0xff]).map(|(i, _)| i).collect();
    assert_eq!(soi.len(), frames as usize, "one JPEG per frame");
    bytes[soi[broken] + 2..soi[broken] + 602].fill(0);
    std::fs::write(out, bytes).unwrap();
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `nodes/capture/scripts/rtsp_server.py` serving a clip at `rtsp://127.0.0.1:PORT/clip`; killed on drop.
pub struct RtspServer(Child);

impl RtspServer {
    pub fn start(clip: &Path, port: u16) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .arg(repo().join("nodes/capture/scripts/rtsp_server.py"))
            .arg(clip)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("rtsp_server.py (needs python3-gi and gir1.2-gst-rtsp-server-1.0)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "rtsp_server.py did not start");
        RtspServer(child)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
