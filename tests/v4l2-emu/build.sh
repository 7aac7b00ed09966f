#!/usr/bin/env bash
# Build the V4L2 emulator (test tooling, never part of perch): build.sh OUT.so
# Needs a C compiler, the kernel's V4L2 headers (linux-libc-dev) and libjpeg (apt libjpeg-dev).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: build.sh OUT.so}"
mkdir -p "$(dirname "$out")"
# Rebuild only when a source is newer than the library.
if [ -f "$out" ] && [ -z "$(find "$here" -name '*.[ch]' -newer "$out")" ]; then
    exit 0
fi
tmp="$out.tmp.$$"
${CC:-cc} -shared -fPIC -O2 -g -Wall -Wextra -fvisibility=hidden -o "$tmp" "$here"/*.c -ldl -lpthread -ljpeg
mv -f "$tmp" "$out"
