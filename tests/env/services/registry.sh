# shellcheck shell=bash
# Service `registry`: Debian's docker-registry on 127.0.0.1:$REGISTRY_PORT with htpasswd auth.
# Users: `gantry` (generated password kept in the state dir) and `AWS` with the password that
# moto's ECR GetAuthorizationToken hands out (`<account>-auth-token`), so the ECR path can be
# tested against this registry. Checked with docker login + push under a throwaway DOCKER_CONFIG.

REGISTRY_USER=gantry
REGISTRY_ECR_USER=AWS
MOTO_ACCOUNT_ID="${MOTO_ACCOUNT_ID:-123456789012}"

registry_answers() {
	local code
	code="$(http_status "http://127.0.0.1:$REGISTRY_PORT/v2/" -u "$REGISTRY_USER:$1")"
	[[ "$code" == 200 ]]
}

up_registry() {
	apt_install docker-registry apache2-utils curl
	local dir="$GANTRY_TEST_STATE/registry" addr="127.0.0.1:$REGISTRY_PORT"
	local logfile="$LOG_DIR/registry.log" password ecr_password="$MOTO_ACCOUNT_ID-auth-token"
	mkdir -p "$dir/data"
	if [[ ! -s "$dir/password" ]]; then
		(umask 077 && random_secret >"$dir/password")
	fi
	password="$(cat "$dir/password")"

	if registry_answers "$password"; then
		log "registry: $addr answers (reused)"
	else
		if port_open "$REGISTRY_PORT"; then
			die "registry: 127.0.0.1:$REGISTRY_PORT is taken by something that does not accept $REGISTRY_USER's password from $dir/password"
		fi
		(
			umask 077
			htpasswd -Bbn "$REGISTRY_USER" "$password" >"$dir/htpasswd"
			htpasswd -Bbn "$REGISTRY_ECR_USER" "$ecr_password" >>"$dir/htpasswd"
		) 2>>"$logfile" || die "registry: htpasswd" "$logfile"
		cat >"$dir/config.yml" <<YAML
# Written by tests/env/services/registry.sh
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  secret: $(random_secret)
auth:
  htpasswd:
    realm: gantry-test-registry
    path: $dir/htpasswd
YAML
		log "registry: starting on $addr (log: $logfile)"
		start_bg registry "$logfile" docker-registry serve "$dir/config.yml"
		wait_until 30 "registry on $addr" registry_answers "$password" ||
			die "registry: no answer on $addr" "$logfile"
		rm -f "$dir/pushed"
	fi
	local wrong
	wrong="$(http_status "http://$addr/v2/" -u "$REGISTRY_USER:wrong-$password")"
	[[ "$wrong" == 401 ]] || die "registry: a wrong password got HTTP $wrong instead of 401" "$logfile"

	env_set GANTRY_TEST_REGISTRY "$addr"
	env_set GANTRY_TEST_REGISTRY_USER "$REGISTRY_USER"
	env_set GANTRY_TEST_REGISTRY_PASSWORD "$password"
	env_set GANTRY_TEST_REGISTRY_ECR_USER "$REGISTRY_ECR_USER"
	env_set GANTRY_TEST_REGISTRY_ECR_PASSWORD "$ecr_password"
	registry_push_check "$addr" "$password"
}

# dockerd must be able to log in and push (127.0.0.0/8 registries are plain http by default).
registry_push_check() {
	local addr="$1" password="$2" image_id marker="$GANTRY_TEST_STATE/registry/pushed"
	image_id="$(docker image inspect -f '{{.Id}}' "$TEST_IMAGE" 2>/dev/null || true)"
	[[ -n "$image_id" ]] || die "registry: $TEST_IMAGE missing: run tests/env/up images"
	if [[ -f "$marker" && "$(cat "$marker")" == "$image_id" ]]; then
		return 0
	fi
	local cfg target="$addr/gantry-test/busybox:latest" logfile="$LOG_DIR/registry-push.log" rc=0
	cfg="$(mktemp -d)"
	{
		printf '%s' "$password" | DOCKER_CONFIG="$cfg" docker login --username "$REGISTRY_USER" --password-stdin "$addr" &&
			docker tag "$TEST_IMAGE" "$target" &&
			DOCKER_CONFIG="$cfg" docker push "$target"
	} >"$logfile" 2>&1 || rc=$?
	rm -rf "$cfg"
	((rc == 0)) || die "registry: docker login + push to $addr" "$logfile"
	docker rmi "$target" >/dev/null 2>&1 || true
	printf '%s' "$image_id" >"$marker"
	log "registry: docker login + push of $TEST_IMAGE to $addr works"
}

down_registry() {
	stop_pid registry 10
}
