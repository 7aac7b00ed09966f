//! End-to-end: on committed vtest frames, perch finds the objects ONNX Runtime finds on the same
//! input (same class, boxes within 1 source pixel after NMS). Golden files: scripts/make_golden.py.

mod common;

use common::*;
use perch_detect::{DetectConfig, Detector};

fn check(golden_file: &str, model_dir: &std::path::Path, margin: f32) {
    let golden = load_golden(golden_file);
    let mut det = Detector::load(&DetectConfig {
        model: model_dir.to_path_buf(),
        imgsz: golden.imgsz,
        conf: golden.conf,
        iou: golden.iou,
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    let (_, tensor, lb) = input(&repo().join(&golden.frame), golden.imgsz);
    let mut dets = Vec::new();
    det.detect(&tensor, &lb, &mut dets).unwrap();
    assert_same_detections(&dets, &golden, 1.0, margin);
}

#[test]
fn yolov12n_640_finds_what_onnxruntime_finds_on_a_vtest_frame() {
    let golden = load_golden("vtest_000150_yolov12n_640_nms.json");
    let persons = golden.detections.iter().filter(|d| d.class == "person" && d.score > 0.5).count();
    assert!(persons >= 3, "the golden frame should show several confident persons, has {persons}");
    check("vtest_000150_yolov12n_640_nms.json", &repo().join("models/yolov12n"), 0.01);
}

#[test]
fn the_stage_writes_source_pixel_detections_and_class_names() {
    use perch_pipeline::Stage;
    let golden = load_golden("vtest_000150_yolov12n_640_nms.json");
    let mut stage = perch_detect::DetectStage::new(&DetectConfig {
        model: repo().join("models/yolov12n"),
        classes: Some(vec![perch_detect::ClassSel::Name("person".into())]),
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(stage.name(), "detect");
    assert_eq!(stage.class_names()[0], "person");
    assert_eq!(perch_detect::class_names(&repo().join("models/yolov12n")).unwrap().len(), 80);
    let (_, tensor, lb) = input(&repo().join(&golden.frame), 640);
    let mut dets = Vec::new();
    stage.detector_mut().expect("not started").detect(&tensor, &lb, &mut dets).unwrap();
    assert!(!dets.is_empty() && dets.iter().all(|d| d.class_id == 0));
    assert!(dets.iter().all(|d| d.bbox.x2 <= 768.0 && d.bbox.y2 <= 576.0 && d.bbox.x1 >= 0.0 && d.bbox.y1 >= 0.0));
    let persons = golden.detections.iter().filter(|d| d.class_id == 0 && d.score > 0.27).count();
    assert!(dets.len() >= persons.saturating_sub(1) && dets.len() <= persons + 1, "{} vs {persons}", dets.len());
}

#[test]
fn yolov8n_fixture_finds_what_onnxruntime_finds_at_320_and_640() {
    let Some(onnx) = fixture("nudenet/320n.onnx") else { return };
    let dir = scratch("nudenet-e2e").join("model");
    perch_detect::import::import_onnx(&onnx, &dir, false).unwrap();
    // Feet are all this model finds on a street scene, at low scores: compare down to conf 0.01.
    check("vtest_000150_nudenet320n_320_nms.json", &dir, 0.002);
    // The export's input is dynamic: the same weights at 640.
    check("vtest_000050_nudenet320n_640_nms.json", &dir, 0.002);
}
