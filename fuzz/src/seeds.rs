//! Seeds that are made rather than copied: a small Ultralytics-like ONNX export, raw camera
//! payloads of every pixel format, and a model folder's `model.json` + safetensors. Written by
//! `perch-fuzz seeds` into `corpus/`; the copied seeds (real frames, configs, MOT files,
//! seqinfo.ini) are listed in fuzz/README.md.

use std::path::Path;

use anyhow::Context as _;
use perch_detect::onnx::{
    data_type, Dimension, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto,
};
use prost::Message as _;

fn f32_tensor(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: (0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A YOLOv8n-shaped export in miniature: the names, metadata and head layout the importer checks,
/// with tiny tensors.
fn onnx_model(half: bool) -> Vec<u8> {
    let mut init = vec![
        f32_tensor("model.0.conv.weight", &[16, 1, 1, 1]),
        f32_tensor("model.2.m.0.cv1.conv.weight", &[2, 1, 1, 1]),
        f32_tensor("model.22.cv2.0.0.conv.weight", &[2, 1, 1, 1]),
        f32_tensor("model.22.cv2.0.2.weight", &[64, 1, 1, 1]),
        f32_tensor("model.22.cv3.0.2.weight", &[2, 1, 1, 1]),
        f32_tensor("/model.22/Constant_output_0", &[2]),
    ];
    if half {
        init.push(TensorProto {
            dims: vec![2],
            data_type: data_type::FLOAT16,
            name: "model.22.dfl.conv.weight".into(),
            int32_data: vec![0x3c00, 0x4000],
            ..Default::default()
        });
    }
    let dim = |v: i64| Dimension { dim_value: Some(v), dim_param: None };
    let model = ModelProto {
        ir_version: 9,
        producer_name: "pytorch".into(),
        producer_version: "2.5.1".into(),
        graph: Some(GraphProto {
            name: "main_graph".into(),
            initializer: init,
            input: vec![ValueInfoProto {
                name: "images".into(),
                r#type: Some(TypeProto {
                    tensor_type: Some(TypeProtoTensor {
                        elem_type: data_type::FLOAT,
                        shape: Some(TensorShapeProto { dim: vec![dim(1), dim(3), dim(64), dim(64)] }),
                    }),
                }),
            }],
            output: vec![],
        }),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 19 }],
        metadata_props: [
            ("description", "Ultralytics YOLOv8n model trained on coco.yaml"),
            ("task", "detect"),
            ("stride", "32"),
            ("imgsz", "[64, 64]"),
            ("names", "{0: 'person', 1: 'car'}"),
            ("license", "AGPL-3.0 License (https://ultralytics.com/license)"),
        ]
        .iter()
        .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
        .collect(),
    };
    model.encode_to_vec()
}

fn safetensors(tensors: &[(&str, Vec<usize>)]) -> anyhow::Result<Vec<u8>> {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, shape)| (n.to_string(), vec![0u8; shape.iter().product::<usize>() * 4], shape.clone()))
        .collect();
    let views = data
        .iter()
        .map(|(n, bytes, shape)| Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Raw frames: format index, width, height (u16 LE), target side index, then exactly the bytes.
fn raw_frames() -> Vec<(String, Vec<u8>)> {
    let formats = ["rgb8", "bgr8", "rgba8", "gray8", "yuyv", "nv12"];
    let lens = |f: usize, w: usize, h: usize| match f {
        0 | 1 => w * h * 3,
        2 => w * h * 4,
        3 => w * h,
        4 => w * h * 2,
        _ => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
    };
    let mut out = Vec::new();
    for (f, name) in formats.iter().enumerate() {
        for (w, h, dst) in [(8usize, 6usize, 0u8), (7, 5, 1), (40, 30, 2)] {
            let mut v = vec![f as u8];
            v.extend((w as u16).to_le_bytes());
            v.extend((h as u16).to_le_bytes());
            v.push(dst);
            v.extend((0..lens(f, w, h)).map(|i| (i * 37 % 251) as u8));
            out.push((format!("{name}_{w}x{h}"), v));
        }
    }
    out
}

pub fn write_all(corpus: &Path) -> anyhow::Result<usize> {
    let repo = corpus.join("../..");
    let mut files: Vec<(String, String, Vec<u8>)> = vec![
        ("onnx".into(), "yolov8n_like.onnx".into(), onnx_model(false)),
        ("onnx".into(), "yolov8n_like_f16_dfl.onnx".into(), onnx_model(true)),
    ];
    for (name, bytes) in raw_frames() {
        files.push(("raw_frame".into(), name, bytes));
    }
    let meta = std::fs::read(repo.join("models/yolov12n/model.json")).context("models/yolov12n/model.json")?;
    let weights = safetensors(&[("model.0.conv.weight", vec![16, 3, 3, 3]), ("model.0.conv.bias", vec![16])])?;
    let mut with_weights = meta.clone();
    with_weights.push(0);
    with_weights.extend(&weights);
    files.push(("model".into(), "yolov12n_json_first_conv.bin".into(), with_weights));
    let mut bad_shape = meta.clone();
    bad_shape.push(0);
    bad_shape.extend(safetensors(&[("model.0.conv.weight", vec![8, 3, 3, 3])])?);
    files.push(("model".into(), "yolov12n_json_wrong_shape.bin".into(), bad_shape));
    files.push(("model".into(), "yolov12n_json_only.json".into(), meta));
    for (target, name, bytes) in &files {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(files.len())
}
