#!/usr/bin/env bash
# Live-paced replay of vtest at an emulated camera rate (default 30 fps): today's schedule
# (`every_frame`) against the new ones, side by side in interleaved rounds, same binary, model and
# threads. Prints per run and the median over rounds: published frames per second, share of frames
# published, end-to-end p50/p99, detection age p50/p99 (frames, ms), detector duty cycle, and the
# machine's load average at the start of each run (other work on the machine shows up there).
#
#   scripts/bench_schedule.sh [--bin target/release/perch] [--rounds 3] [--fps 30] [--schedules "every_frame auto"]
#                             [--out target/bench-schedule] [-- extra perch run arguments]
#
# A schedule may carry its own budget: "every_frame@1500" runs with pipeline.budget_ms=1500 (the
# budget today's replay.toml had), plain names run with configs/replay.toml's.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release/perch"
ROUNDS=3
FPS=30
SCHEDULES="every_frame auto"
OUT="${CARGO_TARGET_DIR:-target}/bench-schedule"
EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --fps) FPS="$2"; shift 2 ;;
        --schedules) SCHEDULES="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "unknown argument $1 (--bin, --rounds, --fps, --schedules, --out, -- perch args)" >&2; exit 2 ;;
    esac
done
[[ -x "$BIN" ]] || { echo "no perch binary at $BIN (cargo build --release, or --bin PATH)" >&2; exit 2; }
mkdir -p "$OUT"
echo "perch: $BIN; $(nproc) cores; rounds $ROUNDS; source.fps=$FPS; schedules: $SCHEDULES; extra: ${EXTRA[*]:-none}"
for round in $(seq 1 "$ROUNDS"); do
    for s in $SCHEDULES; do
        name="${s%@*}"
        budget=()
        [[ "$s" == *@* ]] && budget=(--set "pipeline.budget_ms=${s#*@}")
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "$load" > "$OUT/$s-$round.load"
        "$BIN" run --config configs/replay.toml --set source.fps="$FPS" --set detect.schedule="\"$name\"" \
            "${budget[@]}" "${EXTRA[@]}" --report "$OUT/$s-$round.json" > "$OUT/$s-$round.txt" 2> "$OUT/$s-$round.err" \
            || { echo "run $s round $round failed: $(tail -3 "$OUT/$s-$round.err")" >&2; exit 1; }
        echo "round $round: $s done (load $load)"
    done
done
python3 - "$OUT" "$ROUNDS" $SCHEDULES <<'PY'
import json, statistics, sys
out, rounds, schedules = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def row(r, load):
    f, d = r["frames"], r["detection"]
    w = next((w for w in r.get("workers", []) if w["name"] == "detect"), None)
    det = next(s for s in r["stages"] if s["name"] == "detect")
    duty = w["duty_cycle"] if w else det["latency"]["n"] * det["latency"]["mean_ms"] / 1000 / r["wall_s"]
    return {
        "fps": r["fps"], "published %": 100 * f["published"] / max(f["captured"], 1),
        "e2e p50 ms": r["end_to_end"]["p50_ms"], "e2e p99 ms": r["end_to_end"]["p99_ms"],
        "age p50 f": d["age_frames"]["p50"], "age p99 f": d["age_frames"]["p99"],
        "age p50 ms": d["age_ms"]["p50_ms"], "age p99 ms": d["age_ms"]["p99_ms"],
        "duty %": 100 * duty, "late unused": d["late_unused"], "deadline": f["dropped"]["deadline"],
        "stale": f["dropped"]["stale"], "budget ms": r["budget_ms"], "load": load,
    }
cols = ["fps", "published %", "e2e p50 ms", "e2e p99 ms", "age p50 f", "age p99 f", "age p50 ms", "age p99 ms",
        "duty %", "late unused", "deadline", "stale", "load"]
print()
cols.insert(0, "budget ms")
print(f"{'schedule':<16} {'round':>5} " + " ".join(f"{c:>11}" for c in cols))
med = {}
for s in schedules:
    rows = []
    for k in range(1, rounds + 1):
        r = json.load(open(f"{out}/{s}-{k}.json"))
        load = float(open(f"{out}/{s}-{k}.load").read())
        rows.append(row(r, load))
        print(f"{s:<16} {k:>5} " + " ".join(f"{rows[-1][c]:>11.1f}" for c in cols))
    med[s] = {c: statistics.median(x[c] for x in rows) for c in cols}
print()
print(f"median over {rounds} rounds:")
print(f"{'schedule':<16} " + " ".join(f"{c:>11}" for c in cols))
for s in schedules:
    print(f"{s:<16} " + " ".join(f"{med[s][c]:>11.1f}" for c in cols))
PY
