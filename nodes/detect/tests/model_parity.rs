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
    let p = repo().join(rel);
    if p.exists() {
        return Some(p);
    }
    let msg = format!("{} is missing ({how})", p.display());
    if std::env::var("PERCH_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("{msg} (PERCH_REQUIRE_FIXTURES=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
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
    let (mut boxes, mut scores) = (0f32, 0f32);
    for (row, w) in want.iter().enumerate() {
        for (j, &a) in anchors.iter().enumerate() {
            let d = (ours[row][a as usize] - w[j]).abs();
            assert!(d.is_finite(), "row {row} anchor {a}: {} vs {}", ours[row][a as usize], w[j]);
            if row < 4 {
                boxes = boxes.max(d);
            } else {
                scores = scores.max(d);
            }
        }
    }
    eprintln!("{name}: {} rows x {} anchors compared: max |box diff| {boxes:.2e} px, max |score diff| {scores:.2e}", want.len(), anchors.len());
    Diffs { boxes, scores }
}

fn check(name: &str, weights: &Path, arch: Arch, scale: Scale, nc: usize) {
    let x = input(name);
    for kernel in [ConvKernel::F32, ConvKernel::Reference] {
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
    let Some(w) = weights(
        ".cache/fixtures/nudenet-320n/model.safetensors",
        "run nodes/detect/scripts/fetch-fixtures.sh nudenet, then `perch model import` it",
    ) else {
        return;
    };
    check("vtest_000001_nudenet320n_320", &w, Arch::Yolov8, Scale::N, 18);
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
    // YOLOv8 layout on YOLOv12 weights: a missing tensor is named too.
    let err = YoloModel::load(&w, Arch::Yolov8, Scale::N, 80, &Device::Cpu).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("model.2.m.1.cv1.conv.weight") || msg.contains("model."), "{msg}");
}
