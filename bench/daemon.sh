#!/usr/bin/env bash
# bench/daemon.sh: the daemon's cost and speed, in one run.
#  1. idle resident memory and CPU of `gantry daemon` supervising 20 containers (one stack of
#     20 services with healthchecks every 2 s) over 60 s: RSS from /proc/PID/status (VmRSS),
#     CPU from /proc/PID/stat (utime+stime) over the window, as % of one core;
#  2. a no-op deploy through the daemon's socket (`gantry deploy` as a client) against a no-op
#     `docker compose up -d` (Docker Compose v2, $COMPOSE_BIN) of the same file, after one
#     untimed run each, then RUNS interleaved runs: each run and the medians.
# Targets (issue 5): under 15 MiB idle, under 0.5% of a core, at least 10x faster than compose.
#
# GANTRY_BENCH_BIN_DIR=DIR runs DIR's gantry and gantryd instead of building (bench/compare.sh).
# Usage: bench/daemon.sh [IDLE_SECONDS] [RUNS]   (defaults 60 and 11)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
idle=${1:-60}
runs=${2:-11}

bench_env docker images compose
bin_dir=$(release_bin_dir)
gantry="$bin_dir/gantry"
work=$(mktemp -d)
file=$work/compose.yaml
{
  echo "services:"
  for i in $(seq 1 20); do
    cat <<YAML
  s$i:
    image: \${IMAGE}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 1s
      retries: 3
YAML
  done
} >"$file"
export GANTRY_STATE_DIR=$work/state GANTRY_CONFIG_DIR=$work GANTRY_SOCKET=$work/gantry.sock IMAGE=$GANTRY_TEST_IMAGE
unset GANTRY_LOCAL
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  "$COMPOSE_BIN" -p bench-dcompose -f "$file" down -v -t 0 >/dev/null 2>&1 || true
  "$COMPOSE_BIN" -p bench-daemon -f "$file" down -v -t 0 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

GANTRY_LOG=warn "$gantry" daemon 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do "$gantry" status >/dev/null 2>&1 && break; sleep 0.1; done
"$gantry" deploy bench-daemon -f "$file" >/dev/null
"$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d --wait >/dev/null 2>&1
sleep 3

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status"; }
c0=$(cpu); t0=$(now_ms)
max_rss=0
for _ in $(seq "$idle"); do
  r=$(rss_kib); [ "$r" -gt "$max_rss" ] && max_rss=$r
  sleep 1
done
c1=$(cpu); t1=$(now_ms)
supervised=$("$gantry" status bench-daemon --output json | grep -c '"state": "running"' || true)

# One untimed no-op of each first (warm caches on both sides), then RUNS timed runs each,
# interleaved; the machine may be shared, so the median is the figure.
"$gantry" deploy bench-daemon -f "$file" >/dev/null
"$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d >/dev/null 2>&1
g=(); c=()
for _ in $(seq "$runs"); do
  timed_us g "$gantry" deploy bench-daemon -f "$file" >/dev/null
  timed_us c "$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d >/dev/null 2>&1
done
"$gantry" deploy bench-daemon -f "$file" --output json | grep -q '"outcome":"unchanged"'

awk -v kib="$max_rss" -v n="$supervised" -v s="$idle" \
  'BEGIN { printf "idle RSS (max over %d s, %d containers supervised): %.1f MiB (target < 15 MiB)\n", s, n, kib / 1024 }'
awk -v d="$((c1 - c0))" -v tk="$ticks" -v ms="$((t1 - t0))" \
  'BEGIN { printf "idle CPU: %.3f%% of one core over %.0f s (target < 0.5%%)\n", 100 * (d / tk) / (ms / 1000), ms / 1000 }'
echo "no-op deploy of 20 services, $runs runs each (ms): gantry via the daemon $(as_ms "${g[@]}"); docker compose up -d $(as_ms "${c[@]}")"
awk -v g="$(median "${g[@]}")" -v c="$(median "${c[@]}")" \
  'BEGIN { printf "median: gantry via the daemon %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster (target >= 10x)\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
