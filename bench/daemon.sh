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
# The daemon measured is the one the packages install: the static musl release build, built
# here by packaging/build (static_bin_dir in bench/lib.sh). A glibc build's code is laid out
# differently and keeps more of it resident (docs/testing.md, "Idle memory"): to measure the
# workspace's own release build, pass its directory as GANTRY_BENCH_BIN_DIR.
# GANTRY_BENCH_BIN_DIR=DIR runs DIR's gantry and gantryd instead of building (bench/compare.sh).
# GANTRY_BENCH_BASELINE_DIR=DIR runs DIR's build too, as a second daemon (own socket, state and
# stack of 20) beside the first: idle figures for both over the same window, and its no-op
# deploys timed in the same loop (alternating which build goes first), its median and ratio
# against the same compose runs printed as "baseline median:".
# Usage: bench/daemon.sh [IDLE_SECONDS] [RUNS]   (defaults 60 and 11)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
idle=${1:-60}
runs=${2:-11}

bench_env docker images compose
if [ -n "${GANTRY_BENCH_BIN_DIR:-}" ]; then bin_dir=$(release_bin_dir); else bin_dir=$(static_bin_dir); fi
echo "daemon measured: $bin_dir/gantryd ($(file -bL "$bin_dir/gantryd" | grep -o 'statically linked\|static-pie linked\|dynamically linked' || echo 'linking unknown'))"
gantry="$bin_dir/gantry"
base=${GANTRY_BENCH_BASELINE_DIR:-}
if [ -n "$base" ]; then
  [ -x "$base/gantry" ] && [ -x "$base/gantryd" ] ||
    { echo "bench/daemon.sh: no gantry and gantryd in GANTRY_BENCH_BASELINE_DIR=$base" >&2; exit 66; }
fi
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
export IMAGE=$GANTRY_TEST_IMAGE
unset GANTRY_LOCAL GANTRY_STATE_DIR GANTRY_CONFIG_DIR GANTRY_SOCKET
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  for p in bench-dcompose bench-daemon bench-dbaseline; do
    "$COMPOSE_BIN" -p "$p" -f "$file" down -v -t 0 >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# on NAME CMD...: runs CMD with the environment of daemon NAME (its socket, state, config).
on() {
  local name=$1
  shift
  GANTRY_STATE_DIR=$work/$name/state GANTRY_CONFIG_DIR=$work/$name GANTRY_SOCKET=$work/$name/gantry.sock "$@"
}
# start NAME BIN_DIR STACK: starts that build's daemon, deploys STACK through it (untimed).
start() {
  local name=$1 dir=$2 stack=$3
  mkdir -p "$work/$name"
  # Started directly (not through `on`) so that $! is the daemon itself (gantry execs gantryd).
  GANTRY_STATE_DIR=$work/$name/state GANTRY_CONFIG_DIR=$work/$name GANTRY_SOCKET=$work/$name/gantry.sock \
    GANTRY_LOG=warn "$dir/gantry" daemon 2>"$work/$name/daemon.log" &
  pids+=($!)
  for _ in $(seq 100); do on "$name" "$dir/gantry" status >/dev/null 2>&1 && break; sleep 0.1; done
  on "$name" "$dir/gantry" deploy "$stack" -f "$file" >/dev/null
}
start main "$bin_dir" bench-daemon
daemon_pid=${pids[0]}
if [ -n "$base" ]; then
  start baseline "$base" bench-dbaseline
  base_pid=${pids[1]}
fi
"$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d --wait >/dev/null 2>&1
sleep 3

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
c0=$(cpu "$daemon_pid"); t0=$(now_ms)
[ -z "$base" ] || bc0=$(cpu "$base_pid")
max_rss=0 base_rss=0
for _ in $(seq "$idle"); do
  r=$(rss_kib "$daemon_pid"); [ "$r" -gt "$max_rss" ] && max_rss=$r
  if [ -n "$base" ]; then r=$(rss_kib "$base_pid"); [ "$r" -gt "$base_rss" ] && base_rss=$r; fi
  sleep 1
done
c1=$(cpu "$daemon_pid"); t1=$(now_ms)
[ -z "$base" ] || bc1=$(cpu "$base_pid")
supervised=$(on main "$gantry" status bench-daemon --output json | grep -c '"state": "running"' || true)

deploy_main() { on main "$gantry" deploy bench-daemon -f "$file" "$@"; }
deploy_base() { on baseline "$base/gantry" deploy bench-dbaseline -f "$file" "$@"; }
# One untimed no-op of each first (warm caches on every side), then RUNS timed runs each,
# interleaved; the machine may be shared, so the median is the figure.
deploy_main >/dev/null
[ -z "$base" ] || deploy_base >/dev/null
"$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d >/dev/null 2>&1
g=(); b=(); c=()
for i in $(seq "$runs"); do
  if [ -n "$base" ] && ((i % 2)); then timed_us b deploy_base >/dev/null; fi
  timed_us g deploy_main >/dev/null
  if [ -n "$base" ] && ! ((i % 2)); then timed_us b deploy_base >/dev/null; fi
  timed_us c "$COMPOSE_BIN" -p bench-dcompose -f "$file" up -d >/dev/null 2>&1
done
deploy_main --output json | grep -q '"outcome":"unchanged"'

idle_figures() { # LABEL MAX_RSS_KIB CPU_TICKS
  awk -v l="$1" -v kib="$2" -v n="$supervised" -v s="$idle" \
    'BEGIN { printf "%sidle RSS (max over %d s, %d containers supervised): %.1f MiB (target < 15 MiB)\n", l, s, n, kib / 1024 }'
  awk -v l="$1" -v d="$3" -v tk="$ticks" -v ms="$((t1 - t0))" \
    'BEGIN { printf "%sidle CPU: %.3f%% of one core over %.0f s (target < 0.5%%)\n", l, 100 * (d / tk) / (ms / 1000), ms / 1000 }'
}
idle_figures "" "$max_rss" "$((c1 - c0))"
echo "no-op deploy of 20 services, $runs runs each (ms): gantry via the daemon $(as_ms "${g[@]}"); docker compose up -d $(as_ms "${c[@]}")"
awk -v g="$(median "${g[@]}")" -v c="$(median "${c[@]}")" \
  'BEGIN { printf "median: gantry via the daemon %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster (target >= 10x)\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
if [ -n "$base" ]; then
  deploy_base --output json | grep -q '"outcome":"unchanged"'
  idle_figures "baseline ($base) " "$base_rss" "$((bc1 - bc0))"
  echo "no-op deploy of 20 services, $runs runs each (ms): baseline gantry via its daemon $(as_ms "${b[@]}")"
  awk -v g="$(median "${b[@]}")" -v c="$(median "${c[@]}")" \
    'BEGIN { printf "baseline median: gantry via the daemon %.1f ms, docker compose up -d %.1f ms, ratio %.1fx faster\n", g / 1000, c / 1000, c / (g > 0 ? g : 1) }'
fi
