#!/usr/bin/env bash
# Idempotently create $REPO/.venv-preprocess with OpenCV + NumPy for the cv2 reference check.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
VENV="$REPO/.venv-preprocess"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import cv2, numpy" 2>/dev/null || "$VENV/bin/pip" install -q "numpy<3" "opencv-python-headless==4.*"
echo "$VENV"
