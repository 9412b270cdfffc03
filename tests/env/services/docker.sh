# shellcheck shell=bash
# Service `docker`: Debian's docker.io; uses a daemon that already answers, else starts dockerd
# in the background (log under the state dir). GANTRY_TEST_DOCKERD_ARGS adds dockerd options
# (e.g. --data-root). Beware: a second dockerd beside a running one must not get
# `--bridge none`, which deletes the docker0 interface the first daemon uses.
# Sourced by tests/env/up and tests/env/down.

docker_answers() {
	timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

up_docker() {
	# nftables and iptables: Gantry's edge switch for published ports (tests/tests/edge_*.rs).
	apt_install docker.io nftables iptables
	export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
	if docker_answers; then
		if pid_alive dockerd; then
			log "docker: dockerd (started by tests/env/up) answers on $DOCKER_HOST"
		else
			log "docker: using the daemon already running on $DOCKER_HOST"
		fi
	else
		local dockerd logfile="$LOG_DIR/dockerd.log"
		dockerd="$(command -v dockerd || echo /usr/sbin/dockerd)"
		[[ -x "$dockerd" ]] || die "docker: dockerd not found after installing docker.io"
		[[ "$DOCKER_HOST" == unix://* ]] ||
			die "docker: DOCKER_HOST=$DOCKER_HOST does not answer and is not a unix socket to start dockerd on"
		# A stale pid file from a daemon that died stops dockerd from starting.
		# So does containerd's, if its pid now belongs to another process.
		if [[ -f /var/run/docker.pid ]] && ! proc_is "$(cat /var/run/docker.pid)" dockerd; then
			rm -f /var/run/docker.pid
		fi
		local ctrd_pid=/var/run/docker/containerd/containerd.pid
		if [[ -f "$ctrd_pid" ]] && ! proc_is "$(cat "$ctrd_pid")" containerd; then
			rm -f "$ctrd_pid"
		fi
		log "docker: starting dockerd on $DOCKER_HOST (log: $logfile)"
		local extra=()
		read -r -a extra <<<"${GANTRY_TEST_DOCKERD_ARGS:-}"
		start_bg dockerd "$logfile" "$dockerd" --host "$DOCKER_HOST" "${extra[@]}"
		if ! wait_until 90 "dockerd" docker_answers; then
			die "docker: dockerd did not answer on $DOCKER_HOST" "$logfile"
		fi
		log "docker: dockerd $(docker version --format '{{.Server.Version}}') answers"
	fi
	env_set DOCKER_HOST "$DOCKER_HOST"
	env_set DOCKER_BIN "$(command -v docker)"
}

down_docker() {
	stop_pid dockerd 30
}
