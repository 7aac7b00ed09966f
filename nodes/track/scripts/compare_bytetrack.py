#!/usr/bin/env python3
"""Side-by-side: perch's ByteTrack/SORT vs the reference ByteTrack/SORT of PyPI `trackers` (Roboflow),
on the same seeded corrupted detections, all scored by motmetrics 1.4.0.

For each sequence, corruption preset and seed:
  1. `perch eval track --gt GT ... --seed S --out-dets D --out-tracks OURS` makes the detections
     (our corruption model, see nodes/track/README.md) and runs our tracker;
  2. the reference trackers run on the very same detection file D;
  3. motmetrics scores every output against GT (IoU, threshold 0.5).
The reference runs twice: with its own defaults, and with its parameters set to the Ultralytics
`bytetrack.yaml` values our tracker uses (high/activation threshold 0.25, 30-frame buffer).

Sequences: TUD-Campus (committed under datasets/tud-campus) and TUD-Stadtmitte (read from the
installed motmetrics package, which ships it).

Usage: compare_bytetrack.py --bin PATH/perch [--seeds 5] [--json OUT.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mm_eval  # noqa: E402  (installs the np.asfarray shim before importing motmetrics)

import motmetrics  # noqa: E402
import supervision as sv  # noqa: E402
from trackers import ByteTrackTracker, SORTTracker  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SEQUENCES = {
    "TUD-Campus": REPO / "datasets/tud-campus/gt.txt",
    "TUD-Stadtmitte": Path(motmetrics.__file__).parent / "data/TUD-Stadtmitte/gt.txt",
}
PRESETS = {
    # name: (jitter, miss, fp per frame, score noise)
    "mild": (0.05, 0.10, 0.5, 0.15),
    "hard": (0.10, 0.25, 2.0, 0.25),
}
REFERENCES = {
    "trackers ByteTrack (its defaults)": lambda: ByteTrackTracker(),
    "trackers ByteTrack (aligned)": lambda: ByteTrackTracker(
        lost_track_buffer=30, frame_rate=30.0, track_activation_threshold=0.25,
        minimum_consecutive_frames=2, minimum_iou_threshold=0.2, high_conf_det_threshold=0.25),
    "trackers SORT (its defaults)": lambda: SORTTracker(),
}


def load_dets(path):
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    by_frame = {}
    for r in rows:
        by_frame.setdefault(int(r[0]), []).append(r)
    return by_frame


def gt_frame_range(gt_path):
    rows = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    return int(rows[:, 0].min()), int(rows[:, 0].max())


def run_reference(make, dets_path, first, last, out_path):
    tracker = make()
    by_frame = load_dets(dets_path)
    lines = []
    for f in range(first, last + 1):
        rows = by_frame.get(f, [])
        if rows:
            a = np.asarray(rows)
            xyxy = np.stack([a[:, 2], a[:, 3], a[:, 2] + a[:, 4], a[:, 3] + a[:, 5]], axis=1)
            d = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=a[:, 6].astype(np.float32),
                              class_id=np.zeros(len(a), dtype=int))
        else:
            d = sv.Detections.empty()
        res = tracker.update(d)
        for box, tid, conf in zip(res.xyxy, res.tracker_id, res.confidence if res.confidence is not None else [1.0] * len(res)):
            if tid < 0:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            lines.append(f"{f},{int(tid)},{x1:.3f},{y1:.3f},{x2 - x1:.3f},{y2 - y1:.3f},{float(conf):.5f},-1,-1,-1\n")
    Path(out_path).write_text("".join(lines))


def run_ours(binary, gt, tracker, preset, seed, dets_path, out_path):
    jitter, miss, fp, score_noise = PRESETS[preset]
    cmd = [str(binary), "eval", "track", "--gt", str(gt), "--tracker", tracker, "--jitter", str(jitter),
           "--miss", str(miss), "--fp", str(fp), "--score-noise", str(score_noise), "--seed", str(seed),
           "--out-dets", str(dets_path), "--out-tracks", str(out_path), "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path to the perch binary (its `eval track` / `eval mot` commands)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", help="write all numbers here")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if perch ByteTrack's mean IDF1 or MOTA is below a reference ByteTrack's "
                         "by more than --tolerance anywhere")
    ap.add_argument("--tolerance", type=float, default=0.01)
    args = ap.parse_args()

    trackers_names = ["perch ByteTrack", "perch SORT"] + list(REFERENCES)
    results = []  # dicts: sequence, preset, seed, tracker, metrics, ours_metrics(for ours)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seq, gt in SEQUENCES.items():
            first, last = gt_frame_range(gt)
            for preset in PRESETS:
                for seed in range(args.seeds):
                    dets = tmp / "dets.txt"
                    for kind, name in (("bytetrack", "perch ByteTrack"), ("sort", "perch SORT")):
                        out = tmp / f"ours-{kind}.txt"
                        run_ours(args.bin, gt, kind, preset, seed, dets, out)
                        mm = mm_eval.score(str(gt), str(out))
                        # Our own metrics module (`perch eval mot`) on the same file must agree.
                        ours = dict(metrics=json.loads(subprocess.run(
                            [str(args.bin), "eval", "mot", "--gt", str(gt), "--tracks", str(out), "--json"],
                            check=True, capture_output=True, text=True).stdout))
                        for k in ("mota", "motp", "idf1", "idp", "idr", "recall", "precision"):
                            if abs(ours["metrics"][k] - mm[k]) > 1e-9:
                                sys.exit(f"metric mismatch {seq} {preset} seed {seed} {kind} {k}: "
                                         f"perch {ours['metrics'][k]} motmetrics {mm[k]}")
                        for k in ("num_switches", "num_false_positives", "num_misses", "num_fragmentations",
                                  "mostly_tracked", "partially_tracked", "mostly_lost"):
                            if ours["metrics"][k] != mm[k]:
                                sys.exit(f"metric mismatch {seq} {preset} seed {seed} {kind} {k}: "
                                         f"perch {ours['metrics'][k]} motmetrics {mm[k]}")
                        results.append(dict(sequence=seq, preset=preset, seed=seed, tracker=name, metrics=mm))
                    for name, make in REFERENCES.items():
                        out = tmp / "ref.txt"
                        run_reference(make, dets, first, last, out)
                        results.append(dict(sequence=seq, preset=preset, seed=seed, tracker=name,
                                            metrics=mm_eval.score(str(gt), str(out))))

    print(f"mean over {args.seeds} seeds; every output scored by motmetrics 1.4.0 (IoU >= 0.5); "
          f"perch's own metrics agreed with motmetrics on every perch output")
    header = f"| {'sequence':<15}| {'corruption':<10}| {'tracker':<36}| {'IDF1':>6} | {'MOTA':>6} | {'IDSW':>5} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    summary = []
    for seq in SEQUENCES:
        for preset in PRESETS:
            for name in trackers_names:
                sel = [r["metrics"] for r in results
                       if r["sequence"] == seq and r["preset"] == preset and r["tracker"] == name]
                idf1 = float(np.mean([m["idf1"] for m in sel]))
                mota = float(np.mean([m["mota"] for m in sel]))
                idsw = float(np.mean([m["num_switches"] for m in sel]))
                summary.append(dict(sequence=seq, preset=preset, tracker=name, idf1=idf1, mota=mota, idsw=idsw))
                print(f"| {seq:<15}| {preset:<10}| {name:<36}| {idf1:6.3f} | {mota:6.3f} | {idsw:5.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(presets=PRESETS, summary=summary, runs=results), indent=1))
    if args.check:
        worse = []
        for seq in SEQUENCES:
            for preset in PRESETS:
                rows = {r["tracker"]: r for r in summary if r["sequence"] == seq and r["preset"] == preset}
                ours = rows["perch ByteTrack"]
                for name, r in rows.items():
                    if name.startswith("trackers ByteTrack"):
                        for k in ("idf1", "mota"):
                            if ours[k] < r[k] - args.tolerance:
                                worse.append(f"{seq} {preset}: {k} {ours[k]:.4f} < {name} {r[k]:.4f}")
        if worse:
            sys.exit("perch ByteTrack below the reference:\n  " + "\n  ".join(worse))
        print(f"check: perch ByteTrack >= reference ByteTrack - {args.tolerance} (IDF1 and MOTA) on every "
              "sequence and preset")


if __name__ == "__main__":
    main()
