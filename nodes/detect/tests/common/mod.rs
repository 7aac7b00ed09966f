//! Helpers shared by the detect stage's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use perch_pipeline::{Detection, ImageBuf, TensorBuf};
use serde::Deserialize;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A fetched fixture (`.cache/fixtures/...`, see scripts/fetch-fixtures.sh), or None with a loud
/// note; with PERCH_REQUIRE_FIXTURES=1 a missing fixture fails the test.
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let p = repo().join(".cache/fixtures").join(rel);
    if p.exists() {
        return Some(p);
    }
    let msg = format!("fixture {} is missing: run nodes/detect/scripts/fetch-fixtures.sh", p.display());
    if std::env::var("PERCH_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("{msg} (PERCH_REQUIRE_FIXTURES=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// A fresh, empty scratch directory under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perch-detect-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Debug, Deserialize)]
pub struct Golden {
    pub frame: String,
    pub imgsz: u32,
    pub conf: f32,
    pub iou: f32,
    pub detections: Vec<GoldenDet>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct GoldenDet {
    pub class_id: u32,
    pub class: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

pub fn load_golden(name: &str) -> Golden {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// perch's input for an image: decode + letterbox, as `perch detect` does.
pub fn input(image_path: &Path, imgsz: u32) -> (ImageBuf, TensorBuf, perch_pipeline::Letterbox) {
    let mut image = ImageBuf::default();
    perch_detect::predict::load_image(image_path, &mut image).unwrap();
    let mut tensor = TensorBuf::default();
    let lb = perch_preprocess::letterbox_into(&image, imgsz, imgsz, &mut tensor).unwrap();
    (image, tensor, lb)
}

/// Every golden detection must be found by perch (same class, each coordinate within `tol_px`
/// source pixels) and vice versa. Detections whose score is within `margin` of the threshold may be
/// missing on either side (a 1e-4 difference in score can move them across it).
pub fn assert_same_detections(ours: &[Detection], golden: &Golden, tol_px: f32, margin: f32) {
    let close = |d: &Detection, g: &GoldenDet| {
        d.class_id == g.class_id
            && [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2].iter().zip(g.bbox).all(|(a, b)| (a - b).abs() <= tol_px)
    };
    let mut report = String::new();
    for g in &golden.detections {
        let found = ours.iter().find(|d| close(d, g));
        match found {
            Some(d) => assert!((d.score - g.score).abs() < 1e-3, "score of {g:?}: perch {} vs ORT {}", d.score, g.score),
            None if g.score < golden.conf + margin => {}
            None => report += &format!("  ORT found {} {:.3} {:?}, perch did not\n", g.class, g.score, g.bbox),
        }
    }
    for d in ours {
        if !golden.detections.iter().any(|g| close(d, g)) && d.score >= golden.conf + margin {
            report += &format!("  perch found class {} {:.3} {:?}, ORT did not\n", d.class_id, d.score, d.bbox);
        }
    }
    assert!(report.is_empty(), "detections differ from ONNX Runtime ({}):\n{report}", golden.frame);
}
