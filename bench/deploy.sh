#!/usr/bin/env bash
# bench/deploy.sh: how fast and how smoothly `gantry deploy` rolls out, beside Docker Compose.
#
# 1. What clients see: a client container calls an internal service by name every 20 ms
#    while each tool deploys a changed version ROUNDS times (`gantry deploy`, start-first, the
#    default for a service without a fixed host port; `docker compose up -d --wait`, which
#    stops the old container, then starts the new one). Prints failed requests and the
#    longest gap between two successful responses per round and in total.
#    Goal for gantry: 0 failed and a gap under 250 ms in every round.
# 2. How long deploys take, each tool on its own copy of the same stack: a cold deploy (from
#    nothing) and a change to one service, on (a) bench/chain5.yaml (five services, a 3-deep
#    `service_healthy` chain health-checked every second) and (b) 100 independent services
#    without a healthcheck, then (c) the same 100 with the stack's `x-gantry: {min_ready: 0s}`
#    (ready when running, Compose's own rule). TIME_ROUNDS rounds each (default 3, the tools
#    alternating which goes first); prints every run, the medians and gantry/compose ratios (below 1:
#    gantry is faster); for gantry also when the changed service served ("serving after",
#    from its output), apart from the old container's retirement.
#
# Usage: bench/deploy.sh [ROUNDS]   (default 20; SKIP_CLIENTS=1 or SKIP_TIMES=1 to run a part;
#   TIME_STACKS="hundred" (any of chain5 hundred hundred-min_ready-0s) to time only those;
#   GANTRY_BENCH_BIN_DIR=DIR runs a prebuilt release gantry/gantryd instead of building one)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-20}

bench_env docker images compose
gantry="$(release_bin_dir)/gantry"
state=$(mktemp -d)
work=$(mktemp -d)
tag=$$
export GANTRY_STATE_DIR=$state GANTRY_LOCAL=1 IMAGE=$GANTRY_TEST_IMAGE
projects=()
cleanup() {
  for p in "${projects[@]}"; do
    "$COMPOSE_BIN" -p "${p%%:*}" -f "${p#*:}" down -t 1 >/dev/null 2>&1 || true
    docker network rm "${p%%:*}_default" >/dev/null 2>&1 || true
  done
  rm -rf "$state" "$work"
}
trap cleanup EXIT

# --- 1. clients calling by name ------------------------------------------------------------
file=bench/rollout.yaml
counts() { docker exec "$1-client-1" cat /tmp/counts; }
reset() {
  docker exec "$1-client-1" touch /tmp/reset
  for _ in $(seq 100); do docker exec "$1-client-1" test -f /tmp/reset || return 0; sleep 0.05; done
}
# deploy TOOL PROJECT FILE [VAR=VALUE...]
deploy() {
  local tool=$1 project=$2 f=$3
  shift 3
  case "$tool" in
    gantry)
      local vars=()
      for v in "$@"; do vars+=(--var "$v"); done
      "$gantry" deploy "$project" -f "$f" "${vars[@]}" ;;
    compose) env "$@" "$COMPOSE_BIN" -p "$project" -f "$f" up -d --wait 2>&1 ;;
  esac
}

if [ -z "${SKIP_CLIENTS:-}" ]; then
  declare -A failed gap bad
  for tool in gantry compose; do
    project=bench-gd-$tag; [ "$tool" = compose ] && project=bench-dc-$tag
    projects+=("$project:$file")
    deploy "$tool" "$project" "$file" VERSION=0 >/dev/null
    sleep 2
    failed[$tool]=0; gap[$tool]=0; bad[$tool]=0
    for round in $(seq "$rounds"); do
      reset "$project"
      sleep 0.3
      deploy "$tool" "$project" "$file" VERSION="$round" >/dev/null
      sleep 0.5
      read -r ok fail g < <(counts "$project")
      failed[$tool]=$(( ${failed[$tool]} + fail ))
      g=$(( g * 10 ))
      (( g > ${gap[$tool]} )) && gap[$tool]=$g
      (( fail > 0 || g >= 250 )) && bad[$tool]=$(( ${bad[$tool]} + 1 ))
      echo "$tool round $round: $ok ok, $fail failed, longest gap ${g} ms"
    done
  done
  echo "gantry (start-first): ${failed[gantry]} failed requests, longest gap ${gap[gantry]} ms over $rounds deploys; ${bad[gantry]} round(s) with a failure or a gap of 250 ms or more"
  echo "docker compose up -d --wait: ${failed[compose]} failed requests, longest gap ${gap[compose]} ms over $rounds deploys; ${bad[compose]} round(s) with a failure or a gap of 250 ms or more"
fi

# --- 2. deploy times ----------------------------------------------------------------------
if [ -z "${SKIP_TIMES:-}" ]; then
  # hundred [MIN_READY]: 100 independent services; MIN_READY, when given, as the stack's
  # default `min_ready` (a top-level `x-gantry`, which Compose ignores like any `x-` key).
  hundred() {
    [ -z "${1:-}" ] || echo "x-gantry: {min_ready: $1}"
    echo "services:"
    for i in $(seq 100); do
      echo "  s$i:"
      echo "    image: \${IMAGE:-gantry-test/busybox:latest}"
      echo "    init: true"
      echo "    command: [\"sleep\", \"86400\"]"
      if [ "$i" = 1 ]; then echo "    environment: {CHANGE: \"\${CHANGE:-0}\"}"; fi
    done
  }
  hundred > "$work/hundred.yaml"
  hundred 0s > "$work/hundred-min0.yaml"

  secs() { awk -v us="$1" 'BEGIN {printf "%.1f", us / 1000000}'; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  all_secs() { local x out=(); for x in "$@"; do out+=("$(secs "$x")"); done; echo "${out[*]}"; }
  # times NAME FILE: TIME_ROUNDS rounds (default 3) of a cold deploy and a change to one
  # service per tool, the tools alternating which goes first; one cold deploy scatters by
  # seconds on a busy machine, so the medians are the figures. Prints each run and the medians.
  times() {
    local name=$1 f=$2 tool project r
    local gc=() gh=() cc=() ch=() sv=()
    for r in $(seq "${TIME_ROUNDS:-3}"); do
      local order=(compose gantry)
      ((r % 2)) || order=(gantry compose)
      for tool in "${order[@]}"; do
        project=bench-t$name-${tool:0:1}$r-$tag
        projects+=("$project:$f")
        if [ "$tool" = gantry ]; then
          timed_us gc deploy gantry "$project" "$f" CHANGE=0 >/dev/null
          timed_us gh deploy gantry "$project" "$f" CHANGE=1 > "$work/out"
          sv+=("$(sed -n 's/.*serving after \([0-9.]*\)s.*/\1/p' "$work/out" | head -1)")
        else
          timed_us cc deploy compose "$project" "$f" CHANGE=0 >/dev/null
          timed_us ch deploy compose "$project" "$f" CHANGE=1 >/dev/null
        fi
        # Ten containers at a time: `compose down` stops all hundred at once, which once
        # deadlocked Docker 20.10's libnetwork here (docs/testing.md).
        docker ps -aq --filter "label=com.docker.compose.project=$project" |
          xargs -r -n 10 docker rm -f >/dev/null 2>&1 || true
        "$COMPOSE_BIN" -p "$project" -f "$f" down -t 1 >/dev/null 2>&1 || true
        # compose leaves the network gantry made (its labels differ): remove it by name.
        docker network rm "${project}_default" >/dev/null 2>&1 || true
      done
    done
    local mgc mgh mcc mch
    mgc=$(median "${gc[@]}") mgh=$(median "${gh[@]}") mcc=$(median "${cc[@]}") mch=$(median "${ch[@]}")
    echo "$name cold deploys (s): gantry $(all_secs "${gc[@]}"); compose up -d --wait $(all_secs "${cc[@]}")"
    echo "$name cold deploy, median of ${#gc[@]}: gantry $(secs "$mgc") s, compose up -d --wait $(secs "$mcc") s, ratio $(ratio "$mgc" "$mcc")"
    echo "$name change one service, median of ${#gh[@]}: gantry $(secs "$mgh") s (serving after ${sv[*]:-?} s), compose up -d --wait $(secs "$mch") s, ratio $(ratio "$mgh" "$mch")"
  }
  stacks=" ${TIME_STACKS:-chain5 hundred hundred-min_ready-0s} "
  [[ $stacks != *" chain5 "* ]] || times chain5 bench/chain5.yaml
  [[ $stacks != *" hundred "* ]] || times hundred "$work/hundred.yaml"
  # The same stack with Compose's own notion of ready for a service without a healthcheck
  # (running, no `min_ready` to stay up): what the scheduling costs apart from that check.
  [[ $stacks != *" hundred-min_ready-0s "* ]] || times hundred-min_ready-0s "$work/hundred-min0.yaml"
fi
