//! Against OpenCV + Ultralytics' LetterBox formulas (scripts/cv2_letterbox.py in the crate's venv,
//! made by scripts/setup-venv.sh). Skips loudly without the venv; fails then under PERCH_REQUIRE_FIXTURES.

use std::path::PathBuf;
use std::process::Command;

use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use perch_preprocess::{decode_jpeg_into, letterbox_into};

fn python() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    perch_pipeline::fixtures::fixture_path(&repo.join(".venv-preprocess/bin/python"), "run nodes/preprocess/scripts/setup-venv.sh")
}

fn opencv(py: &PathBuf, img: &ImageBuf, fmt: &str, t: u32) -> Vec<f32> {
    let dir = std::env::temp_dir().join(format!("perch-pre-cv2-{}-{fmt}-{}x{}-{t}", std::process::id(), img.width, img.height));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("in.raw"), dir.join("out.raw"));
    std::fs::write(&inp, &img.data).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cv2_letterbox.py");
    let st = Command::new(py)
        .arg(&script)
        .arg(&inp)
        .args([img.width.to_string(), img.height.to_string(), fmt.to_string(), t.to_string()])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "cv2_letterbox.py failed");
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn noise(format: PixelFormat, w: u32, h: u32, seed: u32) -> ImageBuf {
    let mut img = ImageBuf::default();
    img.reshape(format, w, h);
    for (i, d) in img.data.iter_mut().enumerate() {
        *d = ((i as u32 ^ seed).wrapping_mul(2654435761) >> 13) as u8;
    }
    img
}

/// OpenCV rounds every stage to u8 (colour conversion output, resize output with 11-bit weights);
/// we keep the exact bilinear value. Bound: max 1 LSB (0..255 scale), mean below 0.3 LSB.
#[test]
fn matches_opencv_ultralytics_letterbox() {
    let Some(py) = python() else { return };
    let mut cases: Vec<(ImageBuf, &str, u32)> = vec![
        (noise(PixelFormat::Rgb8, 1280, 720, 1), "rgb8", 640),
        (noise(PixelFormat::Bgr8, 333, 517, 2), "bgr8", 320),
        (noise(PixelFormat::Rgb8, 97, 61, 3), "rgb8", 320),
        (noise(PixelFormat::Yuyv, 640, 480, 4), "yuyv", 320),
        (noise(PixelFormat::Nv12, 1280, 720, 5), "nv12", 640),
        (noise(PixelFormat::Nv12, 250, 180, 6), "nv12", 224),
    ];
    let jpg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vtest/img1/000001.jpg");
    if let Ok(bytes) = std::fs::read(&jpg) {
        let mut img = ImageBuf::default();
        decode_jpeg_into(&bytes, &mut img).unwrap();
        cases.push((img, "rgb8", 640));
    }
    for (img, fmt, t) in &cases {
        let want = opencv(&py, img, fmt, *t);
        let mut got = TensorBuf::default();
        letterbox_into(img, *t, *t, &mut got).unwrap();
        assert_eq!(got.data.len(), want.len(), "{fmt} {}x{} -> {t}: shape", img.width, img.height);
        let (mut worst, mut sum) = (0f32, 0f64);
        for (a, b) in got.data.iter().zip(&want) {
            let d = (a - b).abs() * 255.0;
            worst = worst.max(d);
            sum += d as f64;
        }
        let mean = sum / want.len() as f64;
        eprintln!("{fmt} {}x{} -> {t}: max {worst:.3} LSB, mean {mean:.4} LSB vs OpenCV", img.width, img.height);
        assert!(worst <= 1.0 + 1e-3 && mean < 0.3, "{fmt} {}x{} -> {t}: max {worst} LSB, mean {mean} LSB", img.width, img.height);
    }
}
