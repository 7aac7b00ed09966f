#!/usr/bin/env bash
# Creates (idempotently) the Python venv used by the detect stage's reference scripts:
# ONNX Runtime (golden outputs, speed peer, static INT8 peer with `onnx`), NumPy, Pillow,
# pycocotools (the reference for perch's COCO mAP, scripts/make_map_golden.py).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="$REPO/.venv-detect"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { apt-get install -y python3-venv >/dev/null && python3 -m venv "$VENV"; }
fi
if ! "$VENV/bin/python" -c "import onnxruntime, numpy, PIL, onnx, pycocotools" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "onnxruntime==1.31.1" "numpy<3" "pillow>=10" "onnx==1.23.2" "pycocotools==2.0.11"
fi
echo "$VENV"
