#!/usr/bin/env bash
# bench/apply.sh: a no-op apply of a 5-service stack, `gantry deploy` against
# `docker compose up -d` (Docker Compose v2), interleaved in one run. Prints both medians and
# the ratio. Target (issue 2): Gantry at least 5 times faster.
#
# GANTRY_BENCH_BIN_DIR=DIR runs DIR's gantry and gantryd instead of building (bench/compare.sh).
# GANTRY_BENCH_BASELINE_DIR=DIR also times DIR's gantry (another build, on a stack of its own)
# in the same loop, alternating which build goes first, and prints its median and ratio against
# the same compose runs ("baseline median:"): a drift of the machine weighs on both builds alike.
# Usage: bench/apply.sh [RUNS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${1:-15}

bench_env docker images compose
bin_dir=$(release_bin_dir)
gantry="$bin_dir/gantry"
base=${GANTRY_BENCH_BASELINE_DIR:-}
if [ -n "$base" ]; then
  [ -x "$base/gantry" ] && [ -x "$base/gantryd" ] ||
    { echo "bench/apply.sh: no gantry and gantryd in GANTRY_BENCH_BASELINE_DIR=$base" >&2; exit 66; }
fi
state=$(mktemp -d)
file=bench/stack5.yaml
cleanup() {
  "$COMPOSE_BIN" -p bench-compose -f "$file" down -v >/dev/null 2>&1 || true
  "$COMPOSE_BIN" -p bench-gantry -f "$file" down -v >/dev/null 2>&1 || true
  "$COMPOSE_BIN" -p bench-baseline -f "$file" down -v >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

export GANTRY_STATE_DIR=$state/gantry GANTRY_LOCAL=1 IMAGE=$GANTRY_TEST_IMAGE
# The baseline build keeps its ledger apart (an older build may write another format).
baseline() { GANTRY_STATE_DIR=$state/baseline "$base/gantry" deploy bench-baseline -f "$file" "$@"; }
# First deploys (not timed): the stacks up and healthy.
"$gantry" deploy bench-gantry -f "$file" >/dev/null
[ -z "$base" ] || baseline >/dev/null
"$COMPOSE_BIN" -p bench-compose -f "$file" up -d --wait >/dev/null 2>&1

g=(); b=(); c=()
for i in $(seq "$runs"); do
  if [ -n "$base" ] && ((i % 2)); then timed_us b baseline >/dev/null; fi
  timed_us g "$gantry" deploy bench-gantry -f "$file" >/dev/null
  if [ -n "$base" ] && ! ((i % 2)); then timed_us b baseline >/dev/null; fi
  timed_us c "$COMPOSE_BIN" -p bench-compose -f "$file" up -d >/dev/null 2>&1
done
# The no-op deploys really were no-ops: gantry's last report says so.
"$gantry" deploy bench-gantry -f "$file" --output json | grep -q '"outcome":"unchanged"'

gm=$(median "${g[@]}"); cm=$(median "${c[@]}")
echo "no-op apply of 5 services, $runs runs each (ms): gantry $(as_ms "${g[@]}")"
echo "no-op apply of 5 services, $runs runs each (ms): compose $(as_ms "${c[@]}")"
awk -v g="$gm" -v c="$cm" 'BEGIN { printf "median: gantry %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster (target >= 5x)\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
if [ -n "$base" ]; then
  baseline --output json | grep -q '"outcome":"unchanged"'
  bm=$(median "${b[@]}")
  echo "no-op apply of 5 services, $runs runs each (ms): baseline gantry ($base) $(as_ms "${b[@]}")"
  awk -v g="$bm" -v c="$cm" 'BEGIN { printf "baseline median: gantry %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
fi
