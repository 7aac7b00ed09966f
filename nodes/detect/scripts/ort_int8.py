#!/usr/bin/env python3
"""ONNX Runtime f32 and static INT8 as a peer of `perch eval quant` (the trade-off table's ORT rows).

The INT8 model is onnxruntime.quantization.quantize_static of the same Ultralytics export perch
imports: QDQ format, per-channel s8 weights, u8 activations, calibrated on the *same* frames as
perch's int8 variants and fed perch's exact input tensors (perch letterboxes every frame and hands
the f32 CHW tensor over in a file), with the Detect head's post-processing (DFL reshape/softmax/
decode, sigmoid, the concatenations; every node of the Detect module except its cv2/cv3 convs) kept
in float: quantizing that concat of boxes (0..640) and class scores (0..1) with one scale zeroes all
scores (../shared/notes/int8.md). The quantized file is cached in --cache keyed by the sha256 of the
ONNX, the calibration tensors and the recipe.

Two ways to run it:

serve (what `perch eval quant --peer "..."` starts): JSON requests on stdin, one JSON answer per line
on stdout; perch decodes the raw outputs with its own NMS and scores them with its own mAP, and
interleaves the peer's latency rounds with its own variants'.
  {"cmd": "input"}                                                -> {"ok": true, "input_hw": [H, W] or null}
  {"cmd": "calib_add", "input": PATH, "shape": [1, 3, H, W]}      -> {"ok": true, "count": N}
  {"cmd": "prepare"}                                              -> {"ok": true, "variants": [{"name",
        "path", "bytes", "load_ms", "precision", "recipe"}] (ort-f32, then ort-int8-METHOD per --method),
        "input_hw": [H, W] or null, "onnxruntime", "threads", "quantize_s": {METHOD: s}, "cached": {METHOD: bool}}
  {"cmd": "forward", "variant": NAME, "input": PATH, "shape": [...], "output": PATH}
                                                                  -> {"ok": true, "shape": [1, 4 + nc, N]}
        (the raw output, little-endian f32, is written to "output")
  {"cmd": "bench", "variant": NAME, "input": PATH, "shape": [...], "runs": N, "warmup": K}
                                                                  -> {"ok": true, "ms": [...]}
  {"cmd": "quit"}
  Errors answer {"ok": false, "error": "..."} and the server keeps going.

quantize (standalone): quantize_static from raw f32 tensor files, e.g. written by the dump_tensor example.
  .venv-detect/bin/python nodes/detect/scripts/ort_int8.py quantize --onnx .cache/fixtures/yolov12n.onnx \
      --tensors DIR_OF_F32_FILES --imgsz 640 --out yolov12n-int8.onnx [--method minmax|percentile|entropy]

usage (serve, what perch runs):
  .venv-detect/bin/python nodes/detect/scripts/ort_int8.py serve --onnx .cache/fixtures/yolov12n.onnx \
      [--method minmax,percentile] [--threads 2] [--cache .cache/ort-int8]
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}
# ORT's own defaults for the histogram methods, stated here so the recipe is on record.
PERCENTILE = 99.999
# Frames whose intermediate outputs the histogram methods bin at a time.
CHUNK = 8


def detect_module(model):
    """The Detect head's module prefix: the highest-numbered `/model.N/` that has a `dfl` node."""
    best = None
    for n in model.graph.node:
        parts = n.name.split("/")
        if len(parts) > 2 and parts[1].startswith("model.") and "/dfl" in n.name:
            best = parts[1]
    if best is None:
        raise SystemExit("ort_int8: no Detect head (a /model.N/dfl node) in this ONNX: not an Ultralytics YOLO export")
    return "/" + best + "/"


def float_nodes(model):
    """Nodes kept in float: the Detect module's post-processing (all but its cv2/cv3 branch convs)."""
    prefix = detect_module(model)
    return [n.name for n in model.graph.node
            if n.name.startswith(prefix) and "/cv2." not in n.name and "/cv3." not in n.name]


class Reader(CalibrationDataReader):
    def __init__(self, name, tensors):
        self.name, self.tensors, self.i = name, tensors, 0

    def get_next(self):
        if self.i >= len(self.tensors):
            return None
        self.i += 1
        return {self.name: self.tensors[self.i - 1]}

    def rewind(self):
        self.i = 0


def quantize(onnx_path, tensors, method, out_path):
    model = onnx.load(onnx_path)
    name = model.graph.input[0].name
    excluded = float_nodes(model)
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if method != "minmax":
        # The histogram calibrators keep every intermediate output of every frame in memory before
        # binning (64 frames of YOLOv12n @640 were OOM-killed with 23 GB): bin in chunks instead.
        extra["CalibMaxIntermediateOutputs"] = CHUNK
    if method == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    quantize_static(onnx_path, out_path, Reader(name, tensors), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=METHODS[method], nodes_to_exclude=excluded, extra_options=extra)
    return excluded


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s, (time.perf_counter() - t) * 1e3


def read_tensor(path, shape):
    x = np.fromfile(path, dtype="<f4")
    if x.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {x.size} values, expected {shape}")
    return x.reshape(shape)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def fixed_input_hw(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    hw = [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
    return hw if all(hw) else None


class Server:
    def __init__(self, a):
        self.a = a
        self.calib = []
        self.calib_hash = hashlib.sha256()
        self.sessions = {}

    def handle(self, req):
        cmd = req.get("cmd")
        if cmd == "input":
            return {"input_hw": fixed_input_hw(onnx.load(self.a.onnx))}
        if cmd == "calib_add":
            x = read_tensor(req["input"], req["shape"])
            self.calib.append(x)
            self.calib_hash.update(x.tobytes())
            return {"count": len(self.calib)}
        if cmd == "prepare":
            return self.prepare()
        if cmd == "forward":
            y = self.sessions[req["variant"]][0].run(None, {self.input_name: read_tensor(req["input"], req["shape"])})[0]
            np.ascontiguousarray(y, dtype="<f4").tofile(req["output"])
            return {"shape": list(y.shape)}
        if cmd == "bench":
            s = self.sessions[req["variant"]][0]
            feed = {self.input_name: read_tensor(req["input"], req["shape"])}
            for _ in range(int(req.get("warmup", 0))):
                s.run(None, feed)
            ms = []
            for _ in range(int(req["runs"])):
                t = time.perf_counter()
                s.run(None, feed)
                ms.append((time.perf_counter() - t) * 1e3)
            return {"ms": ms}
        raise ValueError(f"unknown cmd {cmd!r}")

    def prepare(self):
        a = self.a
        if not self.calib:
            raise ValueError("no calibration tensors (send calib_add first)")
        model = onnx.load(a.onnx)
        self.input_name = model.graph.input[0].name
        variants = []
        s, load_ms = session(a.onnx, a.threads)
        self.sessions["ort-f32"] = (s, load_ms)
        variants.append({"name": "ort-f32", "path": a.onnx, "bytes": os.path.getsize(a.onnx), "load_ms": load_ms,
                         "precision": "f32", "recipe": None})
        quantize_s, cached = {}, {}
        for method in a.methods:
            recipe = {"format": "QDQ", "per_channel": True, "activations": "u8 (asymmetric)",
                      "weights": "s8 (symmetric)", "calibration": method,
                      "calibration_frames": len(self.calib), "float_nodes": "Detect post-processing"}
            if method == "percentile":
                recipe["percentile"] = PERCENTILE
            if method != "minmax":
                recipe["histogram_chunk_frames"] = CHUNK
            key = hashlib.sha256((sha256_file(a.onnx) + self.calib_hash.hexdigest()
                                  + json.dumps(recipe, sort_keys=True) + ort.__version__).encode()).hexdigest()[:16]
            os.makedirs(a.cache, exist_ok=True)
            q = os.path.join(a.cache, f"{os.path.splitext(os.path.basename(a.onnx))[0]}-int8-{method}-{key}.onnx")
            cached[method] = os.path.exists(q)
            t = time.perf_counter()
            if not cached[method]:
                tmp = q + ".partial.onnx"
                quantize(a.onnx, self.calib, method, tmp)
                os.replace(tmp, q)
            quantize_s[method] = time.perf_counter() - t
            name = f"ort-int8-{method}"
            s, load_ms = session(q, a.threads)
            self.sessions[name] = (s, load_ms)
            variants.append({"name": name, "path": q, "bytes": os.path.getsize(q), "load_ms": load_ms,
                             "precision": "int8", "recipe": recipe})
        self.calib = []
        return {"variants": variants, "input_hw": fixed_input_hw(model), "onnxruntime": ort.__version__,
                "threads": a.threads, "quantize_s": quantize_s, "cached": cached}


def serve(a):
    srv = Server(a)
    out = sys.stdout
    sys.stdout = sys.stderr  # ORT/quantization prints go to stderr, answers alone to stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            ans = {"ok": True, **srv.handle(req)}
        except Exception as e:  # answer and keep serving: perch reports the error
            ans = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(ans) + "\n")
        out.flush()


def quantize_cmd(a):
    files = sorted(os.path.join(a.tensors, f) for f in os.listdir(a.tensors) if f.endswith(".f32"))
    if not files:
        raise SystemExit(f"ort_int8: no .f32 tensors in {a.tensors}")
    tensors = [read_tensor(f, [1, 3, a.imgsz, a.imgsz]) for f in files]
    excluded = quantize(a.onnx, tensors, a.method, a.out)
    print(f"wrote {a.out}: {len(tensors)} calibration tensors, {a.method}, {len(excluded)} nodes kept in float")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--onnx", required=True)
    s.add_argument("--method", default="percentile",
                   help=f"calibration method(s), comma-separated: {', '.join(sorted(METHODS))}; one INT8 row each")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", ".cache", "ort-int8"))
    q = sub.add_parser("quantize")
    q.add_argument("--onnx", required=True)
    q.add_argument("--tensors", required=True)
    q.add_argument("--imgsz", type=int, default=640)
    q.add_argument("--method", choices=sorted(METHODS), default="percentile")
    q.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.mode == "serve":
        a.methods = [m.strip() for m in a.method.split(",") if m.strip()]
        bad = [m for m in a.methods if m not in METHODS]
        if bad or not a.methods:
            ap.error(f"--method: unknown {bad}; use {', '.join(sorted(METHODS))}")
        serve(a)
    else:
        quantize_cmd(a)


if __name__ == "__main__":
    main()
