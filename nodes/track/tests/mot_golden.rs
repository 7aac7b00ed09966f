//! Golden numbers for TUD-Campus (`test.txt` vs `gt.txt`, IoU, distance threshold 0.5) computed by
//! motmetrics 1.4.0 and confirmed by TrackEval (see datasets/tud-campus/PROVENANCE.md).

use std::path::PathBuf;

use perch_track::mot::{evaluate, read_mot, MotOptions};

fn dataset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/tud-campus")
        .join(name)
}

fn close(name: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{name}: got {got}, want {want} (tolerance {tol})"
    );
}

#[test]
fn tud_campus_matches_motmetrics_golden_values() {
    let gt = read_mot(&dataset("gt.txt")).unwrap();
    let hyp = read_mot(&dataset("test.txt")).unwrap();
    assert_eq!((gt.len(), hyp.len()), (359, 222));
    let m = evaluate(&gt, &hyp, &MotOptions::default());
    close("MOTA", m.mota, 0.526462, 1e-4);
    close("MOTP", m.motp, 0.277201, 1e-4);
    close("IDF1", m.idf1, 0.557659, 1e-4);
    close("IDP", m.idp, 0.729730, 1e-4);
    close("IDR", m.idr, 0.451253, 1e-4);
    close("recall", m.recall, 0.582173, 1e-4);
    close("precision", m.precision, 0.941441, 1e-4);
    assert_eq!(m.num_switches, 7, "IDSW");
    assert_eq!(m.num_false_positives, 13, "FP");
    assert_eq!(m.num_misses, 150, "FN");
    assert_eq!(m.mostly_tracked, 1, "MT");
    assert_eq!(m.partially_tracked, 6, "PT");
    assert_eq!(m.mostly_lost, 1, "ML");
    assert_eq!(m.num_fragmentations, 7, "Frag");
    assert_eq!(
        (
            m.num_frames,
            m.num_objects,
            m.num_predictions,
            m.num_unique_objects
        ),
        (71, 359, 222, 8)
    );
    assert_eq!((m.idtp, m.idfp, m.idfn), (162, 60, 197));
    // TrackEval's HOTA for the same pair (given to 4 decimals).
    close("HOTA", m.hota.hota, 0.3914, 1e-4);
}
