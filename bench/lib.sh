# Shared helpers for the bench/ scripts (sourced, not run).

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# Median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The cargo target dir the workspace builds into.
target_dir() {
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then echo "$CARGO_TARGET_DIR"; else echo /var/cache/gantry/target; fi
}

# Brings up the test services named as arguments and loads their addresses.
bench_env() {
  tests/env/up "$@" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . /var/cache/gantry/test-env/env
  set +a
}
