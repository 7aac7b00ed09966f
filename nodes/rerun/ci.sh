#!/usr/bin/env bash
# CI for nodes/rerun: Rerun's Python reader in .venv-rerun, then the crate's tests, whose .rrd
# files are read back by scripts/check_rrd.py. Run from the repo root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash nodes/rerun/scripts/setup-venv.sh
python3 -c "import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]" nodes/rerun/scripts/check_rrd.py nodes/rerun/scripts/render_recording.py
# Dev profile (dependencies at opt-level 3). The crate is tested in one cargo invocation with the
# perch binary's tests (`--features rerun`, including the end-to-end read-back): tested alone it
# resolves ~30 shared dependencies with other features and rebuilds most of Rerun's tree (~13 min).
# With PERCH_REQUIRE_FIXTURES=1 the read-back tests fail instead of skipping when the venv is missing.
# `perch/camera` as in .ci/run's build of the binary (same features: the binary is built once); its
# camera tests run against the V4L2 emulator (tests/v4l2-emu).
cargo test -p perch-rerun -p perch --features perch/rerun,perch/camera,perch/video "$@"
