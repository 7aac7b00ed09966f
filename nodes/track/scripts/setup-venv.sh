#!/usr/bin/env bash
# Creates (idempotently) $REPO/.venv-track with the Python reference tools for the track stage:
#   motmetrics 1.4.0  - the reference MOT metrics (MOTA/MOTP/IDF1/...)
#   trackers 2.6.1    - Roboflow's ByteTrack/SORT (CPU-only, numpy-based), plus its dependency
#                       supervision (which has a second ByteTrack implementation)
# trackers needs numpy >= 2, motmetrics 1.4.0 calls np.asfarray (removed in numpy 2): our scripts
# install a one-line shim (np.asfarray = np.asarray(..., dtype=float)) before importing motmetrics.
# The golden TUD-Campus numbers are re-checked under that shim by the tests.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="$REPO/.venv-track"
STAMP="$VENV/.perch-track-v1"
if [[ -f "$STAMP" ]]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  "motmetrics==1.4.0" "trackers==2.6.1" "numpy>=2,<3" "pandas>=2" "scipy>=1.13"
"$VENV/bin/python" -c 'import motmetrics, trackers, supervision; print("venv-track ok")'
touch "$STAMP"
