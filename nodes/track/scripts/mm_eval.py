#!/usr/bin/env python3
"""Score a MOT tracker output against ground truth with motmetrics 1.4.0 (the reference).

Usage: mm_eval.py GT.txt TRACKS.txt [--hota]   -> prints one JSON object with motmetrics' numbers
       mm_eval.py --batch [--hota] GT1 TRACKS1 GT2 TRACKS2 ...  -> a JSON list, one object per pair

--hota adds HOTA (hota, deta, assa, detre, detpr, assre, asspr, loca) from `trackers.eval`, whose
HOTA is written for TrackEval parity. That evaluator keeps only MOT17 pedestrians (class 1), so
ground-truth rows with conf >= 1 are rewritten as class 1, visibility 1 first (MOT15 files have -1).

Loading and matching follow motmetrics' MOTChallenge app: ground truth with min_confidence=1,
results with the default (-1), IoU distance with threshold 0.5.
"""
import json
import sys

import numpy as np

# motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2 (which `trackers` requires).
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402

METRICS = [
    "num_frames", "num_objects", "num_predictions", "num_unique_objects", "num_matches",
    "num_switches", "num_false_positives", "num_misses", "num_fragmentations",
    "mostly_tracked", "partially_tracked", "mostly_lost", "mota", "motp", "idf1", "idp", "idr",
    "idtp", "idfp", "idfn", "recall", "precision",
]


def score(gt_path, ts_path):
    gt = mm.io.loadtxt(gt_path, fmt="mot15-2D", min_confidence=1)
    ts = mm.io.loadtxt(ts_path, fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5)
    mh = mm.metrics.create()
    summary = mh.compute(acc, metrics=METRICS, name="seq")
    out = {}
    for k in METRICS:
        v = summary[k].iloc[0]
        out[k] = float(v) if isinstance(v, (float, np.floating)) else int(v)
    return out


def hota(gt_path, ts_path):
    import tempfile

    from trackers.eval import evaluate_mot_sequence

    g = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    g = g[g[:, 6] >= 1][:, :9].copy()
    g[:, 6:9] = 1
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        np.savetxt(f, g, delimiter=",", fmt="%.6f")
        f.flush()
        h = evaluate_mot_sequence(f.name, ts_path, metrics=["HOTA"]).HOTA
    return dict(hota=h.HOTA, deta=h.DetA, assa=h.AssA, detre=h.DetRe, detpr=h.DetPr,
                assre=h.AssRe, asspr=h.AssPr, loca=h.LocA)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--hota", "--batch")]
    batch = "--batch" in sys.argv[1:]
    if len(args) % 2 or not args or (not batch and len(args) != 2):
        sys.exit(__doc__)
    outs = []
    for gt_path, ts_path in zip(args[0::2], args[1::2]):
        out = score(gt_path, ts_path)
        if "--hota" in sys.argv[1:]:
            out["hota"] = hota(gt_path, ts_path)
        outs.append(out)
    print(json.dumps(outs if batch else outs[0]))
