//! `perch eval quant` end to end on a few committed vtest frames with tiny n: the deterministic parts
//! (row count, sizes on disk, agreement of f32 with itself = 1, the f16 variant close to it, the
//! JSON round trip, the plot) and the clear errors for bad input. The ORT peer runs when the venv and
//! the YOLOv12n export are there (fetched fixtures).

mod common;

use std::path::{Path, PathBuf};

use perch_detect::eval::frames::FrameSelect;
use perch_detect::eval::table::Runtime;
use perch_detect::eval::{eval_quant, EvalQuantOptions, QuantTable, VariantSpec};

fn vtest() -> PathBuf {
    common::repo().join("datasets/vtest/img1")
}

fn options(scratch: &Path, variants: &[&str]) -> EvalQuantOptions {
    let repo = common::repo();
    EvalQuantOptions {
        model: repo.join("models/yolov12n"),
        variants: variants.iter().map(|v| v.parse().unwrap()).collect(),
        calib: Some(vtest()),
        calib_select: FrameSelect { skip: 0, every: 1, limit: 2 },
        frames: vtest(),
        // Frames 150, 170, 190: people and cars at both sizes.
        frames_select: FrameSelect { skip: 149, every: 20, limit: 3 },
        imgsz: vec![320],
        runs: 2,
        rounds: 2,
        warmup: 0,
        threads: 2,
        conf: 0.001,
        reference_conf: 0.25,
        iou: 0.7,
        max_det: 300,
        work_dir: scratch.join("variants"),
        peer: None,
        progress: false,
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

#[test]
fn f32_f16_and_a_copy_of_f32_end_to_end() {
    let scratch = common::scratch("eval-quant");
    let model = common::repo().join("models/yolov12n");
    let copy = format!("f32-again={}", model.display());
    let o = options(&scratch, &["f32", "f16", &copy]);
    let t = eval_quant(&o).unwrap();

    assert_eq!(t.rows.len(), 3, "one row per variant and size");
    assert!(t.calibration.is_none(), "no variant needed calibration frames");
    assert_eq!((t.heldout.count, t.heldout.first.as_str(), t.heldout.last.as_str()), (3, "000150.jpg", "000190.jpg"));
    let f32_row = &t.rows[0];
    assert_eq!((f32_row.variant.as_str(), f32_row.precision.as_str(), f32_row.runtime), ("f32", "f32", Runtime::Perch));
    for r in &t.rows {
        assert_eq!(r.size_bytes, dir_bytes(&model), "{}: size on disk", r.variant);
        let l = r.latency_ms.as_ref().unwrap();
        assert_eq!(l.n, 2);
        assert!(l.min > 0.0 && l.min <= l.median && l.median <= l.p99);
        let a = r.agreement.as_ref().unwrap();
        assert_eq!(a.frames, 3);
        assert!(a.gt_boxes > 0, "the reference found nothing on the held-out frames");
    }
    // f32 against itself (and a second load of the same model): all reference boxes found first.
    for r in [&t.rows[0], &t.rows[2]] {
        let a = r.agreement.as_ref().unwrap();
        assert!((a.map50_95.unwrap() - 1.0).abs() < 1e-9 && (a.map50.unwrap() - 1.0).abs() < 1e-9, "{}: {a:?}", r.variant);
        assert!(a.dt_boxes >= a.gt_boxes);
    }
    // f16 differs, a little.
    let f16 = t.rows[1].agreement.as_ref().unwrap();
    assert_eq!(t.rows[1].precision, "f16");
    assert!(f16.map50_95.unwrap() > 0.7 && f16.map50.unwrap() > 0.9, "f16 agreement {f16:?}");
    assert!((t.rows[0].speedup_vs_reference.unwrap() - 1.0).abs() < 1e-12, "derived speed-up of the reference");

    // JSON round trip, Markdown, plot.
    let (json, md) = t.write(&scratch.join("out")).unwrap();
    let back = QuantTable::load(&json).unwrap();
    assert_eq!(back, t);
    let md = std::fs::read_to_string(md).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| f32") || l.starts_with("| f16")).count(), 3, "{md}");
    assert!(md.contains("000150.jpg .. 000190.jpg"), "{md}");
    // One wait for idle CPUs before each variant's round (3 variants x 2 rounds), stated in the table.
    if cfg!(target_os = "linux") {
        let w = t.protocol.settle.as_ref().expect("settle stats");
        assert_eq!(w.waits, 6, "{w:?}");
        assert!(md.contains("6 waits"), "{md}");
    }
    let png = scratch.join("out/scatter.png");
    perch_detect::eval::plot::write_png(&t, &png).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1000, 640));
    let coloured = img.pixels().filter(|p| p[2] > 150 && p[0] < 80).count();
    assert!(coloured > 50, "no perch-blue markers in the plot ({coloured} pixels)");
    let dark = img.pixels().filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60).count();
    assert!(dark > 1000, "no text or axes in the plot ({dark} pixels)");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn bad_input_is_a_clear_error() {
    let scratch = common::scratch("eval-quant-bad");
    let err = |o: &EvalQuantOptions| format!("{:#}", eval_quant(o).unwrap_err());

    // Calibration and evaluation frames overlap (same folder, overlapping ranges).
    let mut o = options(&scratch, &["f32", "int8-minmax"]);
    o.calib_select.limit = 160;
    let e = err(&o);
    assert!(e.contains("calibration and evaluation frames overlap") && e.contains("000150.jpg"), "{e}");

    // An int8 variant without calibration frames.
    let mut o = options(&scratch, &["f32", "int8-minmax"]);
    o.calib = None;
    assert!(err(&o).contains("--calib DIR is needed"));

    // The reference must come first; names are unique.
    assert!(err(&options(&scratch, &["f16", "f32"])).contains("must be f32"));
    assert!(err(&options(&scratch, &["f32", "f16", "f16"])).contains("listed twice"));

    // No frames.
    let empty = scratch.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut o = options(&scratch, &["f32"]);
    o.frames = empty.clone();
    assert!(err(&o).contains("no .jpg/.jpeg/.png frames"), "{}", err(&o));
    o.frames = vtest();
    o.frames_select.skip = 10_000;
    assert!(err(&o).contains("leaves no frame of the 200"));

    // A variant directory that is not a model.
    let mut o = options(&scratch, &["f32"]);
    o.variants.push(VariantSpec::Dir { name: "broken".into(), dir: empty.clone() });
    let e = err(&o);
    assert!(e.contains("variant broken") && e.contains("model.json"), "{e}");

    // Bad sizes and counts.
    let mut o = options(&scratch, &["f32"]);
    o.imgsz = vec![300];
    assert!(err(&o).contains("multiples of 32"));
    let mut o = options(&scratch, &["f32"]);
    o.rounds = 3;
    assert!(err(&o).contains("at least --rounds"));
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The ONNX Runtime peer (scripts/ort_int8.py serve): calibrated on 2 frames, scored by perch.
#[test]
fn ort_peer_rows() {
    let Some(onnx) = common::fixture("yolov12n.onnx") else { return };
    let python = common::repo().join(".venv-detect/bin/python");
    if !python.exists() {
        let msg = format!("{} is missing: run nodes/detect/scripts/setup-venv.sh", python.display());
        perch_pipeline::fixtures::missing(&msg);
        return;
    }
    let scratch = common::scratch("eval-quant-peer");
    let script = common::repo().join("nodes/detect/scripts/ort_int8.py");
    let mut o = options(&scratch, &["f32"]);
    o.imgsz = vec![640, 320];
    o.peer = Some(format!(
        "{} {} serve --onnx {} --method minmax --threads 2 --cache {}",
        python.display(),
        script.display(),
        onnx.display(),
        scratch.join("ort-cache").display()
    ));
    let t = eval_quant(&o).unwrap();
    let names: Vec<(&str, u32)> = t.rows.iter().map(|r| (r.variant.as_str(), r.imgsz)).collect();
    assert_eq!(names, [("f32", 640), ("ort-f32", 640), ("ort-int8-minmax", 640), ("f32", 320)]);
    // The fixed-640 export cannot run at 320: said so.
    assert_eq!(t.skipped.iter().filter(|s| s.imgsz == Some(320)).count(), 2, "{:?}", t.skipped);
    assert_eq!(t.calibration.as_ref().unwrap().count, 2);
    let ort_f32 = t.rows[1].agreement.as_ref().unwrap();
    // ORT f32 on perch's tensors, decoded by perch's NMS: the same detections as perch's f32.
    assert!(ort_f32.map50_95.unwrap() > 0.95, "ORT f32 vs perch f32: {ort_f32:?}");
    let int8 = &t.rows[2];
    assert_eq!((int8.runtime, int8.precision.as_str()), (Runtime::Peer, "int8"));
    assert!(int8.size_bytes < t.rows[1].size_bytes / 2, "the int8 ONNX is smaller");
    let a = int8.agreement.as_ref().unwrap();
    assert!(a.map50_95.unwrap() > 0.2 && a.map50_95.unwrap() < 1.0, "ORT INT8 (2 calibration frames): {a:?}");
    assert_eq!(int8.latency_ms.as_ref().unwrap().n, 2);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// An int8 variant built through `perch_detect::quant` (2 calibration frames, 1 held-out frame),
/// then found in the cache on the second run.
#[test]
fn int8_variant_is_built_scored_and_cached() {
    let scratch = common::scratch("eval-quant-int8");
    let mut o = options(&scratch, &["f32", "int8-minmax"]);
    o.frames_select = FrameSelect { skip: 149, every: 1, limit: 1 };
    o.runs = 1;
    o.rounds = 1;
    let t = eval_quant(&o).unwrap();
    assert_eq!(t.rows.len(), 2);
    let c = t.calibration.as_ref().unwrap();
    assert_eq!((c.count, c.first.as_str(), c.last.as_str()), (2, "000001.jpg", "000002.jpg"));
    let q = &t.rows[1];
    assert_eq!((q.variant.as_str(), q.precision.as_str(), q.imgsz), ("int8-minmax", "int8", 320));
    assert!(q.path.ends_with("int8-minmax-320"), "{}", q.path);
    assert!(q.size_bytes * 3 < t.rows[0].size_bytes, "int8 {} vs f32 {} bytes", q.size_bytes, t.rows[0].size_bytes);
    let a = q.agreement.as_ref().unwrap();
    assert!(a.map50_95.unwrap() > 0.3 && a.map50_95.unwrap() <= 1.0 + 1e-9, "{a:?}");
    assert!(q.note.starts_with("minmax: ") && !q.note.contains("cached"), "{}", q.note);
    let again = eval_quant(&o).unwrap();
    assert!(again.rows[1].note.contains("(cached"), "{}", again.rows[1].note);
    assert_eq!(again.rows[1].agreement, q.agreement.clone(), "the cached model scores the same");
    let _ = std::fs::remove_dir_all(&scratch);
}
