#!/usr/bin/env bash
# The full accuracy-latency table (not part of CI: tens of minutes on 2 cores): the shipped model's
# f32 and int8 variants and ONNX Runtime's f32 / static INT8 of the same export, calibrated on the
# first 64 committed vtest frames, evaluated on 119 other frames of the clip (201, 206, ..., 791),
# at 640 and 320, 30 timed frames per variant in 3 interleaved rounds, 2 threads.
# usage (repo root): bash nodes/detect/scripts/eval-quant.sh [more perch eval quant options]
#   PERCH=path/to/perch (default: target/release/perch, built if missing), OUT=out/eval-quant
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
OUT="${OUT:-out/eval-quant}"
TARGET="${CARGO_TARGET_DIR:-target}"
PERCH="${PERCH:-$TARGET/release/perch}"
[ -x "$PERCH" ] || cargo build --release -p perch
bash nodes/detect/scripts/setup-venv.sh >/dev/null
bash nodes/detect/scripts/fetch-fixtures.sh yolov12n >/dev/null
bash nodes/detect/scripts/fetch-vtest-full.sh >/dev/null
frames=.cache/vtest-full/img1
"$PERCH" eval quant --model models/yolov12n \
    --variants "${VARIANTS:-f32,int8-minmax,int8-percentile,int8-mixed}" \
    --calib datasets/vtest/img1 --calib-frames 64 \
    --frames "$frames" --frames-skip 200 --frames-every 5 \
    --imgsz 640,320 --runs 30 --rounds 3 --threads 2 \
    --peer ".venv-detect/bin/python nodes/detect/scripts/ort_int8.py serve --onnx .cache/fixtures/yolov12n.onnx --method ${PEER_METHODS:-minmax,percentile} --threads 2" \
    --out "$OUT" --plot "$OUT/scatter.png" "$@"
