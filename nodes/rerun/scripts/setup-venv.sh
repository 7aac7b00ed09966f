#!/usr/bin/env bash
# Idempotently create $REPO/.venv-rerun with Rerun's Python SDK + CLI (the reader our tests use).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="$REPO/.venv-rerun"
WANT="rerun-sdk==0.36.3"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import rerun, PIL, sys; sys.exit(rerun.__version__ != "0.36.3")' 2>/dev/null; then
    echo "setup-venv: $VENV already has $WANT"
else
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$WANT" "pillow>=10"
fi
# The CLI asks to send usage data on first run; perch's checks never should.
"$VENV/bin/rerun" analytics disable >/dev/null 2>&1 || true
echo "setup-venv: $("$VENV/bin/rerun" --version 2>/dev/null | head -1)"
