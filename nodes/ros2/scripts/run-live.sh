#!/usr/bin/env bash
# Runs the live ROS 2 interop matrix inside a private network namespace with multicast on `lo`,
# so DDS discovery never touches a real interface. Usage: run-live.sh FIXTURE_BINARY [live_matrix args]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="${PERCH_ROS2_VENV:-$REPO/.venv-ros2}"
FIXTURE="${1:?usage: run-live.sh FIXTURE_BINARY [live_matrix.py args]}"
shift
[[ -x "$FIXTURE" ]] || { echo "run-live: $FIXTURE is not an executable (build: cargo build -p perch-ros2 --example ros2_fixture)" >&2; exit 2; }
[[ -x "$VENV/bin/python" ]] || { echo "run-live: no venv at $VENV (run nodes/ros2/scripts/setup-venv.sh)" >&2; exit 2; }
exec unshare -rn bash -c '
  set -e
  ip link set lo up
  ip link set lo multicast on
  ip route add 224.0.0.0/4 dev lo
  exec "$@"' run-live "$VENV/bin/python" "$HERE/live_matrix.py" --fixture "$FIXTURE" "$@"
