#!/usr/bin/env bash
# The Jetson Nano binary, built and checked as it ships (README "Run on a Jetson Nano"):
#  1. cross-build `perch` (default features, profile `deploy`) for aarch64 against glibc 2.27
#     (JetPack 4) with cargo-zigbuild (zig and cargo-zigbuild from PyPI, in .venv-zig);
#  2. print its size, libraries and the highest GLIBC_ symbol version it needs; fail above 2.27;
#  3. under qemu-aarch64: `perch detect` on committed frames and a short `perch run` of
#     configs/nano.toml; both must equal the x86 build's output (same classes, boxes within 1 px,
#     scores within 1e-3, same track ids) and the run's frame accounting must balance.
# The x86 reference is $PERCH_BIN (the binary .ci/run built); without it, `cargo build -p perch`.
# Cost, cold: the cross-build is ~12 CPU-minutes (686 s dependencies + 27 s perch; ~6-7 min wall on 2
# idle cores, 92 min measured on a machine shared with ~15 other rustc processes); the x86 and qemu runs
# ~2 CPU-minutes (17 min wall on that loaded machine). Warm (binary built): only the runs.
# Env: PERCH_BIN (x86 reference), PERCH_AARCH64_TARGET_DIR, PERCH_AARCH64_OUT. Run from the repo root.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
GLIBC_MAX=2.27
TRIPLE=aarch64-unknown-linux-gnu
TARGET_DIR=${PERCH_AARCH64_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}}
OUT=${PERCH_AARCH64_OUT:-$TARGET_DIR/aarch64-check}
start=$(date +%s)
stamp() { echo "== [aarch64 +$(( $(date +%s) - start ))s] $*"; }

stamp "tools: aarch64 binutils + qemu (apt), rust target, zig + cargo-zigbuild (PyPI)"
need_apt=()
command -v aarch64-linux-gnu-objdump >/dev/null || need_apt+=(binutils-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need_apt+=(libc6-arm64-cross)
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${need_apt[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null; }
fi
rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
if [ ! -x .venv-zig/bin/cargo-zigbuild ]; then
    python3 -m venv .venv-zig
    .venv-zig/bin/pip install -q "ziglang==0.17.1" "cargo-zigbuild==0.24.1"
fi
export PATH="$PWD/.venv-zig/bin:$PATH"

stamp "cross-build: cargo zigbuild --profile deploy --target $TRIPLE.$GLIBC_MAX"
CARGO_TARGET_DIR="$TARGET_DIR" cargo zigbuild --locked --profile deploy --target "$TRIPLE.$GLIBC_MAX" -p perch --bin perch
BIN="$TARGET_DIR/$TRIPLE/deploy/perch"

stamp "binary: $BIN"
size=$(stat -c %s "$BIN")
echo "size: $size bytes ($(( size / 1024 / 1024 )) MiB)"
aarch64-linux-gnu-readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/needs: \1/p'
aarch64-linux-gnu-readelf -l "$BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/interpreter: \1/p'
if aarch64-linux-gnu-readelf -S "$BIN" | grep -q '\.symtab'; then echo "error: not stripped"; exit 1; fi
max=$(aarch64-linux-gnu-objdump -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
echo "highest GLIBC_ symbol version needed: $max (JetPack 4 has $GLIBC_MAX)"
if [ "$(printf '%s\n%s\n' "$max" "$GLIBC_MAX" | sort -V | tail -1)" != "$GLIBC_MAX" ]; then
    echo "error: the binary needs glibc $max > $GLIBC_MAX: it would not start on JetPack 4"
    aarch64-linux-gnu-objdump -T "$BIN" | grep "GLIBC_$max"
    exit 1
fi

X86=${PERCH_BIN:-}
if [ -z "$X86" ]; then
    stamp "x86 reference: cargo build -p perch"
    cargo build -p perch
    X86="${CARGO_TARGET_DIR:-$PWD/target}/debug/perch"
fi
# -cpu cortex-a57: the Nano's core exactly (NEON only: no dotprod, fp16 or SVE, which qemu's default `max` CPU has).
QEMU=(qemu-aarch64 -cpu cortex-a57 -L /usr/aarch64-linux-gnu)
rm -rf "$OUT" && mkdir -p "$OUT"

# Small inputs: emulation runs ~100x slower than the host, and imgsz 320 ~4x faster than 640.
FRAMES=(datasets/vtest/img1/000001.jpg datasets/vtest/img1/000100.jpg datasets/vtest/img1/000200.jpg)
DETECT_ARGS=(--json --imgsz 320 --threads 2)
# The f32 model here; the int8 model (models/yolov12n-int8, NEON kernels) is compared by the
# configs/nano.toml run below, which detects with it.
for model in models/yolov12n; do
    name=$(basename "$model")
    stamp "detect ($name, imgsz 320): x86 vs aarch64 under qemu, ${#FRAMES[@]} frames"
    "$X86" detect "${DETECT_ARGS[@]}" --model "$model" "${FRAMES[@]}" > "$OUT/detect-$name-x86.jsonl"
    "${QEMU[@]}" "$BIN" detect "${DETECT_ARGS[@]}" --model "$model" "${FRAMES[@]}" > "$OUT/detect-$name-aarch64.jsonl"
    python3 .ci/compare_detections.py "$OUT/detect-$name-x86.jsonl" "$OUT/detect-$name-aarch64.jsonl"
done

# configs/nano.toml as shipped (its int8 model, 320, 4 threads), on the committed replay: as fast as
# possible (nothing is stale), a budget no emulated frame can miss (otherwise frames would be dropped
# as `deadline` on qemu only), and every frame detected: the profile's `async` schedule picks frames
# by how fast the detector is, which qemu changes, so the two runs would detect different frames.
RUN_ARGS=(run --config configs/nano.toml
    --set source.kind='"replay"' --set source.path='"datasets/vtest"'
    --set source.pacing='"max"' --set source.end_frame=20 --set pipeline.budget_ms=3600000
    --set detect.schedule='"every_frame"')
stamp "run configs/nano.toml, 20 frames: x86 vs aarch64 under qemu"
"$X86" "${RUN_ARGS[@]}" --report "$OUT/run-x86.json" --detections "$OUT/run-x86.jsonl" > "$OUT/run-x86.txt"
"${QEMU[@]}" "$BIN" "${RUN_ARGS[@]}" --report "$OUT/run-aarch64.json" --detections "$OUT/run-aarch64.jsonl" | tee "$OUT/run-aarch64.txt"
python3 - "$OUT/run-x86.json" "$OUT/run-aarch64.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    f = r["frames"]
    dropped = sum(f["dropped"].values())
    print(f"{path}: captured {f['captured']}, published {f['published']}, dropped {dropped}, invariant_ok {r['invariant_ok']}")
    assert r["invariant_ok"] and f["captured"] == f["published"] + dropped, "frame accounting does not balance"
    assert f["captured"] == 20 and f["published"] == 20, "every frame of the replay must be published"
PY
python3 .ci/compare_detections.py "$OUT/run-x86.jsonl" "$OUT/run-aarch64.jsonl"
stamp "aarch64: glibc <= $GLIBC_MAX, detections equal the x86 build's"
