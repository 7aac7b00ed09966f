#!/usr/bin/env bash
# CI for perch-preprocess: host tests, then the same tests cross-built for aarch64 (the Jetson's
# CPU, NEON path) and run under qemu-aarch64 via the runner in .cargo/config.toml. Benches are only
# type-checked (criterion numbers come from `cargo bench`, never from CI). Run from the repo root.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need_apt[@]}" || { apt-get update && apt-get install -y "${need_apt[@]}"; }
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

echo "== perch-preprocess: OpenCV reference venv"
bash nodes/preprocess/scripts/setup-venv.sh

echo "== perch-preprocess: host tests"
cargo test -p perch-preprocess
echo "== perch-preprocess: aarch64 tests under qemu"
cargo test -p perch-preprocess --target aarch64-unknown-linux-gnu
echo "== perch-preprocess: benches type-check (a release bench build is too slow for CI)"
cargo check -p perch-preprocess --benches
