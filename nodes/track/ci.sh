#!/usr/bin/env bash
# CI for the track stage: Python reference venv, the crate's tests (metric golden values, tracker
# behaviour, metrics cross-checked against motmetrics + TrackEval-parity HOTA), the benches in test
# mode, and the side-by-side comparison with the reference ByteTrack (fails if ours falls below it).
# Run from the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PERCH_REQUIRE_FIXTURES="${PERCH_REQUIRE_FIXTURES:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

bash nodes/track/scripts/setup-venv.sh
cargo test -p perch-track
# Benchmarks compile and run once each (criterion's test mode), no timing asserted.
cargo test -p perch-track --benches
# The comparison drives `perch eval track`: .ci/run builds the binary once and passes it in PERCH_BIN.
if [ -z "${PERCH_BIN:-}" ]; then
    cargo build -p perch
    PERCH_BIN="$CARGO_TARGET_DIR/debug/perch"
fi
.venv-track/bin/python nodes/track/scripts/compare_bytetrack.py --bin "$PERCH_BIN" --seeds 5 --check
