#!/usr/bin/env bash
# bench/compare.sh: two release builds side by side, in one run on one machine: bench/apply.sh
# and bench/daemon.sh with BEFORE's gantry/gantryd, then AFTER's (each as BEFORE, AFTER, AFTER,
# BEFORE, so a drift of the machine during the run weighs on both alike). Each bench
# times its own `docker compose up -d` in the same loop, so each prints a ratio; this script
# prints every "median:" line, labelled, and the ratios side by side at the end.
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
run() { # run LABEL DIR BENCH ARGS...
  local label=$1 dir=$2
  shift 2
  echo "== $label: $*" >&2
  GANTRY_BENCH_BIN_DIR=$dir "$@" | tee /dev/stderr | sed -n "s|^median: |$label $1: |p" >>"$out"
}
run before "$before" bench/apply.sh "$apply_runs"
run after "$after" bench/apply.sh "$apply_runs"
run after "$after" bench/apply.sh "$apply_runs"
run before "$before" bench/apply.sh "$apply_runs"
run before "$before" bench/daemon.sh "$idle" "$daemon_runs"
run after "$after" bench/daemon.sh "$idle" "$daemon_runs"
run after "$after" bench/daemon.sh "$idle" "$daemon_runs"
run before "$before" bench/daemon.sh "$idle" "$daemon_runs"
echo
echo "binaries: before $(stat -c %s "$before/gantry") / $(stat -c %s "$before/gantryd") bytes (gantry / gantryd), after $(stat -c %s "$after/gantry") / $(stat -c %s "$after/gantryd")"
cat "$out"
