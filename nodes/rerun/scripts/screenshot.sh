#!/usr/bin/env bash
# Screenshot of the real Rerun viewer (PyPI rerun-sdk==0.36.3) showing RECORDING.rrd, headless:
# Xvfb + Mesa's software renderer. Needs apt: xvfb xauth mesa-vulkan-drivers libgl1-mesa-dri.
#   screenshot.sh RECORDING.rrd OUT.png [WIDTHxHEIGHT]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
RRD="$1"; OUT="$2"; SIZE="${3:-1400x800}"
W="${SIZE%x*}"; H="${SIZE#*x}"
rm -f "$OUT"
# The screen is twice as wide as the window so Xvfb's pointer (at the screen centre) is outside it
# and no hover tooltip appears. The viewer saves the picture, then 0.36.3 panics while quitting
# ("Failed to take store hub"): judge by the file, not the exit status.
xvfb-run -a -s "-screen 0 $((2 * W + 200))x$((H + 200))x24" \
    "$REPO/.venv-rerun/bin/rerun" --port auto "$RRD" --screenshot-to "$OUT" --window-size "$SIZE" \
    >/dev/null 2>&1 || true
test -s "$OUT" || { echo "screenshot.sh: the viewer wrote no $OUT" >&2; exit 1; }
echo "screenshot.sh: wrote $OUT"
