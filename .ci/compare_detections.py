#!/usr/bin/env python3
"""Compare two perch detection outputs, one JSON object per line: `perch detect --json` (keyed by
image) or `perch run --detections` (keyed by seq). Records must match one to one, and within a
record every detection must have a partner with the same class, every box coordinate within
--box-tol px and the score within --score-tol (and the same track id, when both have one).
Exit 0 when equal within tolerance, 1 with the differences printed otherwise. Standard library only.

    python3 .ci/compare_detections.py x86.jsonl aarch64.jsonl [--box-tol 1] [--score-tol 1e-3]
"""
import argparse
import json
import sys


def load(path):
    records = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            key = r.get("seq", r.get("image"))
            if key is None:
                sys.exit(f"{path}:{n}: record without `seq` or `image`")
            if key in records:
                sys.exit(f"{path}:{n}: record {key!r} twice")
            records[key] = r.get("detections", [])
    return records


def box(d):
    """`bbox` in `perch run --detections`, `box` in `perch detect --json`."""
    return d["bbox"] if "bbox" in d else d["box"]


def close(a, b, box_tol, score_tol):
    if a["class_id"] != b["class_id"]:
        return False
    if any(abs(x - y) > box_tol for x, y in zip(box(a), box(b))):
        return False
    if abs(a["score"] - b["score"]) > score_tol:
        return False
    ta, tb = a.get("track_id"), b.get("track_id")
    return ta is None or tb is None or ta == tb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--box-tol", type=float, default=1.0)
    ap.add_argument("--score-tol", type=float, default=1e-3)
    args = ap.parse_args()
    ref, cand = load(args.reference), load(args.candidate)
    problems = []
    if set(ref) != set(cand):
        problems.append(f"records differ: only in reference {sorted(set(ref) - set(cand))}, "
                        f"only in candidate {sorted(set(cand) - set(ref))}")
    n_det, worst_box, worst_score = 0, 0.0, 0.0
    for key in sorted(set(ref) & set(cand), key=str):
        a, b = ref[key], cand[key]
        if len(a) != len(b):
            problems.append(f"{key}: {len(a)} detections in reference, {len(b)} in candidate")
        unmatched = list(b)
        for d in a:
            match = next((e for e in unmatched if close(d, e, args.box_tol, args.score_tol)), None)
            if match is None:
                problems.append(f"{key}: no partner for {d['class']} {d['score']:.4f} {box(d)}")
                continue
            unmatched.remove(match)
            n_det += 1
            worst_box = max(worst_box, max(abs(x - y) for x, y in zip(box(d), box(match))))
            worst_score = max(worst_score, abs(d["score"] - match["score"]))
        for e in unmatched:
            problems.append(f"{key}: extra in candidate: {e['class']} {e['score']:.4f} {box(e)}")
    print(f"compared {len(set(ref) & set(cand))} records, {n_det} matched detections; "
          f"largest box difference {worst_box:.2e} px, largest score difference {worst_score:.2e}")
    if problems:
        print("DIFFERENT:", *problems[:50], sep="\n  ")
        return 1
    print("equal within tolerance (box %g px, score %g)" % (args.box_tol, args.score_tol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
