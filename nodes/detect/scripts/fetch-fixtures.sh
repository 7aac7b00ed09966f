#!/usr/bin/env bash
# Fetches the reference ONNX files into $REPO/.cache/fixtures/ (gitignored), idempotently:
#   yolov12n.onnx  from the crates.io package easy-yolo 0.1.3 (cargo fetch; the crate is never built)
#   nudenet/320n.onnx  from the PyPI package nudenet 3.4.2 (pip download; the wheel is only unzipped)
# usage: fetch-fixtures.sh [yolov12n] [nudenet]   (default: both)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
DIR="$REPO/.cache/fixtures"
mkdir -p "$DIR"
want=("$@"); [ ${#want[@]} -eq 0 ] && want=(yolov12n nudenet)

check() { # file sha256
    echo "$2  $1" | sha256sum --check --quiet || { echo "fetch-fixtures: $1 has the wrong sha256" >&2; exit 1; }
}

for w in "${want[@]}"; do
case "$w" in
yolov12n)
    f="$DIR/yolov12n.onnx"
    if [ ! -f "$f" ]; then
        scratch="$DIR/easy-yolo-fetch"
        mkdir -p "$scratch/src"
        printf '[package]\nname = "fetch-easy-yolo"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\neasy-yolo = "=0.1.3"\n' > "$scratch/Cargo.toml"
        touch "$scratch/src/lib.rs"
        (cd "$scratch" && cargo fetch --quiet)
        zip="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/easy-yolo-0.1.3/yolov12n.onnx.zip | head -1)"
        python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('yolov12n.onnx', sys.argv[2])" "$zip" "$DIR"
    fi
    check "$f" e548ab3a406227202334bf5a6623c9814ac6286ff04e68aeb4dc2357732d1a4f
    ;;
nudenet)
    f="$DIR/nudenet/320n.onnx"
    if [ ! -f "$f" ]; then
        py="$(bash "$REPO/nodes/detect/scripts/setup-venv.sh")/bin/python"
        "$py" -m pip download --quiet --disable-pip-version-check --no-deps "nudenet==3.4.2" -d "$DIR"
        python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('nudenet/320n.onnx', sys.argv[2])" "$DIR/nudenet-3.4.2-py3-none-any.whl" "$DIR"
    fi
    check "$f" c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f
    ;;
*) echo "fetch-fixtures: unknown fixture '$w' (yolov12n, nudenet)" >&2; exit 2 ;;
esac
echo "$f"
done
