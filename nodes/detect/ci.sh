#!/usr/bin/env bash
# CI for the detect stage (run from the repo root): venv, fetched reference models, tests.
# Tests that need a fetched fixture fail instead of skipping when it is missing
# (PERCH_REQUIRE_FIXTURES=1, the default here and in .ci/run; perch_pipeline::fixtures).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# The network runs ~10x slower unoptimised: build this crate at opt-level 3 (dependencies already
# are, see the root Cargo.toml); the rest of the dev profile is unchanged, so nothing else rebuilds.
CARGO_FLAGS=(--config 'profile.dev.package.perch-detect.opt-level=3')

echo "== detect: python venv and fixtures"
bash nodes/detect/scripts/setup-venv.sh >/dev/null
bash nodes/detect/scripts/fetch-fixtures.sh yolov12n nudenet

echo "== detect: import the YOLOv8n fixture with perch's importer"
# .ci/run builds the binary once and passes it in PERCH_BIN.
if [ -z "${PERCH_BIN:-}" ]; then
    cargo build -q -p perch
    PERCH_BIN="${CARGO_TARGET_DIR:-target}/debug/perch"
fi
"$PERCH_BIN" model import .cache/fixtures/nudenet/320n.onnx -o .cache/fixtures/nudenet-320n --force

echo "== detect: the mAP golden cases still agree with pycocotools (~3 s)"
.venv-detect/bin/python nodes/detect/scripts/make_map_golden.py --out nodes/detect/tests/golden/map_cases.json --check

echo "== detect: tests"
PERCH_REQUIRE_FIXTURES="${PERCH_REQUIRE_FIXTURES:-1}" cargo test "${CARGO_FLAGS[@]}" -p perch-detect
