# shellcheck shell=bash
# Service `postgres`: a private PostgreSQL cluster (Debian's postgresql) under the state dir,
# listening on 127.0.0.1:$PG_PORT only, with a superuser `gantry` and a generated password
# (scram-sha-256), e.g. for OpenBao's database secrets engine. The system cluster is not used.

PG_USER=gantry

pg_bindir() {
	local d
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && {
			printf '%s' "$d"
			return 0
		}
	done
	d="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
	[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && printf '%s' "$d"
}

pg_answers() {
	local psql="$1" password="$2" out
	out="$(PGPASSWORD="$password" PGCONNECT_TIMEOUT=3 "$psql" -h 127.0.0.1 -p "$PG_PORT" \
		-U "$PG_USER" -d postgres -Atc 'select 1' 2>/dev/null)" && [[ "$out" == 1 ]]
}

up_postgres() {
	apt_install postgresql
	local bindir dir="$GANTRY_TEST_STATE/postgres" password logfile="$LOG_DIR/postgres.log"
	bindir="$(pg_bindir)"
	[[ -n "$bindir" ]] || die "postgres: no initdb/pg_ctl found after installing postgresql"
	local psql="$bindir/psql"
	[[ -x "$psql" ]] || psql="$(command -v psql)"
	id postgres >/dev/null 2>&1 || die "postgres: no 'postgres' system user (Debian's postgresql package creates it)"
	mkdir -p "$dir/run"
	if [[ ! -s "$dir/password" ]]; then
		[[ ! -d "$dir/data" ]] || die "postgres: $dir/data exists but $dir/password is gone: remove $dir and run up again"
		(umask 077 && random_secret >"$dir/password")
	fi
	password="$(cat "$dir/password")"

	if pg_answers "$psql" "$password"; then
		log "postgres: 127.0.0.1:$PG_PORT answers (reused)"
	else
		if port_open "$PG_PORT"; then
			die "postgres: 127.0.0.1:$PG_PORT is taken by something that does not accept $PG_USER's password from $dir/password"
		fi
		chown postgres: "$dir" "$dir/run"
		touch "$logfile" && chown postgres: "$logfile"
		if [[ ! -f "$dir/data/PG_VERSION" ]]; then
			log "postgres: initdb $dir/data ($bindir)"
			rm -rf "$dir/data"
			install -o postgres -m 600 "$dir/password" "$dir/run/pwfile"
			runuser -u postgres -- "$bindir/initdb" -D "$dir/data" -U "$PG_USER" \
				--pwfile="$dir/run/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
				>>"$logfile" 2>&1 || {
				rm -f "$dir/run/pwfile"
				die "postgres: initdb" "$logfile"
			}
			rm -f "$dir/run/pwfile"
		fi
		# A lock file left by a server that died blocks the start if its pid was reused.
		if [[ -f "$dir/data/postmaster.pid" ]] && ! proc_is "$(head -n 1 "$dir/data/postmaster.pid")" postgres; then
			rm -f "$dir/data/postmaster.pid"
		fi
		log "postgres: starting on 127.0.0.1:$PG_PORT (log: $logfile)"
		runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -l "$logfile" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir/run" start >>"$LOG_DIR/pg_ctl.log" 2>&1 9>&- ||
			die "postgres: pg_ctl start (server log: $logfile)" "$LOG_DIR/pg_ctl.log"
		record_pid postgres "$(head -n 1 "$dir/data/postmaster.pid")"
		printf '%s' "$bindir" >"$dir/bindir"
		wait_until 30 "postgres login" pg_answers "$psql" "$password" ||
			die "postgres: no login as $PG_USER on 127.0.0.1:$PG_PORT" "$logfile"
	fi
	env_set GANTRY_TEST_PG_HOST 127.0.0.1
	env_set GANTRY_TEST_PG_PORT "$PG_PORT"
	env_set GANTRY_TEST_PG_USER "$PG_USER"
	env_set GANTRY_TEST_PG_PASSWORD "$password"
	env_set GANTRY_TEST_PG_DATABASE postgres
	env_set GANTRY_TEST_PG_URL "postgres://$PG_USER:$password@127.0.0.1:$PG_PORT/postgres"
	env_set GANTRY_TEST_PSQL "$psql"
}

down_postgres() {
	local dir="$GANTRY_TEST_STATE/postgres" bindir
	[[ -f "$PID_DIR/postgres.pid" ]] || return 0
	bindir="$(cat "$dir/bindir" 2>/dev/null || pg_bindir)"
	if pid_alive postgres; then
		log "postgres: stopping"
		runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			stop_pid postgres 10
	fi
	rm -f "$PID_DIR/postgres.pid"
}
