#!/usr/bin/env bash
# Soak test of the default job (not part of .ci/run: it takes 30 minutes).
#
#   scripts/soak.sh [--bin target/release/perch] [--seconds 1800] [--out DIR] [-- extra `perch run` args]
#
# Runs `perch run --config configs/replay.toml --set source.loop=true` with --report and
# --detections, samples the process's RSS (and the machine's load) every 10 s, stops it with
# Ctrl-C (SIGINT) at the end and checks:
#   * RSS growth after the first minute < 2 % (median of the last minute vs median of minute 1-2),
#   * the report's invariant is exact, pool misses are 0, no output errors,
#   * --detections holds only whole JSON lines, one per published frame.
# Writes DIR/rss.csv, DIR/report.json, DIR/summary.txt. Exit 0 when every check passes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${PERCH_BIN:-target/release/perch}"
SECS=1800
OUT="/tmp/perch-soak-$$"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$BIN" ]] || { echo "soak: $BIN is not built (cargo build --release)" >&2; exit 2; }
mkdir -p "$OUT"
"$BIN" run --config configs/replay.toml --set source.loop=true \
  --report "$OUT/report.json" --detections "$OUT/detections.jsonl" "$@" >"$OUT/stdout.log" 2>"$OUT/stderr.log" &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true' EXIT
echo "t_s,rss_kib,load1" >"$OUT/rss.csv"
start=$(date +%s)
while kill -0 "$PID" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo "")
  [[ -n "$rss" ]] && echo "$now,$rss,$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/rss.csv"
  (( now >= SECS )) && break
  sleep 10
done
kill -INT "$PID" 2>/dev/null || true
rc=0
wait "$PID" || rc=$?
trap - EXIT
python3 - "$OUT" "$rc" "$SECS" <<'PY'
import csv, json, statistics, sys
out, rc, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [(int(r["t_s"]), int(r["rss_kib"]), float(r["load1"])) for r in csv.DictReader(open(f"{out}/rss.csv"))]
problems = []
if rc != 0:
    problems.append(f"perch exited {rc}")
base = [r for t, r, _ in rows if 60 <= t < 120]
last = [r for t, r, _ in rows if t >= rows[-1][0] - 60]
growth = None
if not base or not last:
    problems.append("too few RSS samples (run at least 3 minutes)")
else:
    b, e = statistics.median(base), statistics.median(last)
    growth = (e - b) / b * 100
    if growth >= 2.0:
        problems.append(f"RSS grew {growth:.2f} % after the first minute")
peak = max(r for _, r, _ in rows)
loads = [l for _, _, l in rows]
try:
    rep = json.load(open(f"{out}/report.json"))
except Exception as e:
    rep = None
    problems.append(f"no report: {e}")
lines = 0
with open(f"{out}/detections.jsonl") as f:
    data = f.read()
if data and not data.endswith("\n"):
    problems.append("detections end in a partial line")
for i, line in enumerate(data.splitlines()):
    try:
        json.loads(line)
        lines += 1
    except ValueError:
        problems.append(f"detections line {i + 1} is not whole JSON")
        break
if rep:
    fr = rep["frames"]
    if not rep["invariant_ok"]:
        problems.append("invariant broken")
    if rep["pool"]["misses"] != 0:
        problems.append(f"pool misses {rep['pool']['misses']}")
    if rep.get("output_errors"):
        problems.append(f"output errors {rep['output_errors']}")
    if fr["published"] == 0:
        problems.append("nothing was published (budget too short for this machine? add --set pipeline.budget_ms=60000)")
    if lines != fr["published"]:
        problems.append(f"{lines} detection lines for {fr['published']} published frames")
summary = [
    f"soak: {rows[-1][0]} s (asked {secs} s), {len(rows)} RSS samples every 10 s",
    f"RSS: first {rows[0][1] / 1024:.1f} MiB, minute 1-2 median {statistics.median(base) / 1024 if base else 0:.1f} MiB, "
    f"last-minute median {statistics.median(last) / 1024 if last else 0:.1f} MiB, peak {peak / 1024:.1f} MiB, "
    f"growth after the first minute {growth if growth is not None else float('nan'):+.2f} %",
    f"machine load (1-min average): median {statistics.median(loads):.1f}, min {min(loads):.1f}, max {max(loads):.1f}",
]
if rep:
    fr = rep["frames"]
    summary.append(f"frames: captured {fr['captured']}, published {fr['published']}, dropped {fr['dropped']}; "
                   f"invariant_ok {rep['invariant_ok']}; pool size {rep['pool']['size']}, takes {rep['pool']['takes']}, "
                   f"misses {rep['pool']['misses']}; fps {rep['fps']:.2f}; detection lines {lines}")
summary.append("PASS" if not problems else "FAIL: " + "; ".join(problems))
open(f"{out}/summary.txt", "w").write("\n".join(summary) + "\n")
print("\n".join(summary))
sys.exit(0 if not problems else 1)
PY
