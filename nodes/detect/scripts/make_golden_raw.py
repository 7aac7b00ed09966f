#!/usr/bin/env python3
"""Golden *raw* network outputs from ONNX Runtime, for perch's model parity test
(tests/model_parity.rs): the [1, 4 + nc, N] tensor before any decoding or NMS.

The input is a committed frame letterboxed here with Pillow (bilinear resize, pad 114, centred) and
saved as a lossless PNG next to the golden file, so that the Rust test feeds the network the very
same u8 pixels (/255). Which resize is used does not matter for parity: both runtimes see the PNG.

The golden file (safetensors) holds, to stay small:
  anchors  int64 [K]      anchor indices: every `--every`-th anchor plus the `--top` highest-scoring
  output   float32 [C, K] the ONNX Runtime output rows (cx, cy, w, h, class scores) at those anchors
  shape    int64 [3]      the full output shape
and its metadata the ONNX file's sha256 and the ONNX Runtime version.

usage (repo root; venv from scripts/setup-venv.sh, fixtures from scripts/fetch-fixtures.sh):
  .venv-detect/bin/python nodes/detect/scripts/make_golden_raw.py \
      --onnx .cache/fixtures/yolov12n.onnx --frame datasets/vtest/img1/000001.jpg --imgsz 640 \
      --name vtest_000001_yolov12n_640
  .venv-detect/bin/python nodes/detect/scripts/make_golden_raw.py \
      --onnx .cache/fixtures/nudenet/320n.onnx --frame datasets/vtest/img1/000001.jpg --imgsz 320 \
      --name vtest_000001_nudenet320n_320 --every 4
"""

import argparse
import hashlib
import json
import os
import struct

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GOLDEN = os.path.join(REPO, "nodes", "detect", "tests", "golden")


def letterbox(path, size):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    r = min(size / w, size / h)
    nw, nh = round(w * r), round(h * r)
    img = img.resize((nw, nh), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), (114, 114, 114))
    dx, dy = round((size - nw) / 2 - 0.1), round((size - nh) / 2 - 0.1)
    canvas.paste(img, (dx, dy))
    return canvas


def save_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (the format is a JSON header + raw little-endian bytes)."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[arr.dtype]
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--frame", required=True, help="image path relative to the repo root")
    ap.add_argument("--imgsz", type=int, required=True)
    ap.add_argument("--name", required=True, help="base name of the .png / .safetensors pair in tests/golden/")
    ap.add_argument("--every", type=int, default=16)
    ap.add_argument("--top", type=int, default=64)
    a = ap.parse_args()

    png = os.path.join(GOLDEN, a.name + "_input.png")
    letterbox(os.path.join(REPO, a.frame), a.imgsz).save(png, optimize=True)
    x = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255.0

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # plain f32 reference
    sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    n = y.shape[2]
    top = np.argsort(-y[0, 4:].max(0), kind="stable")[: a.top]
    anchors = np.unique(np.concatenate([np.arange(0, n, a.every), top])).astype(np.int64)
    with open(a.onnx, "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()
    out = os.path.join(GOLDEN, a.name + "_raw.safetensors")
    save_safetensors(
        out,
        {"anchors": anchors, "output": y[0][:, anchors].astype(np.float32), "shape": np.array(y.shape, dtype=np.int64)},
        {"onnx": os.path.basename(a.onnx), "onnx_sha256": onnx_sha, "onnxruntime": ort.__version__,
         "frame": a.frame, "imgsz": str(a.imgsz), "made_by": "nodes/detect/scripts/make_golden_raw.py"},
    )
    print(f"wrote {png} and {out}: output {list(y.shape)}, {len(anchors)} anchors kept, "
          f"max class score {y[0, 4:].max():.4f}")


if __name__ == "__main__":
    main()
