#!/usr/bin/env bash
# The test video: the vtest frames (datasets/vtest, real footage; see its PROVENANCE.md) encoded as
# H.264 in MP4 by ffmpeg (Debian `ffmpeg`, libx264), 10 fps, a keyframe every 10 frames, the index
# (moov) first so a truncated file still plays up to the cut. Made at test time, never committed.
# Usage: make-clip.sh OUT.mp4 [FRAMES (default 200)] [extra ffmpeg output options...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
out="${1:?usage: make-clip.sh OUT.mp4 [FRAMES] [ffmpeg options]}"
frames="${2:-200}"
shift $(( $# >= 2 ? 2 : 1 ))
command -v ffmpeg >/dev/null || { echo "make-clip: needs ffmpeg (apt install ffmpeg)" >&2; exit 2; }
ffmpeg -loglevel error -y -framerate 10 -i "$REPO/datasets/vtest/img1/%06d.jpg" -frames:v "$frames" \
    -c:v libx264 -preset veryfast -crf 18 -g 10 -pix_fmt yuv420p -movflags +faststart "$@" "$out"
