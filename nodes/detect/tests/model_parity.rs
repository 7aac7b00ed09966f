//! The native model against ONNX Runtime: raw [1, 4 + nc, N] outputs on the same input pixels
//! (golden files from scripts/make_golden_raw.py). Boxes within 1e-2 px, class scores within 1e-4.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use perch_detect::model::conv::ConvKernel;
use perch_detect::model::{Arch, Scale, YoloModel};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn repo() -> PathBuf {
    Path::new(option_env!("PERCH_REPO").unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))).to_path_buf()
}

/// A weights file that may be missing (fetched fixtures): skip loudly, or fail under
/// PERCH_REQUIRE_FIXTURES=1.
fn weights(rel: &str, how: &str) -> Option<PathBuf> {
    perch_pipeline::fixtures::fixture_path(&repo().join(rel), how)
}

/// The fetched YOLOv8n (nudenet 320n) fixture, imported by perch.
fn yolov8n_fixture() -> Option<PathBuf> {
    weights(
        ".cache/fixtures/nudenet-320n/model.safetensors",
        "run nodes/detect/scripts/fetch-fixtures.sh nudenet, then `perch model import` it",
    )
}

/// The committed letterboxed input as [1, 3, H, W] f32 0..1.
fn input(name: &str) -> Tensor {
    let img = image::open(golden_dir().join(format!("{name}_input.png"))).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut chw = vec![0f32; 3 * h * w];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = p[c] as f32 / 255.0;
        }
    }
    Tensor::from_vec(chw, (1, 3, h, w), &Device::Cpu).unwrap()
}

struct Diffs {
    boxes: f32,
    /// Box differences relative to the value (cx, cy, w, h), floored at 32 px.
    boxes_rel: f32,
    scores: f32,
}

fn compare(name: &str, out: &Tensor) -> Diffs {
    let g = candle_core::safetensors::load(golden_dir().join(format!("{name}_raw.safetensors")), &Device::Cpu).unwrap();
    let shape: Vec<i64> = g["shape"].to_vec1().unwrap();
    let dims: Vec<i64> = out.dims().iter().map(|&d| d as i64).collect();
    assert_eq!(dims, shape, "output shape");
    let anchors: Vec<i64> = g["anchors"].to_vec1().unwrap();
    let want: Vec<Vec<f32>> = g["output"].to_vec2().unwrap();
    let ours: Vec<Vec<f32>> = out.squeeze(0).unwrap().to_vec2().unwrap();
    let (mut boxes, mut boxes_rel, mut scores) = (0f32, 0f32, 0f32);
    for (row, w) in want.iter().enumerate() {
        for (j, &a) in anchors.iter().enumerate() {
            let d = (ours[row][a as usize] - w[j]).abs();
            assert!(d.is_finite(), "row {row} anchor {a}: {} vs {}", ours[row][a as usize], w[j]);
            if row < 4 {
                boxes = boxes.max(d);
                boxes_rel = boxes_rel.max(d / w[j].abs().max(32.0));
            } else {
                scores = scores.max(d);
            }
        }
    }
    eprintln!("{name}: {} rows x {} anchors compared: max |box diff| {boxes:.2e} px (relative {boxes_rel:.2e}), max |score diff| {scores:.2e}", want.len(), anchors.len());
    Diffs { boxes, boxes_rel, scores }
}

fn check(name: &str, weights: &Path, arch: Arch, scale: Scale, nc: usize) {
    let x = input(name);
    for kernel in [ConvKernel::F32, ConvKernel::Reference] {
        // SAFETY: the weights file is mapped read-only and nothing writes it while the test runs.
        let vb = unsafe {
            candle_nn::VarBuilder::from_mmaped_safetensors(&[weights], candle_core::DType::F32, &Device::Cpu).unwrap()
        };
        let model = YoloModel::from_varbuilder(vb, arch, scale, nc, kernel).unwrap();
        let out = model.forward(&x).unwrap();
        let d = compare(name, &out);
        assert!(d.boxes <= 1e-2, "{name} ({kernel:?}): box diff {} px > 1e-2", d.boxes);
        assert!(d.scores <= 1e-4, "{name} ({kernel:?}): score diff {} > 1e-4", d.scores);
    }
}

#[test]
fn yolov12n_matches_onnxruntime_at_640() {
    let Some(w) = weights("models/yolov12n/model.safetensors", "committed by `perch model import`") else { return };
    check("vtest_000001_yolov12n_640", &w, Arch::Yolov12, Scale::N, 80);
}

#[test]
fn yolov8n_nudenet_matches_onnxruntime_at_320() {
    let Some(w) = yolov8n_fixture() else { return };
    check("vtest_000001_nudenet320n_320", &w, Arch::Yolov8, Scale::N, 18);
}

/// The f16 path (what `device = "cuda"` runs: Candle's reference ops on f16 weights and
/// activations) on the CPU, against the same ONNX Runtime goldens with f16-sized tolerances.
/// Measured here: YOLOv12n@640 boxes 1.7e-2 relative (3.8 px worst), scores 1.4e-2; YOLOv8n@320
/// 1.0e-2 and 1.8e-3. Every op rounds its output to f16 (2^-11 relative), and the DFL decode
/// turns logit errors into pixels; the f32 path on the same goldens is at 1e-5.
fn check_f16(name: &str, weights: &Path, arch: Arch, scale: Scale, nc: usize, max_box_rel: f32, max_score: f32) {
    let model = YoloModel::load_as(weights, arch, scale, nc, &Device::Cpu, candle_core::DType::F16).unwrap();
    assert_eq!(model.dtype(), candle_core::DType::F16);
    let out = model.forward(&input(name)).unwrap();
    assert_eq!(out.dtype(), candle_core::DType::F32, "the output is f32 whatever the precision");
    let d = compare(name, &out);
    assert!(d.boxes_rel <= max_box_rel, "{name} (f16): relative box diff {} > {max_box_rel}", d.boxes_rel);
    assert!(d.scores <= max_score, "{name} (f16): score diff {} > {max_score}", d.scores);
}

#[test]
fn yolov12n_f16_matches_onnxruntime_within_f16_precision() {
    let Some(w) = weights("models/yolov12n/model.safetensors", "committed by `perch model import`") else { return };
    check_f16("vtest_000001_yolov12n_640", &w, Arch::Yolov12, Scale::N, 80, 3e-2, 3e-2);
}

#[test]
fn yolov8n_f16_matches_onnxruntime_within_f16_precision() {
    let Some(w) = yolov8n_fixture() else { return };
    check_f16("vtest_000001_nudenet320n_320", &w, Arch::Yolov8, Scale::N, 18, 3e-2, 1e-2);
}

#[test]
fn f16_needs_the_reference_kernel() {
    let Some(w) = weights("models/yolov12n/model.safetensors", "committed by `perch model import`") else { return };
    // SAFETY: the weights file is mapped read-only and nothing writes it while the test runs.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&w], candle_core::DType::F16, &Device::Cpu).unwrap() };
    let err = YoloModel::from_varbuilder(vb, Arch::Yolov12, Scale::N, 80, ConvKernel::F32).unwrap_err();
    assert!(format!("{err:#}").contains("need f32 weights"), "{err:#}");
}

#[test]
fn yolov12n_runs_at_320() {
    let Some(w) = weights("models/yolov12n/model.safetensors", "committed by `perch model import`") else { return };
    let model = YoloModel::load(&w, Arch::Yolov12, Scale::N, 80, &Device::Cpu).unwrap();
    let x = Tensor::full(114f32 / 255.0, (1, 3, 320, 320), &Device::Cpu).unwrap();
    let out = model.forward(&x).unwrap();
    assert_eq!(out.dims(), [1, 84, 2100]);
}

#[test]
fn wrong_tensor_shape_names_the_tensor() {
    let Some(w) = weights("models/yolov12n/model.safetensors", "committed by `perch model import`") else { return };
    // The n weights read as scale s: the first conv has 16 filters where s needs 32.
    let err = YoloModel::load(&w, Arch::Yolov12, Scale::S, 80, &Device::Cpu).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("model.0.conv.weight"), "{msg}");
    // YOLOv8 layout on YOLOv12 weights: the first tensor whose shape differs (YOLOv12's C3k2 has
    // half-width bottlenecks at layer 2) is named, with both shapes.
    let err = YoloModel::load(&w, Arch::Yolov8, Scale::N, 80, &Device::Cpu).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("loading tensor model.2.m.0.cv1.conv.weight"), "{msg}");
    assert!(msg.contains("shape mismatch") && msg.contains("[16, 16, 3, 3]") && msg.contains("[8, 16, 3, 3]"), "{msg}");
}
