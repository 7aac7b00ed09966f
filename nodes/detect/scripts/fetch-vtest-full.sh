#!/usr/bin/env bash
# All 795 frames of vtest.avi (the clip whose first 200 frames are committed in datasets/vtest) as
# JPEG in $REPO/.cache/vtest-full/img1/000001.jpg ... (gitignored), idempotently: more held-out
# frames for `perch eval quant` (e.g. --frames .cache/vtest-full/img1 --frames-skip 200).
# Source: Debian package opencv-doc (apt-get download; Apache-2.0 AND BSD-3-Clause), decoded with
# ffmpeg with the same settings as the committed frames (datasets/vtest/PROVENANCE.md).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DIR="$REPO/.cache/vtest-full"
AVI_SHA=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
if [ "$(ls "$DIR/img1" 2>/dev/null | wc -l)" = 795 ]; then echo "$DIR/img1"; exit 0; fi
command -v ffmpeg >/dev/null || { echo "fetch-vtest-full: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }
mkdir -p "$DIR"
avi="$DIR/vtest.avi"
if [ ! -f "$avi" ]; then
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    (cd "$scratch" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc >/dev/null; })
    dpkg-deb -x "$scratch"/opencv-doc_*.deb "$scratch/x"
    cp "$scratch/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$avi"
fi
echo "$AVI_SHA  $avi" | sha256sum --check --quiet || { echo "fetch-vtest-full: $avi has the wrong sha256" >&2; exit 1; }
rm -rf "$DIR/img1.partial" && mkdir -p "$DIR/img1.partial"
ffmpeg -loglevel error -i "$avi" -q:v 10 "$DIR/img1.partial/%06d.jpg"
n="$(ls "$DIR/img1.partial" | wc -l)"
[ "$n" = 795 ] || { echo "fetch-vtest-full: ffmpeg wrote $n frames, expected 795" >&2; exit 1; }
rm -rf "$DIR/img1" && mv "$DIR/img1.partial" "$DIR/img1"
echo "$DIR/img1"
