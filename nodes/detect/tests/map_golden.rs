//! perch's COCO mAP against pycocotools on fixed cases (tests/golden/map_cases.json, written by
//! scripts/make_map_golden.py; re-check it with `--check`). No Python at test time.

use std::path::Path;

use perch_detect::eval::map::{coco_map, DtBox, GtBox, ImageBoxes, MapParams};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    pycocotools: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    max_dets: usize,
    images: Vec<Image>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Image {
    gt: Vec<(u32, f64, f64, f64, f64)>,
    dt: Vec<(u32, f64, f64, f64, f64, f64)>,
}

#[derive(Deserialize)]
struct Expected {
    map50_95: Option<f64>,
    map50: Option<f64>,
    map75: Option<f64>,
    per_class: std::collections::BTreeMap<String, f64>,
}

const TOL: f64 = 1e-4;

fn close(what: &str, got: Option<f64>, want: Option<f64>) -> f64 {
    match (got, want) {
        (Some(g), Some(w)) => {
            assert!((g - w).abs() <= TOL, "{what}: perch {g} vs pycocotools {w}");
            (g - w).abs()
        }
        (None, None) => 0.0,
        _ => panic!("{what}: perch {got:?} vs pycocotools {want:?}"),
    }
}

#[test]
fn map_matches_pycocotools() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/map_cases.json");
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert!(g.cases.len() >= 8, "the golden file lost cases");
    let mut worst = 0f64;
    for c in &g.cases {
        let images: Vec<ImageBoxes> = c
            .images
            .iter()
            .map(|im| ImageBoxes {
                gt: im.gt.iter().map(|&(class, x, y, w, h)| GtBox { class, xywh: [x, y, w, h] }).collect(),
                dt: im.dt.iter().map(|&(class, score, x, y, w, h)| DtBox { class, score, xywh: [x, y, w, h] }).collect(),
            })
            .collect();
        let r = coco_map(&images, &MapParams { max_dets: c.max_dets });
        worst = worst.max(close(&format!("{} mAP50-95", c.name), r.map50_95, c.expected.map50_95));
        worst = worst.max(close(&format!("{} mAP50", c.name), r.map50, c.expected.map50));
        worst = worst.max(close(&format!("{} mAP75", c.name), r.map75, c.expected.map75));
        let classes: Vec<String> = r.per_class.iter().map(|a| a.class.to_string()).collect();
        let want: Vec<String> = c.expected.per_class.keys().cloned().collect();
        let mut classes_sorted = classes.clone();
        classes_sorted.sort();
        assert_eq!(classes_sorted, want, "{}: classes with ground truth", c.name);
        for a in &r.per_class {
            worst = worst.max(close(&format!("{} class {} AP", c.name, a.class), Some(a.ap50_95), Some(c.expected.per_class[&a.class.to_string()])));
        }
    }
    eprintln!("{} cases agree with pycocotools {}: worst difference {worst:e}", g.cases.len(), g.pycocotools);
}
