//! The video source against real media: an H.264 MP4 made by ffmpeg from the vtest frames, GStreamer
//! test pipelines, and an RTSP server (gst-rtsp-server) on 127.0.0.1 that is killed and restarted.
#![cfg(feature = "video")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/media.rs"]
mod media;
use media::{free_port, make_clip, RtspServer as Server};

use perch_capture::{RtspTransport, SourceConfig, SourceKind};
use perch_pipeline::{FrameData, PixelFormat, Source, SourceEvent};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perch-video-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn video(path: &Path, sets: impl FnOnce(&mut SourceConfig)) -> Box<dyn Source> {
    let mut cfg = SourceConfig { kind: SourceKind::Video, path: path.into(), pacing: perch_capture::Pacing::Max, ..Default::default() };
    sets(&mut cfg);
    perch_capture::open(&cfg).unwrap()
}

/// A delivered frame: `source_index`, `source_ts` and its luma plane (NV12/GRAY8 frames).
type Delivered = (u64, Duration, Vec<u8>);

/// Every event until `End` (or `limit` frames), with the frames' luma planes.
fn drain(src: &mut dyn Source, limit: usize) -> (Vec<Delivered>, Vec<SourceEvent>) {
    let (mut frames, mut other) = (Vec::new(), Vec::new());
    let mut data = FrameData::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while frames.len() < limit && Instant::now() < deadline {
        src.wait_until_due();
        match src.next_frame(&mut data) {
            SourceEvent::Frame { source_index, source_ts } => {
                let img = &data.image;
                assert_eq!(img.data.len(), img.format.buffer_len(img.width, img.height));
                let luma = match img.format {
                    PixelFormat::Nv12 | PixelFormat::Gray8 => img.data[..(img.width * img.height) as usize].to_vec(),
                    _ => Vec::new(),
                };
                frames.push((source_index, source_ts, luma));
            }
            SourceEvent::Idle => {}
            SourceEvent::End => {
                other.push(SourceEvent::End);
                break;
            }
            e => other.push(e),
        }
    }
    (frames, other)
}

fn counter(src: &dyn Source, name: &str) -> u64 {
    src.counters().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_else(|| panic!("no counter {name}"))
}

/// BT.601 limited-range luma of the JPEG frame, as the H.264 encoder stored it.
fn jpeg_luma(frame: usize) -> Vec<u8> {
    let img = image::open(format!("{REPO}/datasets/vtest/img1/{frame:06}.jpg")).unwrap().to_rgb8();
    img.pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            (16.0 + 219.0 * (0.299 * r + 0.587 * g + 0.114 * b) / 255.0).round() as u8
        })
        .collect()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn an_mp4_decodes_to_the_jpeg_frames_it_was_made_from() {
    let dir = scratch("psnr");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, 30);
    let mut src = video(&clip, |_| {});
    let info = src.info();
    assert_eq!((info.width, info.height), (768, 576));
    assert_eq!(info.fps, Some(10.0));
    assert!(!src.is_live(), "pacing = max: the pipeline is waited for, nothing is dropped");
    let (frames, other) = drain(src.as_mut(), usize::MAX);
    assert!(matches!(other.as_slice(), [SourceEvent::End]), "{other:?}");
    assert_eq!(frames.len(), 30);
    for (k, (index, ts, luma)) in frames.iter().enumerate() {
        assert_eq!(*index, k as u64);
        assert_eq!(*ts, Duration::from_millis(100 * k as u64), "the presentation timestamp of frame {k}");
        // Stated bound: H.264 at crf 18 keeps the luma within 35 dB of the JPEG source (measured 40-43 dB).
        let p = psnr(luma, &jpeg_luma(k + 1));
        assert!(p > 35.0, "frame {k}: luma PSNR {p:.1} dB");
    }
    assert_eq!(counter(src.as_ref(), "decode_errors"), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_truncated_mp4_delivers_the_frames_before_the_cut_and_reports_the_error() {
    let dir = scratch("truncated");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, 60);
    let bytes = std::fs::read(&clip).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut src = video(&cut, |_| {});
    let (frames, other) = drain(src.as_mut(), usize::MAX);
    assert!(matches!(other.last(), Some(SourceEvent::End)), "{other:?}");
    assert!(frames.len() >= 20 && frames.len() < 60, "{} frames before the cut", frames.len());
    // The frames that came are the clip's first ones, intact.
    for (k, (_, _, luma)) in frames.iter().enumerate().take(5) {
        assert!(psnr(luma, &jpeg_luma(k + 1)) > 35.0);
    }
    assert_eq!(counter(src.as_ref(), "stream_errors"), 1, "the cut is reported: {:?}", src.counters());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_frame_the_decoder_cannot_decode_is_a_decode_error_and_the_rest_play() {
    let dir = scratch("broken-frame");
    let avi = dir.join("mjpeg.avi");
    media::make_mjpeg_avi_with_a_broken_frame(&avi, 20, 5);
    let mut src = video(&avi, |_| {});
    let (frames, other) = drain(src.as_mut(), usize::MAX);
    let errors: Vec<_> = other.iter().filter(|e| matches!(e, SourceEvent::DecodeError { .. })).collect();
    assert_eq!(errors.len(), 1, "{other:?}");
    assert!(matches!(other.last(), Some(SourceEvent::End)));
    assert_eq!(frames.len(), 19, "every other frame is delivered");
    assert_eq!(counter(src.as_ref(), "decode_errors"), 1);
    // Frame 5's slot in the numbering is the error's: the next frame is frame 6, intact.
    assert_eq!(frames[5].1, Duration::from_millis(600));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn start_end_and_loop_select_frames_by_position_or_time() {
    let dir = scratch("range");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, 30);
    let mut src = video(&clip, |c| {
        c.start_frame = 5;
        c.end_frame = Some(15);
    });
    let (frames, _) = drain(src.as_mut(), usize::MAX);
    assert_eq!(frames.len(), 10);
    assert_eq!(frames[0].1, Duration::from_millis(500), "starts at frame 5");
    assert!(psnr(&frames[0].2, &jpeg_luma(6)) > 35.0);
    let mut src = video(&clip, |c| {
        c.start_s = Some(1.0);
        c.end_s = Some(1.5);
    });
    let (frames, _) = drain(src.as_mut(), usize::MAX);
    assert_eq!(frames.iter().map(|f| f.1.as_millis()).collect::<Vec<_>>(), vec![1000, 1100, 1200, 1300, 1400]);
    let mut src = video(&clip, |c| {
        c.end_frame = Some(3);
        c.looping = true;
    });
    let (frames, _) = drain(src.as_mut(), 7);
    let ts: Vec<u128> = frames.iter().map(|f| f.1.as_millis()).collect();
    assert_eq!(ts, vec![0, 100, 200, 300, 400, 500, 600], "a loop keeps the stream time going");
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), (0..7).collect::<Vec<_>>());
    assert!(psnr(&frames[3].2, &jpeg_luma(1)) > 35.0, "the second pass starts at the first frame again");
    assert!(counter(src.as_ref(), "loops") >= 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn realtime_pacing_holds_frames_to_their_timestamps() {
    let dir = scratch("pacing");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, 30);
    let mut src = video(&clip, |c| {
        c.pacing = perch_capture::Pacing::Realtime;
        c.end_frame = Some(6);
    });
    assert!(src.is_live());
    let t0 = Instant::now();
    let (frames, _) = drain(src.as_mut(), usize::MAX);
    assert_eq!(frames.len(), 6);
    // Frame 5 is due 0.5 s after frame 0: a lower bound only (a loaded machine may be later).
    assert!(t0.elapsed() >= Duration::from_millis(480), "{:?}", t0.elapsed());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_files_and_pipelines_are_clear_errors() {
    let not_video = PathBuf::from(format!("{REPO}/Cargo.toml"));
    let cfg = SourceConfig { kind: SourceKind::Video, path: not_video, ..Default::default() };
    let e = format!("{:#}", perch_capture::open(&cfg).err().unwrap());
    assert!(e.contains("Cargo.toml"), "{e}");
    let cfg = SourceConfig { kind: SourceKind::Gstreamer, pipeline: Some("videotestsrc ! nosuchelement ! appsink".into()), ..Default::default() };
    let e = format!("{:#}", perch_capture::open(&cfg).err().unwrap());
    assert!(e.contains("source.pipeline") && e.contains("nosuchelement"), "{e}");
    // I420 is not a layout perch reads, and the user's caps forbid a conversion.
    let cfg = SourceConfig {
        kind: SourceKind::Gstreamer,
        pipeline: Some("videotestsrc num-buffers=3 ! video/x-raw,format=I420 ! appsink".into()),
        ..Default::default()
    };
    let e = format!("{:#}", perch_capture::open(&cfg).err().unwrap());
    assert!(e.contains("not-negotiated") || e.contains("negotiat"), "{e}");
    let cfg = SourceConfig {
        kind: SourceKind::Video,
        path: SourceConfig::default().path,
        url: Some("rtsp://127.0.0.1:9/none".into()),
        timeout_ms: Some(1500),
        ..Default::default()
    };
    let t0 = Instant::now();
    let e = format!("{:#}", perch_capture::open(&cfg).err().unwrap());
    assert!(e.contains("rtsp://127.0.0.1:9/none"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_gstreamer_pipeline_delivers_each_appsink_format() {
    for (caps, format) in [
        ("YUY2", PixelFormat::Yuyv),
        ("NV12", PixelFormat::Nv12),
        ("RGB", PixelFormat::Rgb8),
        ("BGR", PixelFormat::Bgr8),
        ("GRAY8", PixelFormat::Gray8),
    ] {
        // Odd sizes make GStreamer pad the rows: the copy must repack them.
        let cfg = SourceConfig {
            kind: SourceKind::Gstreamer,
            pipeline: Some(format!("videotestsrc num-buffers=4 ! video/x-raw,format={caps},width=322,height=242 ! appsink")),
            pacing: perch_capture::Pacing::Max,
            ..Default::default()
        };
        let mut src = perch_capture::open(&cfg).unwrap();
        let mut data = FrameData::default();
        let mut n = 0;
        loop {
            match src.next_frame(&mut data) {
                SourceEvent::Frame { .. } => {
                    assert_eq!((data.image.format, data.image.width, data.image.height), (format, 322, 242), "{caps}");
                    assert_eq!(data.image.data.len(), format.buffer_len(322, 242));
                    n += 1;
                }
                SourceEvent::End => break,
                SourceEvent::Idle => {}
                e => panic!("{caps}: {e:?}"),
            }
        }
        assert_eq!(n, 4, "{caps}");
    }
    // videotestsrc's first SMPTE bar is white: in GRAY8 its top-left pixel is 235 (limited range)
    // or 255; a stride mistake would shear the bars and leave a dark pixel there on later rows.
    let cfg = SourceConfig {
        kind: SourceKind::Gstreamer,
        pipeline: Some("videotestsrc num-buffers=1 ! video/x-raw,format=GRAY8,width=322,height=242 ! appsink".into()),
        ..Default::default()
    };
    let mut src = perch_capture::open(&cfg).unwrap();
    let mut data = FrameData::default();
    assert!(matches!(src.next_frame(&mut data), SourceEvent::Frame { .. }));
    for row in [0usize, 60, 140] {
        assert!(data.image.data[row * 322] >= 200, "row {row} starts with {}", data.image.data[row * 322]);
    }
}

#[test]
fn rtsp_plays_live_and_reconnects_after_the_server_restarts() {
    let dir = scratch("rtsp");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, 200);
    let port = free_port();
    for transport in [RtspTransport::Tcp, RtspTransport::Udp] {
        let server = Server::start(&clip, port);
        let cfg = SourceConfig {
            kind: SourceKind::Video,
            url: Some(format!("rtsp://127.0.0.1:{port}/clip")),
            transport: Some(transport),
            timeout_ms: Some(3000),
            reconnect_ms: Some(300),
            ..Default::default()
        };
        let mut src = perch_capture::open(&cfg).unwrap();
        assert!(src.is_live());
        assert_eq!((src.info().width, src.info().height), (768, 576));
        let (before, _) = drain(src.as_mut(), 15);
        assert_eq!(before.len(), 15, "{transport:?}");
        drop(server);
        // The server is gone: the source goes idle (and counts the outage), then comes back.
        let t_kill = Instant::now();
        let mut data = FrameData::default();
        while t_kill.elapsed() < Duration::from_millis(1500) {
            match src.next_frame(&mut data) {
                SourceEvent::Idle | SourceEvent::Frame { .. } => {}
                e => panic!("{transport:?}: {e:?} while the server is down"),
            }
        }
        let _server = Server::start(&clip, port);
        let (after, other) = drain(src.as_mut(), 10);
        assert!(other.is_empty(), "{other:?}");
        assert_eq!(after.len(), 10, "{transport:?}: frames after the restart");
        let indices: Vec<u64> = before.iter().chain(&after).map(|f| f.0).collect();
        assert!(indices.windows(2).all(|w| w[1] > w[0]), "source_index keeps counting: {indices:?}");
        assert!(counter(src.as_ref(), "disconnects") >= 1, "{:?}", src.counters());
        assert!(counter(src.as_ref(), "reconnects") >= 1, "{:?}", src.counters());
        assert!(counter(src.as_ref(), "downtime_ms") >= 500, "{:?}", src.counters());
    }
    let _ = std::fs::remove_dir_all(dir);
}
