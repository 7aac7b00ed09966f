#!/usr/bin/env python3
"""Golden post-NMS detections from ONNX Runtime, for perch's end-to-end detect test.

The input tensor is the one perch builds (decode + letterbox, dumped by the `dump_tensor` example),
so both sides see identical input. ONNX Runtime runs the *original* ONNX export; decode, NMS and the
mapping back to source pixels follow Ultralytics' `non_max_suppression` + `scale_boxes`, written
here independently with NumPy (class offsets of 7680 px like Ultralytics, where perch suppresses per
class).

usage (from the repo root, venv from scripts/setup-venv.sh):
  .venv-detect/bin/python nodes/detect/scripts/make_golden.py \
      --onnx .cache/fixtures/yolov12n.onnx --frame datasets/vtest/img1/000100.jpg --imgsz 640 \
      --out nodes/detect/tests/golden/vtest_000100_yolov12n_640_nms.json
  add --check to compare with the existing file instead of writing it.
"""

import argparse
import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MAX_WH = 7680
MAX_NMS = 30000


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def perch_tensor(frame, imgsz, dump_cmd=None):
    """The CHW f32 tensor and letterbox perch builds for `frame` (via the `dump_tensor` example,
    or `dump_cmd`, a command taking the same arguments: IMAGE IMGSZ OUT)."""
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    cmd = dump_cmd or ["cargo", "run", "-q", "-p", "perch-detect", "--example", "dump_tensor", "--"]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "tensor.f32")
        res = subprocess.run(cmd + [frame, str(imgsz), out], cwd=REPO, env=env, check=True, capture_output=True,
                             text=True)
        lb = json.loads(res.stdout.strip().splitlines()[-1])
        x = np.fromfile(out, dtype="<f4").reshape(1, 3, imgsz, imgsz)
    return x, lb


def nms(boxes, scores, iou_thres):
    """Greedy NMS (torchvision semantics: drop when IoU > threshold), indices by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thres]
    return np.array(keep, dtype=np.int64)


def postprocess(pred, conf, iou, max_det, src_w, src_h, imgsz):
    """Ultralytics' non_max_suppression (single label, not agnostic) + scale_boxes, for one image."""
    p = pred[0].T  # [N, 4 + nc]
    cls_scores = p[:, 4:]
    best = cls_scores.max(1)
    label = cls_scores.argmax(1)
    m = best > conf
    xywh, best, label = p[m, :4], best[m], label[m]
    xyxy = np.stack([xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 1] - xywh[:, 3] / 2,
                     xywh[:, 0] + xywh[:, 2] / 2, xywh[:, 1] + xywh[:, 3] / 2], 1)
    if len(best) > MAX_NMS:
        o = np.argsort(-best, kind="stable")[:MAX_NMS]
        xyxy, best, label = xyxy[o], best[o], label[o]
    keep = nms(xyxy + label[:, None].astype(np.float32) * MAX_WH, best, iou)[:max_det]
    xyxy, best, label = xyxy[keep].astype(np.float64), best[keep], label[keep]
    gain = min(imgsz / src_h, imgsz / src_w)
    pad_x = round((imgsz - src_w * gain) / 2 - 0.1)
    pad_y = round((imgsz - src_h * gain) / 2 - 0.1)
    xyxy[:, [0, 2]] = np.clip((xyxy[:, [0, 2]] - pad_x) / gain, 0, src_w)
    xyxy[:, [1, 3]] = np.clip((xyxy[:, [1, 3]] - pad_y) / gain, 0, src_h)
    return xyxy, best, label


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--frame", required=True, help="image path relative to the repo root")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dump-tensor", default=None, help="command instead of the dump_tensor example")
    ap.add_argument("--check", action="store_true", help="compare with --out (boxes within 1 px) instead of writing")
    a = ap.parse_args()

    x, lb = perch_tensor(os.path.join(REPO, a.frame), a.imgsz, a.dump_tensor and a.dump_tensor.split())
    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    names = ast.literal_eval(meta["names"])
    pred = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    xyxy, score, label = postprocess(pred, a.conf, a.iou, a.max_det, lb["src_w"], lb["src_h"], a.imgsz)
    dets = [{"class_id": int(c), "class": names[int(c)], "score": round(float(s), 6),
             "bbox": [round(float(v), 3) for v in b]} for b, s, c in zip(xyxy, score, label)]
    golden = {
        "what": "post-NMS detections of ONNX Runtime on perch's input tensor (scripts/make_golden.py)",
        "frame": a.frame,
        "frame_sha256": sha256(os.path.join(REPO, a.frame)),
        "onnx": os.path.basename(a.onnx),
        "onnx_sha256": sha256(a.onnx),
        "onnxruntime": ort.__version__,
        "imgsz": a.imgsz,
        "conf": a.conf,
        "iou": a.iou,
        "max_det": a.max_det,
        "input_tensor_sha256": hashlib.sha256(x.astype("<f4").tobytes()).hexdigest(),
        "letterbox": lb,
        "detections": dets,
    }
    if a.check:
        with open(a.out) as f:
            old = json.load(f)["detections"]
        ok = len(old) == len(dets) and all(
            o["class_id"] == d["class_id"] and max(abs(p - q) for p, q in zip(o["bbox"], d["bbox"])) <= 1.0
            for o, d in zip(old, dets))
        print(f"{a.out}: {'matches' if ok else 'DIFFERS FROM'} ONNX Runtime ({len(dets)} detections now, {len(old)} stored)")
        sys.exit(0 if ok else 1)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    by_class = {}
    for d in dets:
        by_class[d["class"]] = by_class.get(d["class"], 0) + 1
    print(f"wrote {a.out}: {len(dets)} detections {by_class}")


if __name__ == "__main__":
    main()
