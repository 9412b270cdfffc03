#!/usr/bin/env bash
# bench/compare.sh: two release builds side by side, in one run on one machine. bench/apply.sh
# and bench/daemon.sh each time both builds and `docker compose up -d` in one loop (the second
# build through GANTRY_BENCH_BASELINE_DIR, the two alternating which goes first), so both
# ratios share the same compose runs and a drift of the machine weighs on both alike. Each
# bench runs twice, with the builds' roles swapped; this script prints every median line,
# labelled, and the ratios side by side at the end.
#
# Usage: bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR [APPLY_RUNS] [DAEMON_IDLE_S] [DAEMON_RUNS]
#   A BIN_DIR holds a release gantry and gantryd (e.g. `git worktree add /tmp/base COMMIT`,
#   then in it `CARGO_TARGET_DIR=/tmp/base-target cargo build --release -p gantry-agent --bins`:
#   BIN_DIR is /tmp/base-target/release). Nothing is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
before=$1 after=$2
apply_runs=${3:-15} idle=${4:-30} daemon_runs=${5:-11}
for d in "$before" "$after"; do
  for b in gantry gantryd; do
    [ -x "$d/$b" ] || { echo "bench/compare.sh: $d/$b missing" >&2; exit 66; }
  done
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# run MAIN_LABEL MAIN_DIR BASE_LABEL BASE_DIR BENCH ARGS...: one bench run timing both builds
# in its own loop; its "median:" line is MAIN's, its "baseline median:" line BASE's.
run() {
  local ml=$1 md=$2 bl=$3 bd=$4
  shift 4
  echo "== $ml (baseline: $bl): $*" >&2
  local log
  log=$(mktemp)
  GANTRY_BENCH_BIN_DIR=$md GANTRY_BENCH_BASELINE_DIR=$bd "$@" >"$log"
  # the bench's own lines go to stderr as they are (not `tee /dev/stderr`: that reopens the
  # file and truncates a stderr redirected to a log)
  cat "$log" >&2
  sed -n -e "s|^median: |$ml $1: |p" -e "s|^baseline median: |$bl $1: |p" "$log" >>"$out"
  rm -f "$log"
}
run after "$after" before "$before" bench/apply.sh "$apply_runs"
run before "$before" after "$after" bench/apply.sh "$apply_runs"
run after "$after" before "$before" bench/daemon.sh "$idle" "$daemon_runs"
run before "$before" after "$after" bench/daemon.sh "$idle" "$daemon_runs"
echo
echo "binaries: before $(stat -c %s "$before/gantry") / $(stat -c %s "$before/gantryd") bytes (gantry / gantryd), after $(stat -c %s "$after/gantry") / $(stat -c %s "$after/gantryd")"
sort -s -k2,2 "$out"
