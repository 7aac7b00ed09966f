#!/usr/bin/env python3
"""perch's detector against ONNX Runtime on the same ONNX file, input size, input tensor and thread
count, measured in one invocation (medians on this shared machine drift 10-20 % between runs, so
only ratios measured side by side mean something).

Rounds alternate ORT and perch (`perch bench detect --json`); the ratio is perch / ORT of the
median latencies (network + decode + NMS for perch; the network alone for ORT, whose export has no
NMS: this favours ORT by perch's ~1 ms of postprocessing, and perch's forward-only ratio is printed
too).

usage (repo root):  .venv-detect/bin/python nodes/detect/scripts/bench_vs_ort.py \
    [--onnx .cache/fixtures/yolov12n.onnx] [--model models/yolov12n] [--imgsz 640] [--threads 2] \
    [--runs 30] [--warmup 3] [--rounds 2] [--perch "target/release/perch"] [--json]
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.dirname(__file__))
from make_golden import perch_tensor  # noqa: E402


def stats(ms):
    v = sorted(ms)
    n = len(v)
    rank = lambda p: v[min(max(int(np.ceil(p / 100 * n)), 1), n) - 1]  # noqa: E731
    return {"n": n, "median": statistics.median(v), "p95": rank(95), "p99": rank(99), "min": v[0], "max": v[-1],
            "mean": sum(v) / n}


def bench_ort(onnx, x, threads, runs, warmup):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t) * 1e3
    name = sess.get_inputs()[0].name
    for _ in range(warmup):
        sess.run(None, {name: x})
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ms.append((time.perf_counter() - t) * 1e3)
    return {"load_ms": load_ms, "latency_ms": stats(ms)}


def default_perch():
    for p in ("target/release/perch",):
        if os.path.exists(os.path.join(REPO, p)):
            return p + " bench detect"
    env = dict(os.environ)
    target = env.setdefault("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "perch"], cwd=REPO, env=env, check=True)
    return os.path.join(target, "release", "perch") + " bench detect"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=os.path.join(REPO, ".cache/fixtures/yolov12n.onnx"))
    ap.add_argument("--model", default="models/yolov12n")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="ORT, perch pairs to alternate")
    ap.add_argument("--image", default="datasets/vtest/img1/000001.jpg")
    ap.add_argument("--perch", default=None, help="command that takes `perch bench detect` arguments")
    ap.add_argument("--dump-tensor", default=None, help="command instead of the dump_tensor example (IMAGE IMGSZ OUT)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    perch_cmd = shlex.split(a.perch) if a.perch else shlex.split(default_perch())
    x, _ = perch_tensor(os.path.join(REPO, a.image), a.imgsz, a.dump_tensor and shlex.split(a.dump_tensor))
    rounds = []
    for _ in range(a.rounds):
        o = bench_ort(a.onnx, x, a.threads, a.runs, a.warmup)
        cmd = perch_cmd + ["--model", a.model, "--imgsz", str(a.imgsz), "--threads", str(a.threads),
                           "--runs", str(a.runs), "--warmup", str(a.warmup), "--image", a.image, "--json"]
        res = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
        p = json.loads(res.stdout.strip().splitlines()[-1])
        rounds.append({"ort": o, "perch": p,
                       "ratio": p["latency_ms"]["median"] / o["latency_ms"]["median"],
                       "ratio_forward": p["forward_ms"]["median"] / o["latency_ms"]["median"]})
    ratio = statistics.median(r["ratio"] for r in rounds)
    out = {"onnx": os.path.basename(a.onnx), "model": a.model, "imgsz": a.imgsz, "threads": a.threads,
           "onnxruntime": ort.__version__, "rounds": rounds, "ratio_perch_over_ort": ratio}
    if a.json:
        print(json.dumps(out))
        return
    print(f"detector benchmark: {os.path.basename(a.onnx)} vs {a.model}, imgsz {a.imgsz}, {a.threads} threads, "
          f"{a.runs} runs after {a.warmup} warm-up, onnxruntime {ort.__version__}")
    for i, r in enumerate(rounds, 1):
        o, p = r["ort"]["latency_ms"], r["perch"]["latency_ms"]
        print(f" round {i}:")
        print(f"  ORT    load {r['ort']['load_ms']:7.1f} ms  median {o['median']:7.2f} ms  p95 {o['p95']:7.2f}  "
              f"p99 {o['p99']:7.2f}  min {o['min']:7.2f}  n={o['n']}")
        print(f"  perch  load {r['perch']['load_ms']:7.1f} ms  median {p['median']:7.2f} ms  p95 {p['p95']:7.2f}  "
              f"p99 {p['p99']:7.2f}  min {p['min']:7.2f}  n={p['n']}  (forward {r['perch']['forward_ms']['median']:.2f}, "
              f"postprocess {r['perch']['postprocess_ms']['median']:.2f}; peak RSS {r['perch']['peak_rss_mib']:.0f} MiB)")
        print(f"  ratio perch/ORT: {r['ratio']:.2f} (forward only {r['ratio_forward']:.2f})")
    print(f"ratio perch/ORT (median over rounds): {ratio:.2f}")


if __name__ == "__main__":
    main()
