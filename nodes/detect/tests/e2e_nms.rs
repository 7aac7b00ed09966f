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

/// The stage proper: the detector on its worker thread, under `every_frame` and `async`. The frame
/// gets ONNX Runtime's objects, marked as its own (inline) or landing on a later frame (async), and
/// keeps its own tensor when it waited for the detector.
#[test]
fn the_stage_runs_the_detector_on_its_worker_under_both_schedules() {
    use perch_pipeline::{testing, FramePool, Schedule, Stage};
    let golden = load_golden("vtest_000150_yolov12n_640_nms.json");
    let (_, tensor, lb) = input(&repo().join(&golden.frame), 640);
    let pool = FramePool::new(4);
    let frame = |seq: u64| {
        let mut f = testing::frame(&pool, seq).build();
        f.tensor.clone_from(&tensor);
        f.letterbox = lb;
        f
    };
    for schedule in [Schedule::EveryFrame, Schedule::Async] {
        let cfg = DetectConfig { model: repo().join("models/yolov12n"), conf: golden.conf, iou: golden.iou, threads: 2, schedule, ..Default::default() };
        let mut stage = perch_detect::DetectStage::new(&cfg).unwrap();
        let mut ctx = testing::start_context(None, &["detect"]);
        stage.start(&mut ctx).unwrap();
        let mut f0 = frame(0);
        stage.process(&mut f0).unwrap();
        let with_result = if schedule == Schedule::EveryFrame {
            assert!(f0.detections_fresh && f0.detections_of.unwrap().seq == 0);
            assert_eq!(f0.tensor.data, tensor.data, "the frame waited: its own tensor is back");
            f0
        } else {
            assert!(f0.detections_of.is_none() && f0.detections.is_empty(), "async: frame 0 goes on at once");
            // The result lands on the first frame to pass once the worker is done.
            let mut seq = 1;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let mut f = frame(seq);
                stage.process(&mut f).unwrap();
                if f.detections_of.is_some() {
                    assert!(!f.detections_fresh && f.detections_of.unwrap().seq == 0, "marked as frame 0's");
                    break f;
                }
                seq += 1;
                assert!(seq < 1500, "no result after 30 s");
            }
        };
        assert_same_detections(&with_result.detections, &golden, 1.0, 0.01);
        stage.stop().unwrap();
        let c: std::collections::HashMap<String, u64> = stage.counters().into_iter().collect();
        assert_eq!(c["frames"], 1, "{c:?}");
        assert_eq!(ctx.workers.reports(std::time::Duration::from_secs(1))[0].name, "detect");
    }
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
