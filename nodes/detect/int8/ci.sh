#!/usr/bin/env bash
# CI for perch-int8 (run from anywhere inside the repo): host tests (every x86 variant this CPU
# has, against the scalar reference), then the same tests cross-built for aarch64 and run twice
# under qemu-aarch64 (runner in .cargo/config.toml): as a Cortex-A57 (ARMv8.0, no dotprod: the
# smull/smlal path) and as qemu's `max` CPU (dotprod: the sdot path). Benches are only
# type-checked (numbers come from `cargo bench`, never from CI).
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || echo "$(dirname "${BASH_SOURCE[0]}")/../../..")"

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need_apt[@]}" || { apt-get update && apt-get install -y "${need_apt[@]}"; }
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

echo "== perch-int8: host tests"
cargo test -p perch-int8
echo "== perch-int8: aarch64 tests under qemu, Cortex-A57 (NEON smull/smlal)"
QEMU_CPU=cortex-a57 cargo test -p perch-int8 --target aarch64-unknown-linux-gnu
echo "== perch-int8: aarch64 tests under qemu, max CPU (NEON sdot)"
QEMU_CPU=max cargo test -p perch-int8 --target aarch64-unknown-linux-gnu
echo "== perch-int8: benches type-check"
cargo check -p perch-int8 --benches
