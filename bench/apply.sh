#!/usr/bin/env bash
# bench/apply.sh: a no-op apply of a 5-service stack, `gantry deploy` against
# `docker compose up -d` (Docker Compose v2), interleaved in one run. Prints both medians and
# the ratio. Target (issue 2): Gantry at least 5 times faster.
#
# GANTRY_BENCH_BIN_DIR=DIR runs DIR's gantry and gantryd instead of building (bench/compare.sh).
# Usage: bench/apply.sh [RUNS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${1:-15}

bench_env docker images compose
bin_dir=$(release_bin_dir)
gantry="$bin_dir/gantry"
state=$(mktemp -d)
file=bench/stack5.yaml
cleanup() {
  "$COMPOSE_BIN" -p bench-compose -f "$file" down -v >/dev/null 2>&1 || true
  "$COMPOSE_BIN" -p bench-gantry -f "$file" down -v >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

export GANTRY_STATE_DIR=$state GANTRY_LOCAL=1 IMAGE=$GANTRY_TEST_IMAGE
# First deploys (not timed): both stacks up and healthy.
"$gantry" deploy bench-gantry -f "$file" >/dev/null
"$COMPOSE_BIN" -p bench-compose -f "$file" up -d --wait >/dev/null 2>&1

g=(); c=()
for _ in $(seq "$runs"); do
  timed_us g "$gantry" deploy bench-gantry -f "$file" >/dev/null
  timed_us c "$COMPOSE_BIN" -p bench-compose -f "$file" up -d >/dev/null 2>&1
done
# The no-op deploys really were no-ops: gantry's last report says so.
"$gantry" deploy bench-gantry -f "$file" --output json | grep -q '"outcome":"unchanged"'

gm=$(median "${g[@]}"); cm=$(median "${c[@]}")
echo "no-op apply of 5 services, $runs runs each (ms): gantry $(as_ms "${g[@]}")"
echo "no-op apply of 5 services, $runs runs each (ms): compose $(as_ms "${c[@]}")"
awk -v g="$gm" -v c="$cm" 'BEGIN { printf "median: gantry %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster (target >= 5x)\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
