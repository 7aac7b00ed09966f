#!/usr/bin/env python3
"""Golden COCO-style mAP numbers from pycocotools, for perch's Rust mAP (`src/eval/map.rs`).

Generates fixed (seeded) cases: several images and classes, noisy and duplicate detections, score
ties within and across images, IoUs exactly at the thresholds, empty images, a class with detections
but no ground truth, a class with ground truth but no detections, more detections per image than
maxDets, and a case without any ground truth. Each case is evaluated by pycocotools' COCOeval
(iouType "bbox", area range "all", no crowd boxes, params.maxDets = [1, 10, MAX_DETS], so its
AP stats use MAX_DETS detections per image) and written with the numbers to a JSON file that the
Rust test `tests/map_golden.rs` reads (no Python at test time).

usage (repo root, venv from scripts/setup-venv.sh):
  .venv-detect/bin/python nodes/detect/scripts/make_map_golden.py --out nodes/detect/tests/golden/map_cases.json
  add --check to recompute the numbers of the committed file and compare (to 1e-12).

Schema: {"generator", "pycocotools", "cases": [{"name", "max_dets", "images": [{"gt": [[class, x, y, w, h]],
"dt": [[class, score, x, y, w, h]]}], "expected": {"map50_95", "map50", "map75" (null when no class has
ground truth), "per_class": {"<class>": ap50_95}}}]}. Boxes are COCO [x, y, w, h] in pixels.
"""

import argparse
import contextlib
import io
import json
import sys

import numpy as np
from importlib.metadata import version

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def coco_eval(images, max_dets, classes):
    """pycocotools' AP (IoU .50:.95), AP50, AP75 and per-class AP for one case."""
    gt = {"images": [{"id": i + 1} for i in range(len(images))],
          "categories": [{"id": c} for c in classes], "annotations": []}
    dts = []
    for i, im in enumerate(images):
        for c, x, y, w, h in im["gt"]:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": c,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        for c, s, x, y, w, h in im["dt"]:
            dts.append({"image_id": i + 1, "category_id": c, "score": s, "bbox": [x, y, w, h]})
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO()
        cgt.dataset = gt
        cgt.createIndex()
        if dts:
            cdt = cgt.loadRes(dts)
        else:  # loadRes cannot take an empty list: an empty result set built the same way
            cdt = COCO()
            cdt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            cdt.createIndex()
        e = COCOeval(cgt, cdt, "bbox")
        e.params.maxDets = [1, 10, max_dets]
        e.evaluate()
        e.accumulate()
        e.summarize()
    prec = e.eval["precision"]  # [T, R, K, A, M]; A = 0 is area "all", M = 2 is maxDets = max_dets

    def mean_valid(s):  # what COCOeval.summarize computes (it only looks up maxDets = 100 for AP@.50:.95)
        return None if not (s > -1).any() else float(np.mean(s[s > -1]))

    t50, t75 = (int(np.where(e.params.iouThrs == t)[0][0]) for t in (0.5, 0.75))
    res = {"map50_95": mean_valid(prec[:, :, :, 0, 2]), "map50": mean_valid(prec[t50, :, :, 0, 2]),
           "map75": mean_valid(prec[t75, :, :, 0, 2])}
    # Cross-check with summarize()'s own numbers where it reports them.
    if max_dets == 100:
        for k, v in zip(("map50_95", "map50", "map75"), e.stats[:3]):
            assert (res[k] is None and v == -1) or abs(res[k] - v) < 1e-15, (k, res[k], v)
    per_class = {}
    for k, c in enumerate(e.params.catIds):
        p = prec[:, :, k, 0, 2]
        if (p > -1).any():
            per_class[str(c)] = float(np.mean(p[p > -1]))
    res["per_class"] = per_class
    return res


def jitter(rng, box, px):
    x, y, w, h = box
    return [x + rng.normal(0, px), y + rng.normal(0, px), max(1.0, w + rng.normal(0, px)),
            max(1.0, h + rng.normal(0, px))]


def random_box(rng, W=768, H=576):
    w, h = rng.uniform(8, 160), rng.uniform(8, 200)
    return [rng.uniform(0, W - w), rng.uniform(0, H - h), w, h]


def noisy_case(rng, n_images, classes, gt_per_image, fp_per_image, px, score_round=None, empty_every=0):
    images = []
    for i in range(n_images):
        gt, dt = [], []
        if not (empty_every and i % empty_every == 0):
            for _ in range(rng.integers(0, gt_per_image + 1)):
                c = int(rng.choice(classes))
                b = random_box(rng)
                gt.append([c] + b)
                if rng.random() < 0.85:  # found
                    dt.append([c, float(rng.uniform(0.3, 1.0))] + jitter(rng, b, px))
                if rng.random() < 0.2:  # duplicate
                    dt.append([c, float(rng.uniform(0.05, 0.6))] + jitter(rng, b, 2 * px))
                if rng.random() < 0.1:  # right place, wrong class
                    dt.append([int(rng.choice(classes)), float(rng.uniform(0.01, 0.5))] + jitter(rng, b, px))
            for _ in range(rng.integers(0, fp_per_image + 1)):
                dt.append([int(rng.choice(classes)), float(rng.uniform(0.001, 0.7))] + random_box(rng))
        if score_round:
            for d in dt:
                d[1] = max(score_round, round(d[1] / score_round) * score_round)
        images.append({"gt": gt, "dt": dt})
    return images


def cases():
    rng = np.random.default_rng(20240612)
    out = []
    out.append(("noisy_5_images_3_classes", 100, noisy_case(rng, 5, [0, 2, 7], 6, 4, 3.0)))
    out.append(("noisy_20_images_10_classes", 100, noisy_case(rng, 20, list(range(10)), 8, 6, 5.0)))
    out.append(("tied_scores_and_empty_images", 100,
                noisy_case(rng, 12, [0, 1, 2], 5, 5, 4.0, score_round=0.1, empty_every=4)))
    # IoUs exactly at thresholds: [0,0,10,10] vs [0,0,10,20] is 0.5, vs [0,0,10,13.3333..] ~0.75,
    # vs h = 20/1.5 etc.; equal IoU to two ground-truth boxes; equal scores in different images.
    exact = [
        {"gt": [[0, 0, 0, 10, 20], [0, 40, 0, 10, 10]],
         "dt": [[0, 0.9, 0, 0, 10, 10], [0, 0.9, 40, 0, 10, 5], [0, 0.5, 40, 0, 10, 10]]},
        {"gt": [[0, 0, 0, 10, 10], [0, 5, 0, 10, 10]],
         "dt": [[0, 0.9, 2.5, 0, 10, 10], [0, 0.9, 2.5, 0, 10, 10], [1, 0.8, 0, 0, 10, 10]]},
        {"gt": [[1, 100, 100, 20, 20]], "dt": [[1, 0.9, 100, 100, 20, 15], [1, 0.7, 100, 100, 20, 10]]},
        {"gt": [], "dt": []},
        {"gt": [[3, 10, 10, 30, 30]], "dt": []},
        {"gt": [], "dt": [[5, 0.99, 0, 0, 50, 50], [0, 0.95, 0, 0, 10, 20]]},
    ]
    out.append(("exact_thresholds_ties_missing_classes", 100, exact))
    # More detections than maxDets: one image with 150 (maxDets 100), scores descending with ties.
    big = noisy_case(rng, 3, [0, 1], 30, 0, 2.0)
    for im in big:
        while len(im["dt"]) < 150:
            c = int(rng.choice([0, 1]))
            im["dt"].append([c, float(round(rng.uniform(0, 1), 2))] + random_box(rng))
    out.append(("over_max_dets_100", 100, big))
    big300 = noisy_case(rng, 4, [0, 2, 5], 40, 0, 2.5)
    for im in big300:
        while len(im["dt"]) < 340:
            im["dt"].append([int(rng.choice([0, 2, 5])), float(rng.uniform(0.001, 0.3))] + random_box(rng))
    out.append(("over_max_dets_300", 300, big300))
    # The agreement setting: references at conf >= 0.25, a perturbed copy with low-score extras.
    agree = []
    for im in noisy_case(rng, 15, [0, 2, 24, 26], 10, 0, 0.0):
        ref = [g for g in im["gt"]]
        dt = [[g[0], float(rng.uniform(0.25, 1.0))] + jitter(rng, g[1:], 1.5) for g in ref if rng.random() < 0.95]
        dt += [[int(rng.choice([0, 2, 24, 26])), float(rng.uniform(0.001, 0.25))] + random_box(rng)
               for _ in range(rng.integers(0, 40))]
        agree.append({"gt": ref, "dt": dt})
    out.append(("agreement_like_max_dets_300", 300, agree))
    out.append(("no_ground_truth_at_all", 100, [{"gt": [], "dt": [[0, 0.5, 0, 0, 10, 10]]}, {"gt": [], "dt": []}]))
    return out


def build():
    res = []
    for name, max_dets, images in cases():
        # Round to values that JSON carries exactly (shortest repr round-trips doubles anyway).
        for im in images:
            im["gt"] = [[int(g[0])] + [float(v) for v in g[1:]] for g in im["gt"]]
            im["dt"] = [[int(d[0])] + [float(v) for v in d[1:]] for d in im["dt"]]
        classes = sorted({g[0] for im in images for g in im["gt"]} | {d[0] for im in images for d in im["dt"]}) or [0]
        res.append({"name": name, "max_dets": max_dets, "images": images,
                    "expected": coco_eval(images, max_dets, classes)})
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", action="store_true", help="recompute the committed file's numbers and compare")
    a = ap.parse_args()
    if a.check:
        with open(a.out) as f:
            golden = json.load(f)
        bad = 0
        for case in golden["cases"]:
            images = case["images"]
            classes = sorted({g[0] for im in images for g in im["gt"]} | {d[0] for im in images for d in im["dt"]}) or [0]
            got = coco_eval(images, case["max_dets"], classes)
            want = case["expected"]
            for k in ("map50_95", "map50", "map75"):
                if (got[k] is None) != (want[k] is None) or (got[k] is not None and abs(got[k] - want[k]) > 1e-12):
                    print(f"{case['name']}: {k} {got[k]} != {want[k]}")
                    bad += 1
            if got["per_class"].keys() != want["per_class"].keys() or any(
                    abs(got["per_class"][c] - want["per_class"][c]) > 1e-12 for c in got["per_class"]):
                print(f"{case['name']}: per-class AP differs")
                bad += 1
        print(f"make_map_golden --check: {len(golden['cases'])} cases, {bad} mismatches")
        sys.exit(1 if bad else 0)
    out = {"generator": "nodes/detect/scripts/make_map_golden.py", "pycocotools": version("pycocotools"),
           "cases": build()}
    with open(a.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    for c in out["cases"]:
        e = c["expected"]
        print(f"{c['name']:40s} maxDets {c['max_dets']:3d}  AP {e['map50_95']}  AP50 {e['map50']}")


if __name__ == "__main__":
    main()
