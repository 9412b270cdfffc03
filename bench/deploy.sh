#!/usr/bin/env bash
# bench/deploy.sh: what clients see while a changed service is deployed. A client container
# calls the service by name every 20 ms; each tool deploys a new version ROUNDS times:
# `gantry deploy` (start-first, the default for a service without a fixed host port) and
# `docker compose up -d` (Docker Compose v2: stops the old container, then starts the new).
# Prints failed requests and the longest gap between two successful responses, per tool.
#
# Usage: bench/deploy.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}

bench_env docker images compose
build_release
gantry="$(target_dir)/release/gantry"
state=$(mktemp -d)
file=bench/rollout.yaml
export GANTRY_STATE_DIR=$state GANTRY_LOCAL=1 IMAGE=$GANTRY_TEST_IMAGE
cleanup() {
  "$COMPOSE_BIN" -p bench-dc -f "$file" down >/dev/null 2>&1 || true
  "$COMPOSE_BIN" -p bench-gd -f "$file" down >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

counts() { docker exec "$1-client-1" cat /tmp/counts; }
reset() {
  docker exec "$1-client-1" touch /tmp/reset
  for _ in $(seq 100); do docker exec "$1-client-1" test -f /tmp/reset || return 0; sleep 0.05; done
}
# deploy TOOL PROJECT VERSION
deploy() {
  case "$1" in
    gantry) "$gantry" deploy "$2" -f "$file" --var VERSION="$3" >/dev/null ;;
    compose) VERSION=$3 "$COMPOSE_BIN" -p "$2" -f "$file" up -d --wait >/dev/null 2>&1 ;;
  esac
}

declare -A failed gap
for tool in gantry compose; do
  project=bench-gd; [ "$tool" = compose ] && project=bench-dc
  deploy "$tool" "$project" 0
  sleep 2
  failed[$tool]=0; gap[$tool]=0
  for round in $(seq "$rounds"); do
    reset "$project"
    sleep 0.3
    deploy "$tool" "$project" "$round"
    sleep 0.5
    read -r ok fail g < <(counts "$project")
    failed[$tool]=$(( ${failed[$tool]} + fail ))
    g=$(( g * 10 ))
    (( g > ${gap[$tool]} )) && gap[$tool]=$g
    echo "$tool round $round: $ok ok, $fail failed, longest gap ${g} ms"
  done
done
echo "gantry (start-first): ${failed[gantry]} failed requests, longest gap ${gap[gantry]} ms over $rounds deploys"
echo "docker compose up -d: ${failed[compose]} failed requests, longest gap ${gap[compose]} ms over $rounds deploys"
