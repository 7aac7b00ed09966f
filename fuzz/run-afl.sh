#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ on the stable toolchain (cargo-afl builds AFL++ itself).
#
#   fuzz/run-afl.sh [--execs 1000000 | --seconds N] [--target NAME]... [--mem-mb 4096]
#
# Installs cargo-afl if missing (crates.io), builds the instrumented driver, then runs afl-fuzz on
# each target (seeds: fuzz/corpus/<target>, findings: fuzz/out/<target>) until it has done
# --execs executions, and prints executions, paths, crashes and hangs per target. Long: about
# 5-20 min per target and million executions on one core. Not part of .ci/run (CI runs
# `perch-fuzz mutate` briefly instead); crashes found here become files in fuzz/regressions/.
set -euo pipefail
cd "$(dirname "$0")"
EXECS=1000000
LIMIT=()
MEM=4096
TARGETS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --execs) EXECS="$2"; shift 2 ;;
    --seconds) LIMIT=(-V "$2"); shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --mem-mb) MEM="$2"; shift 2 ;;
    *) echo "run-afl: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v cargo-afl >/dev/null || cargo install cargo-afl --locked
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/afl"
# Fuzz the code as it ships: no `--cfg fuzzing` (some dependencies change behaviour under it).
AFL_NO_CFG_FUZZING=1 cargo afl build --release --features afl --bin perch-fuzz-afl
BIN="$CARGO_TARGET_DIR/release/perch-fuzz-afl"
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  mapfile -t TARGETS < <("$BIN" --list)
fi
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
for t in "${TARGETS[@]}"; do
  rm -rf "out/$t"
  [[ ${#LIMIT[@]} -eq 0 ]] && LIMIT=(-E "$EXECS")
  echo "== $t: afl-fuzz ${LIMIT[*]} (memory limit $MEM MB)"
  PERCH_FUZZ_TARGET="$t" cargo afl fuzz -i "corpus/$t" -o "out/$t" -m "$MEM" -t 2000 "${LIMIT[@]}" -- "$BIN" >"out-$t.log" 2>&1 || true
  stats="out/$t/default/fuzzer_stats"
  if [[ -f "$stats" ]]; then
    awk -F' *: *' -v t="$t" '/^execs_done|^corpus_count|^saved_crashes|^saved_hangs|^run_time|^execs_per_sec/ {v[$1]=$2}
      END {printf "%-10s execs %s, %s s, %s/s, corpus %s, crashes %s, hangs %s\n", t, v["execs_done"], v["run_time"], v["execs_per_sec"], v["corpus_count"], v["saved_crashes"], v["saved_hangs"]}' "$stats" | tee -a afl-summary.txt
  else
    echo "$t: afl-fuzz did not start (see fuzz/out-$t.log)"; tail -20 "out-$t.log"
  fi
done
