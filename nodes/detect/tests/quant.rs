//! Int8 quantization end to end: quantize the committed YOLOv12n on a few committed vtest frames,
//! load the result like any model, detect on held-out frames and agree with f32; broken and
//! hand-edited int8 files fail naming the tensor.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use perch_detect::quant::{self, frames, CalibMethod, QuantRecipe};
use perch_detect::{DetectConfig, Detector, ModelMeta};
use perch_pipeline::Detection;

const IMGSZ: u32 = 320;

fn f32_model() -> PathBuf {
    repo().join("models/yolov12n")
}

/// Calibration frames of the test model: 4 spread over the first 100 committed vtest frames.
fn calib_frames() -> Vec<PathBuf> {
    let files = frames::list(&repo().join("datasets/vtest")).unwrap();
    frames::spread(&files[..100], 4)
}

/// Held-out frames: from the second half of the committed clip, never calibrated on.
fn held_out() -> Vec<PathBuf> {
    let files = frames::list(&repo().join("datasets/vtest")).unwrap();
    [120usize, 149, 185].iter().map(|&i| files[i].clone()).collect()
}

/// The test's int8 model (quantized once per test binary).
fn int8_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("quant").join("yolov12n-int8");
        let recipe = QuantRecipe { imgsz: IMGSZ, verify_frames: 1, threads: 2, ..QuantRecipe::default() };
        let report = quant::quantize_model(&f32_model(), &out, &recipe, &calib_frames(), &|_, _, _| {}).unwrap();
        eprintln!("{}", report.table());
        eprintln!("output SQNR {:?}", report.output_sqnr);
        out
    })
}

fn detector(dir: &Path, conf: f32) -> Detector {
    Detector::load(&DetectConfig { model: dir.to_path_buf(), imgsz: IMGSZ, conf, threads: 2, ..Default::default() }).unwrap()
}

fn detect(det: &mut Detector, frame: &Path) -> Vec<Detection> {
    let (_, tensor, lb) = input(frame, IMGSZ);
    let mut dets = Vec::new();
    det.detect(&tensor, &lb, &mut dets).unwrap();
    dets
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let (a, b) = (a.bbox, b.bbox);
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter)
}

/// Matched-box agreement (a proxy for agreement mAP): f32 detections are the reference; a
/// detection of the same class with IoU >= 0.5 matches (greedy by score). Returns
/// (matches, reference count, test count).
fn matches(reference: &[Detection], test: &[Detection]) -> (usize, usize, usize) {
    let mut used = vec![false; test.len()];
    let mut m = 0;
    for r in reference {
        let best = test
            .iter()
            .enumerate()
            .filter(|(i, t)| !used[*i] && t.class_id == r.class_id)
            .map(|(i, t)| (i, iou(r, t)))
            .filter(|(_, v)| *v >= 0.5)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = best {
            used[i] = true;
            m += 1;
        }
    }
    (m, reference.len(), test.len())
}

#[test]
fn a_quantized_model_loads_like_any_model_and_agrees_with_f32_on_held_out_frames() {
    let dir = int8_model();
    let meta = ModelMeta::load(dir).unwrap();
    assert_eq!(meta.precision, perch_detect::meta::Precision::Int8);
    assert_eq!(meta.format, 2);
    let q = meta.quantization.as_ref().unwrap();
    assert_eq!(q.calibration.frames, 4);
    assert_eq!(q.calibration.sha256, frames::hash(&calib_frames()).unwrap());
    assert_eq!(q.recipe.method, CalibMethod::Percentile(99.99));
    assert_eq!(q.int8_convs, 119, "every conv of YOLOv12n is int8 by default");
    // About a quarter of the f32 size.
    let (f, i) = (
        std::fs::metadata(f32_model().join("model.safetensors")).unwrap().len(),
        std::fs::metadata(dir.join("model.safetensors")).unwrap().len(),
    );
    assert!(i * 10 < f * 3, "int8 file {i} bytes vs f32 {f}");

    let (mut f32d, mut int8d) = (detector(&f32_model(), 0.25), detector(dir, 0.25));
    let (mut m, mut nr, mut nt) = (0, 0, 0);
    for frame in held_out() {
        let (a, b) = (detect(&mut f32d, &frame), detect(&mut int8d, &frame));
        let (mm, r, t) = matches(&a, &b);
        eprintln!("{}: f32 {r} detections, int8 {t}, matched {mm}", frame.display());
        (m, nr, nt) = (m + mm, nr + r, nt + t);
        // Deterministic: the same frame gives the same detections again.
        let again = detect(&mut int8d, &frame);
        assert_eq!(format!("{b:?}"), format!("{again:?}"));
    }
    let f1 = 2.0 * m as f64 / (nr + nt) as f64;
    eprintln!("matched-box agreement (F1 at IoU 0.5) on {} held-out frames: {f1:.3} ({m} of {nr} f32 / {nt} int8)", held_out().len());
    assert!(nr >= 10, "the held-out frames should show people: {nr} f32 detections");
    assert!(f1 >= 0.75, "agreement {f1:.3} below the floor 0.75");
}

#[test]
fn quantizing_again_or_into_an_existing_model_is_refused() {
    let dir = int8_model();
    let err = quant::quantize_model(dir, &scratch("requant").join("x"), &QuantRecipe::default(), &calib_frames(), &|_, _, _| {})
        .unwrap_err();
    assert!(format!("{err:#}").contains("already quantized"), "{err:#}");
    let err = quant::quantize_model(&f32_model(), dir, &QuantRecipe::default(), &calib_frames(), &|_, _, _| {}).unwrap_err();
    assert!(format!("{err:#}").contains("--force"), "{err:#}");
}

#[test]
fn bad_calibration_input_and_unknown_layers_are_clear_errors() {
    let empty = scratch("empty-calib");
    let err = frames::list(&empty).unwrap_err();
    assert!(format!("{err:#}").contains("holds no .jpg/.jpeg/.png images"), "{err:#}");
    let err = frames::list(&empty.join("missing")).unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    let out = scratch("bad-calib").join("m");
    let err = quant::quantize_model(&f32_model(), &out, &QuantRecipe::default(), &[], &|_, _, _| {}).unwrap_err();
    assert!(format!("{err:#}").contains("no calibration frames"), "{err:#}");
    // A corrupt frame names the file.
    let bad = empty.join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff not really").unwrap();
    let err = quant::quantize_model(&f32_model(), &out, &QuantRecipe::default(), &[bad], &|_, _, _| {}).unwrap_err();
    assert!(format!("{err:#}").contains("bad.jpg"), "{err:#}");
    // An unknown --keep-f32 name lists close matches.
    let recipe = QuantRecipe { keep_f32: vec!["model.21.cv2.0.3".into()], ..QuantRecipe::default() };
    let err = quant::quantize_model(&f32_model(), &out, &recipe, &calib_frames(), &|_, _, _| {}).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("no conv layer is named 'model.21.cv2.0.3'") && msg.contains("model.21.cv2.0.2"), "{msg}");
    assert!(!out.exists(), "a failed quantization left {}", out.display());
}

#[test]
fn keep_f32_layers_stay_float_in_the_file() {
    let graph = quant::list_layers(&f32_model()).unwrap();
    let keep = quant::resolve_keep(&["model.0".into(), "model.21.cv3.*".into()], &graph).unwrap();
    assert!(keep.contains("model.0") && keep.contains("model.21.cv3.2.2") && keep.len() == 1 + 15, "{keep:?}");
}

/// Rewrites the test model's safetensors with `edit` applied to its tensor list.
fn edited_copy(name: &str, edit: impl Fn(&mut Vec<(String, safetensors::tensor::TensorView<'_>)>)) -> PathBuf {
    let src = int8_model();
    let dir = scratch(name).join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.json"), dir.join("model.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    edit(&mut tensors);
    let out = safetensors::serialize(tensors, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    format!("{:#}", Detector::load_dir(dir, IMGSZ).unwrap_err())
}

#[test]
fn broken_int8_files_fail_naming_the_tensor() {
    let src = int8_model();
    // Truncated: the tensor past the end is named.
    let dir = scratch("truncated-int8").join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.json"), dir.join("model.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("truncated safetensors file: tensor model."), "{msg}");

    // A missing activation scale.
    let dir = edited_copy("missing-scale", |t| t.retain(|(n, _)| n != "model.8.m.0.1.mlp.0.conv.input_scale"));
    let msg = load_err(&dir);
    assert!(msg.contains("tensor model.8.m.0.1.mlp.0.conv.input_scale is missing"), "{msg}");

    // A missing output zero point (the scale is there).
    let dir = edited_copy("missing-zp", |t| t.retain(|(n, _)| n != "model.2.cv1.conv.output_zero_point"));
    let msg = load_err(&dir);
    assert!(msg.contains("tensor model.2.cv1.conv.output_zero_point is missing"), "{msg}");

    // Weight scales of the wrong shape (another layer's, 16 instead of 32 channels).
    let dir = edited_copy("wrong-shape", |t| {
        let other = t.iter().find(|(n, _)| n == "model.0.conv.weight_scale").unwrap().1.clone();
        let slot = t.iter_mut().find(|(n, _)| n == "model.1.conv.weight_scale").unwrap();
        slot.1 = other;
    });
    let msg = load_err(&dir);
    assert!(msg.contains("tensor model.1.conv.weight_scale has shape [16], expected [32]"), "{msg}");
}

#[test]
fn hand_edited_model_json_fails_clearly() {
    let src = int8_model();
    let json = std::fs::read_to_string(src.join("model.json")).unwrap();
    let write = |name: &str, text: &str| {
        let dir = scratch(name).join("m");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
        std::fs::write(dir.join("model.json"), text).unwrap();
        dir
    };
    let dir = write("int4", &json.replace("\"precision\": \"int8\"", "\"precision\": \"int4\""));
    let msg = load_err(&dir);
    assert!(msg.contains("precision: unknown variant `int4`"), "{msg}");
    // int8 claimed over f32 weights.
    let dir = scratch("claims-int8").join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(f32_model().join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.json"), &json).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("holds no int8 tensor"), "{msg}");
    // An int8 model.json without its record, or an f32 one that says format 2.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("quantization");
    let dir = write("no-record", &serde_json::to_string(&v).unwrap());
    let msg = load_err(&dir);
    assert!(msg.contains("format 2 with precision Int8 and no quantization record"), "{msg}");
}

#[test]
fn the_committed_f32_model_json_is_unchanged_by_the_int8_fields() {
    // Format 1 files have neither `precision` nor `quantization`, and still load as f32.
    let text = std::fs::read_to_string(f32_model().join("model.json")).unwrap();
    assert!(!text.contains("precision") && !text.contains("quantization"));
    let meta = ModelMeta::load(&f32_model()).unwrap();
    assert_eq!((meta.format, meta.precision), (1, perch_detect::meta::Precision::F32));
}

/// The committed int8 model (`models/yolov12n-int8`, see its PROVENANCE.md): its record names the
/// committed calibration frames, and on committed frames it was not calibrated on it finds what
/// the f32 model finds, at 320 (its calibration size, configs/nano.toml) and 640.
#[test]
fn the_committed_int8_model_agrees_with_f32_on_committed_held_out_frames() {
    let dir = repo().join("models/yolov12n-int8");
    assert!(dir.join("LICENSE").exists() && dir.join("PROVENANCE.md").exists());
    let meta = ModelMeta::load(&dir).unwrap();
    let q = meta.quantization.as_ref().unwrap();
    let files = frames::list(&repo().join("datasets/vtest")).unwrap();
    let calib = frames::spread(&files, q.calibration.frames);
    assert_eq!(q.calibration.sha256, frames::hash(&calib).unwrap(), "the record names the committed frames 64 of 200");
    let held: Vec<PathBuf> = held_out().into_iter().filter(|f| !calib.contains(f)).collect();
    assert_eq!(held.len(), 3);
    for imgsz in [320u32, 640] {
        let load = |m: &Path| {
            Detector::load(&DetectConfig { model: m.to_path_buf(), imgsz, threads: 2, ..Default::default() }).unwrap()
        };
        let (mut f32d, mut int8d) = (load(&f32_model()), load(&dir));
        let (mut m, mut nr, mut nt) = (0, 0, 0);
        for frame in &held {
            let run = |d: &mut Detector| {
                let (_, tensor, lb) = input(frame, imgsz);
                let mut dets = Vec::new();
                d.detect(&tensor, &lb, &mut dets).unwrap();
                dets
            };
            let (mm, r, t) = matches(&run(&mut f32d), &run(&mut int8d));
            (m, nr, nt) = (m + mm, nr + r, nt + t);
        }
        let f1 = 2.0 * m as f64 / (nr + nt) as f64;
        eprintln!("committed int8 @{imgsz}: matched-box agreement {f1:.3} ({m} of {nr} f32 / {nt} int8 detections)");
        assert!(f1 >= 0.85, "@{imgsz}: agreement {f1:.3} below the floor 0.85");
    }
}
