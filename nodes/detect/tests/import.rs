//! `perch model import` on real exports and on broken ones.

mod common;

use common::*;
use perch_detect::import::{import_onnx, read_onnx};
use perch_detect::model::{Arch, Scale};
use perch_detect::onnx::{GraphProto, ModelProto, StringStringEntryProto, TensorProto};
use perch_detect::ModelMeta;
use prost::Message;

#[test]
fn the_committed_default_model_is_yolov12n_coco() {
    let meta = ModelMeta::load(&repo().join("models/yolov12n")).unwrap();
    assert_eq!((meta.architecture, meta.scale, meta.num_classes), (Arch::Yolov12, Scale::N, 80));
    assert_eq!((meta.class_names[0].as_str(), meta.class_names[79].as_str()), ("person", "toothbrush"));
    assert_eq!(meta.imgsz, [640, 640]);
    assert_eq!(meta.source.sha256, "e548ab3a406227202334bf5a6623c9814ac6286ff04e68aeb4dc2357732d1a4f");
    assert!(meta.license.unwrap().contains("AGPL-3.0"));
    assert!(repo().join("models/yolov12n/LICENSE").exists() && repo().join("models/yolov12n/PROVENANCE.md").exists());
}

#[test]
fn reimporting_the_default_export_reproduces_the_committed_files() {
    let Some(onnx) = fixture("yolov12n.onnx") else { return };
    let out = scratch("v12").join("yolov12n");
    let meta = import_onnx(&onnx, &out, false).unwrap();
    let committed = repo().join("models/yolov12n");
    let (a, b) = (std::fs::read(out.join("model.json")).unwrap(), std::fs::read(committed.join("model.json")).unwrap());
    assert!(a == b, "model.json differs from the committed one");
    // safetensors' `__metadata__` is a HashMap (its key order varies between runs), so compare what
    // the file means: the same metadata, and every tensor with the same dtype, shape and bytes.
    let (a, b) = (std::fs::read(out.join("model.safetensors")).unwrap(), std::fs::read(committed.join("model.safetensors")).unwrap());
    assert_eq!(a.len(), b.len(), "model.safetensors size differs from the committed one");
    let (ma, ta) = safetensors::SafeTensors::read_metadata(&a).unwrap();
    let (mb, tb) = safetensors::SafeTensors::read_metadata(&b).unwrap();
    assert_eq!((ma, ta.metadata()), (mb, tb.metadata()), "safetensors header length or metadata differs");
    let (sa, sb) = (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    let mut names = sa.names();
    names.sort();
    let mut names_b = sb.names();
    names_b.sort();
    assert_eq!(names, names_b, "tensor names differ");
    for name in names {
        let (x, y) = (sa.tensor(name).unwrap(), sb.tensor(name).unwrap());
        assert_eq!((x.dtype(), x.shape(), x.data()), (y.dtype(), y.shape(), y.data()), "tensor {name} differs");
    }
    assert_eq!(meta.parameters, 2_590_824);
    // A second import into the same directory needs --force.
    let err = import_onnx(&onnx, &out, false).unwrap_err().to_string();
    assert!(err.contains("--force"), "{err}");
    import_onnx(&onnx, &out, true).unwrap();
}

#[test]
fn imports_the_yolov8n_fixture_with_dynamic_input() {
    let Some(onnx) = fixture("nudenet/320n.onnx") else { return };
    let imported = read_onnx(&onnx).unwrap();
    let m = &imported.meta;
    assert_eq!((m.architecture, m.scale, m.num_classes, m.imgsz, m.dynamic_input), (Arch::Yolov8, Scale::N, 18, [320, 320], true));
    assert_eq!(m.class_names[1], "FACE_FEMALE");
    assert_eq!(imported.params["model.0.conv.weight"].shape, vec![16, 3, 3, 3]);
    assert_eq!(imported.params["model.22.dfl.conv.weight"].data, (0..16).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn a_truncated_export_fails_with_the_byte_offset_and_writes_nothing() {
    let Some(onnx) = fixture("nudenet/320n.onnx") else { return };
    let bytes = std::fs::read(&onnx).unwrap();
    let dir = scratch("truncated");
    let cut = dir.join("model.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.join("out");
    let err = format!("{:#}", import_onnx(&cut, &out, false).unwrap_err());
    assert!(err.contains("model.onnx: truncated protobuf at byte "), "{err}");
    assert!(!out.exists(), "a failed import left {}", out.display());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temporary files were left behind");
}

fn synthetic(task: &str, names: &str) -> Vec<u8> {
    let t = |name: &str, dims: Vec<i64>| {
        let n: i64 = dims.iter().product();
        TensorProto {
            name: name.into(),
            dims,
            data_type: 1,
            raw_data: vec![0; n as usize * 4],
            ..Default::default()
        }
    };
    ModelProto {
        ir_version: 9,
        producer_name: "pytorch".into(),
        graph: Some(GraphProto {
            initializer: vec![
                t("model.0.conv.weight", vec![16, 3, 3, 3]),
                t("model.22.cv2.0.0.conv.weight", vec![64, 64, 3, 3]),
                t("model.22.cv2.0.2.weight", vec![64, 64, 1, 1]),
                t("model.22.cv3.0.2.weight", vec![2, 64, 1, 1]),
            ],
            ..Default::default()
        }),
        metadata_props: [("task", task), ("names", names), ("imgsz", "[320, 320]")]
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn unsupported_or_inconsistent_exports_are_refused_clearly() {
    let dir = scratch("refused");
    let cases = [
        (synthetic("segment", "{0: 'a', 1: 'b'}"), "unsupported task 'segment'"),
        (synthetic("detect", "{0: 'a'}"), "the detect head has 2 classes but the metadata names 1"),
        (synthetic("detect", "{0: 'a', 1: 'b'}"), "the graph has no input"),
        (b"\xff\xd8\xff\xe0 not a model".to_vec(), "yolo.onnx:"),
        (Vec::new(), "empty file"),
    ];
    for (bytes, expected) in cases {
        let f = dir.join("yolo.onnx");
        std::fs::write(&f, &bytes).unwrap();
        let err = format!("{:#}", import_onnx(&f, &dir.join("out"), false).unwrap_err());
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        assert!(!dir.join("out").exists());
    }
}
