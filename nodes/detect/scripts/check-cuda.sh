#!/usr/bin/env bash
# Type-checks the detector's `cuda` feature (Candle's CUDA backend + perch's f16 path) on a
# machine without a GPU or a CUDA install: nvcc and its headers come from PyPI wheels, because
# Candle's build scripts compile their kernels to PTX even for `cargo check`. Nothing runs on a
# GPU here; the f16 numerics are tested on the CPU (tests/model_parity.rs, `f16`).
#
# usage (repo root): bash nodes/detect/scripts/check-cuda.sh        (~9 min the first time on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."

VENV=.venv-cuda
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check \
    "nvidia-cuda-nvcc==13.5.37" "nvidia-cuda-cccl==13.3.5.0.6" "nvidia-cuda-runtime==13.5.37"
CUDA_ROOT="$(cd "$VENV"/lib/python3*/site-packages/nvidia/cu13 && pwd)"

export PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" CUDA_HOME="$CUDA_ROOT"
# cudarc picks its bindings by this version instead of asking a (missing) CUDA install; 90 = H100.
export CUDARC_CUDA_VERSION=13020 CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export NVCC_PREPEND_FLAGS="-I$CUDA_ROOT/include ${NVCC_PREPEND_FLAGS:-}"

echo "== detect: cargo check --features cuda (nvcc $(nvcc --version | tail -1))"
# One invocation (perch's `cuda` feature turns on perch-detect's): a second with other features
# would rebuild Candle's kernels, another ~9 min.
cargo check -p perch --no-default-features --features cuda --all-targets
echo "== detect: the cuda feature type-checks"
