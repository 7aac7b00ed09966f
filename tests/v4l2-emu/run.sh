#!/usr/bin/env bash
# Run a command against an emulated USB camera at /dev/video0 serving datasets/vtest (MJPEG and YUYV):
#   tests/v4l2-emu/run.sh target/release/perch devices
#   tests/v4l2-emu/run.sh target/release/perch run --config configs/nano.toml --source /dev/video0
#   V4L2EMU_UNPLUG_AFTER=50 V4L2EMU_REPLUG_MS=2000 tests/v4l2-emu/run.sh target/release/perch run --source 0
# Every V4L2EMU_* variable is described in tests/v4l2-emu/README.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lib="${V4L2EMU_LIB:-${CARGO_TARGET_DIR:-$repo/target}/v4l2emu/libv4l2emu.so}"
bash "$here/build.sh" "$lib"
export V4L2EMU_FRAMES="${V4L2EMU_FRAMES:-$repo/datasets/vtest/img1}"
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$@"
