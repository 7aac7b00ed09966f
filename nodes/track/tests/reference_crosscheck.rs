//! Our metrics vs the Python references on our own tracker's output: motmetrics 1.4.0 for CLEAR MOT
//! and identity metrics, `trackers.eval` (TrackEval parity) for HOTA.
//!
//! Needs `$REPO/.venv-track` (nodes/track/scripts/setup-venv.sh). Without it the test says so and
//! passes, unless PERCH_REQUIRE_FIXTURES=1 (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use perch_track::corrupt::{corrupt, Corruption};
use perch_track::mot::{evaluate, format_mot, read_mot, MotMetrics, MotOptions};
use perch_track::replay::{frame_range, track_detections};
use perch_track::{TrackerKind, TrackerParams};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    perch_pipeline::fixtures::fixture_path(&repo().join(".venv-track/bin/python"), "run nodes/track/scripts/setup-venv.sh")
}

/// motmetrics (+ HOTA) for each `(gt, tracks)` pair, in one Python process.
fn reference(py: &Path, pairs: &[(PathBuf, PathBuf)]) -> Vec<Value> {
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("nodes/track/scripts/mm_eval.py"))
        .args(["--batch", "--hota"]);
    for (gt, tracks) in pairs {
        cmd.arg(gt).arg(tracks);
    }
    let out = cmd.output().expect("run mm_eval.py");
    assert!(
        out.status.success(),
        "mm_eval.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).expect("mm_eval.py prints a JSON list");
    assert_eq!(v.len(), pairs.len());
    v
}

fn compare(what: &str, ours: &MotMetrics, r: &Value) {
    let ours_json = serde_json::to_value(ours).unwrap();
    let ints = [
        "num_frames",
        "num_objects",
        "num_predictions",
        "num_unique_objects",
        "num_matches",
        "num_switches",
        "num_false_positives",
        "num_misses",
        "num_fragmentations",
        "mostly_tracked",
        "partially_tracked",
        "mostly_lost",
        "idtp",
        "idfp",
        "idfn",
    ];
    for k in ints {
        assert_eq!(
            ours_json[k].as_f64().unwrap(),
            r[k].as_f64().unwrap(),
            "{what}: {k}"
        );
    }
    for k in ["mota", "motp", "idf1", "idp", "idr", "recall", "precision"] {
        let (a, b) = (ours_json[k].as_f64().unwrap(), r[k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{what}: {k} ours {a} motmetrics {b}");
    }
    for k in [
        "hota", "deta", "assa", "detre", "detpr", "assre", "asspr", "loca",
    ] {
        let (a, b) = (
            ours_json["hota"][k].as_f64().unwrap(),
            r["hota"][k].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 1e-9,
            "{what}: HOTA {k} ours {a} reference {b}"
        );
    }
}

#[test]
fn metrics_agree_with_motmetrics_and_trackeval_on_our_tracker_output() {
    let Some(py) = python() else { return };
    let gt_path = repo().join("datasets/tud-campus/gt.txt");
    let gt = read_mot(&gt_path).unwrap();
    let (first, last) = frame_range(&gt).unwrap();
    let dir = std::env::temp_dir().join(format!("perch-track-xcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // The committed tracker output first, then our trackers' outputs.
    let test_path = repo().join("datasets/tud-campus/test.txt");
    let mut cases = vec![(
        "TUD-Campus test.txt".to_string(),
        test_path.clone(),
        evaluate(&gt, &read_mot(&test_path).unwrap(), &MotOptions::default()),
    )];
    for kind in [TrackerKind::Bytetrack, TrackerKind::Sort] {
        for (seed, (jitter, miss, fp, score_noise)) in [
            (0.05, 0.1, 0.5, 0.15),
            (0.1, 0.25, 2.0, 0.25),
            (0.15, 0.3, 3.0, 0.3),
        ]
        .into_iter()
        .enumerate()
        {
            let c = Corruption {
                jitter,
                miss,
                fp,
                score_noise,
                seed: seed as u64,
            };
            let dets = corrupt(&gt, &c);
            let params = TrackerParams {
                kind,
                ..TrackerParams::default()
            };
            // Coast every 4th frame in one run so predicted boxes are scored too.
            let tracks = track_detections(&dets, params, first, last, |f| seed != 2 || f % 4 != 0);
            let path = dir.join(format!("{kind:?}-{seed}.txt"));
            std::fs::write(&path, format_mot(&tracks)).unwrap();
            // Score what was written (3 decimals), exactly as the reference reads it.
            let written = read_mot(&path).unwrap();
            let ours = evaluate(&gt, &written, &MotOptions::default());
            assert!(
                ours.num_predictions > 100,
                "{kind:?} seed {seed}: only {} boxes",
                ours.num_predictions
            );
            cases.push((format!("{kind:?} seed {seed}"), path, ours));
        }
    }
    assert_eq!(cases.len(), 7);
    let pairs: Vec<(PathBuf, PathBuf)> = cases
        .iter()
        .map(|c| (gt_path.clone(), c.1.clone()))
        .collect();
    for (case, r) in cases.iter().zip(reference(&py, &pairs)) {
        compare(&case.0, &case.2, &r);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
