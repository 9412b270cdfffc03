#!/usr/bin/env bash
# bench/edge.sh: a service on a published host port, deployed ROUNDS times (a new version each
# time) by `gantry deploy` (through the edge switch) and by `docker compose up -d` (Docker
# publishes the port), while clients on the host call it: a new connection per request (200/s),
# a keep-alive connection (200/s) and one long-lived stream at a time. Prints the two tools side
# by side: per request client, requests answered and failed, the request rate it achieved and its
# longest time without an answer (the window's ends included; per client, so keep-alive answers
# from the old container cannot hide new connections failing), and why requests failed; the
# keep-alive requests retried (only a reused connection that ended before one byte of the
# answer); the streams cut (ended less than the 3 s drain window after their version was
# replaced). Then throughput and p50/p99 latency of 8 keep-alive connections through Gantry's
# switch and through Docker's published port (identical containers), on 127.0.0.1 (Docker:
# docker-proxy) and on the docker0 address (Docker: its iptables DNAT), the median of TP_ROUNDS
# rounds (default 7) with the two paths alternating which goes first.
#
# Usage: bench/edge.sh [ROUNDS]   (default 20; TP_ROUNDS=N throughput rounds per address)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-20}
drain_ms=3000

bench_env docker images compose
build_release
cargo build --release --locked -q -p gantry-tests --bin gantry-edge-load
gantry="$(target_dir)/release/gantry"
load="$(target_dir)/release/gantry-edge-load"
command -v nft >/dev/null || { echo "bench/edge.sh: nft is missing (tests/env/up installs nftables)" >&2; exit 69; }
state=$(mktemp -d)
file=bench/edge.yaml
export GANTRY_STATE_DIR=$state GANTRY_LOCAL=1 IMAGE=$GANTRY_TEST_IMAGE LOAD=$load
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_gd=$(free_port)
port_dc=$(free_port)
cleanup() {
  PORT=$port_dc "$COMPOSE_BIN" -p bench-edge-dc -f "$file" down -t 1 >/dev/null 2>&1 || true
  PORT=$port_gd "$COMPOSE_BIN" -p bench-edge-gd -f "$file" down -t 1 >/dev/null 2>&1 || true
  # The switch's routes of the bench stack: their jumps, then their chains.
  for handle in $(nft -a list chain ip gantry routes 2>/dev/null | awk '/jump g\/bench-edge-gd\// {print $NF}'); do
    nft delete rule ip gantry routes handle "$handle" || true
  done
  for chain in $(nft list chains ip 2>/dev/null | sed -n 's#.*chain \(g/bench-edge-gd/[^ ]*\).*#\1#p'); do
    nft delete chain ip gantry "$chain" || true
  done
  rm -rf "$state"
}
trap cleanup EXIT

# deploy TOOL VERSION
deploy() {
  case "$1" in
    gantry) "$gantry" deploy bench-edge-gd -f "$file" --var PORT="$port_gd" --var VERSION="$2" >/dev/null ;;
    compose) PORT=$port_dc VERSION=$2 "$COMPOSE_BIN" -p bench-edge-dc -f "$file" up -d >/dev/null 2>&1 ;;
  esac
}
port_of() { if [ "$1" = gantry ]; then echo "$port_gd"; else echo "$port_dc"; fi; }
wait_answer() {
  for _ in $(seq 200); do
    curl -fsS -m 1 "http://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench/edge.sh: nothing answers on port $1" >&2
  return 1
}

declare -A result reasons
for tool in gantry compose; do
  port=$(port_of "$tool")
  deploy "$tool" 0
  wait_answer "$port"
  out=$(mktemp)
  exec {feed}> >("$load" watch "$port" "$drain_ms" >"$out" 2>>"$out.log")
  sleep 1
  for round in $(seq "$rounds"); do
    deploy "$tool" "$round"
    sleep 1.5
  done
  sleep "$(( drain_ms / 1000 + 1 ))"
  exec {feed}>&-
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
  result[$tool]=$(cat "$out")
  reasons[$tool]=$(grep ' failures: ' "$out.log" || true)
  rm -f "$out" "$out.log"
done

# The watch line: new_ok new_failed new_per_s new_gap_ms ka_ok ka_failed ka_retried ka_per_s
# ka_gap_ms streams streams_cut versions_seen (tests/load/main.rs).
declare -A f
for tool in gantry compose; do
  read -r "f[$tool.new_ok]" "f[$tool.new_failed]" "f[$tool.new_rate]" "f[$tool.new_gap]" \
    "f[$tool.ka_ok]" "f[$tool.ka_failed]" "f[$tool.ka_retried]" "f[$tool.ka_rate]" "f[$tool.ka_gap]" \
    "f[$tool.streams]" "f[$tool.cut]" "f[$tool.versions]" <<<"${result[$tool]}"
done
# row LABEL FORMAT KEY...: one line, gantry's figures then compose's, FORMAT applied to each.
row() {
  local label=$1 format=$2 tool key cells=()
  shift 2
  for tool in gantry compose; do
    local values=()
    for key in "$@"; do values+=("${f[$tool.$key]}"); done
    # shellcheck disable=SC2059 # the format is the caller's
    cells+=("$(printf "$format" "${values[@]}")")
  done
  printf '%-34s %-26s %s\n' "$label" "${cells[0]}" "${cells[1]}"
}
echo "== $rounds deploys each, clients on 127.0.0.1 =="
printf '%-34s %-26s %s\n' "" "gantry (edge switch)" "docker compose up -d"
row "new-connection: ok / failed" '%d / %d' new_ok new_failed
row "  requests/s (goal: 200)" '%.1f' new_rate
row "  longest gap without an answer" '%d ms' new_gap
row "keep-alive: ok / failed" '%d / %d' ka_ok ka_failed
row "  retried (idle connection closed)" '%d' ka_retried
row "  requests/s (goal: 200)" '%.1f' ka_rate
row "  longest gap without an answer" '%d ms' ka_gap
row "streams: opened / cut" '%d / %d' streams cut
row "versions seen" '%d' versions
for tool in gantry compose; do
  [ -z "${reasons[$tool]}" ] || sed "s/^/$tool: /" <<<"${reasons[$tool]}"
done

gateway=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
# One 5 s sample scatters by more than the 5 % the goal allows on a busy 2-core machine, and
# whichever path goes first pays for it: TP_ROUNDS rounds (default 7) per address, the two
# paths alternating which goes first; medians of req/s, p50 and p99 (each path's own).
tp_rounds=${TP_ROUNDS:-7}
echo "== throughput, 8 keep-alive connections, 5 s each, median of $tp_rounds rounds (the paths alternating first) =="
for host in 127.0.0.1 "$gateway"; do
  declare -A rps=() p50=() p99=() failed=()
  for r in $(seq "$tp_rounds"); do
    order=(gantry compose)
    ((r % 2)) || order=(compose gantry)
    for tool in "${order[@]}"; do
      out=$(EDGE_HOST=$host "$load" throughput "$(port_of "$tool")" 5 8)
      read -r a b c d <<<"$out"
      rps[$tool]+="$a " p50[$tool]+="$b " p99[$tool]+="$c " failed[$tool]=$(( ${failed[$tool]:-0} + d ))
    done
  done
  # shellcheck disable=SC2086 # the lists split on purpose
  {
    g_rps=$(median ${rps[gantry]}) g_p50=$(median ${p50[gantry]}) g_p99=$(median ${p99[gantry]})
    d_rps=$(median ${rps[compose]}) d_p50=$(median ${p50[compose]}) d_p99=$(median ${p99[compose]})
  }
  via="docker-proxy"; [ "$host" = 127.0.0.1 ] || via="Docker's DNAT"
  printf '%-15s gantry switch: %7.0f req/s p50 %5.0f us p99 %5.0f us (%d failed) | %s: %7.0f req/s p50 %5.0f us p99 %5.0f us (%d failed) | throughput ratio %.2fx, p99 %+.0f us\n' \
    "$host" "$g_rps" "$g_p50" "$g_p99" "${failed[gantry]}" "$via" "$d_rps" "$d_p50" "$d_p99" "${failed[compose]}" \
    "$(awk -v a="$g_rps" -v b="$d_rps" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
    "$(awk -v a="$g_p99" -v b="$d_p99" 'BEGIN {print a - b}')"
  echo "                req/s per round: gantry switch ${rps[gantry]}| $via ${rps[compose]}"
  unset rps p50 p99 failed
done
