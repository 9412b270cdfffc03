# shellcheck shell=bash
# Service `moto`: moto's server (PyPI moto[server], in the private venv) on 127.0.0.1:$MOTO_PORT,
# standing in for AWS: Secrets Manager, ECR, STS, SSM. Any access key works; state is in memory.

moto_answers() {
	[[ "$(http_status "http://127.0.0.1:$MOTO_PORT/moto-api/data.json")" == 200 ]]
}

up_moto() {
	apt_install curl
	local addr="127.0.0.1:$MOTO_PORT" logfile="$LOG_DIR/moto.log"
	if [[ ! -x "$GANTRY_VENV/bin/moto_server" ]]; then
		pip_install "moto[server]==$MOTO_VERSION"
	fi
	if moto_answers; then
		log "moto: $addr answers (reused)"
	else
		if port_open "$MOTO_PORT"; then
			die "moto: 127.0.0.1:$MOTO_PORT is taken by something that is not moto"
		fi
		log "moto: starting on $addr (log: $logfile)"
		start_bg moto "$logfile" "$GANTRY_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
		wait_until 60 "moto on $addr" moto_answers || die "moto: no answer on $addr" "$logfile"
	fi
	env_set GANTRY_TEST_AWS_ENDPOINT "http://$addr"
	env_set GANTRY_TEST_AWS_REGION us-east-1
	env_set GANTRY_TEST_AWS_ACCESS_KEY_ID testing
	env_set GANTRY_TEST_AWS_SECRET_ACCESS_KEY testing
	env_set GANTRY_TEST_AWS_ACCOUNT_ID "${MOTO_ACCOUNT_ID:-123456789012}"
	# Python with boto3 and PyYAML (moto's own), for tests that seed moto and run tests/standins.
	env_set GANTRY_TEST_PYTHON "$GANTRY_VENV/bin/python"
}

down_moto() {
	stop_pid moto 10
}
