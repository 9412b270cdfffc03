# Shared helpers for the bench/ scripts (sourced, not run).

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# Times one command in microseconds without forking a timer: `timed_us VAR cmd args...` runs
# the command (its output as the caller redirects) and appends the elapsed time to array VAR.
# Both sides of a comparison are timed the same way, by bash's own clock ($EPOCHREALTIME).
timed_us() {
  local -n _out=$1
  shift
  local t0=${EPOCHREALTIME/./}
  "$@"
  local rc=$?
  _out+=($((${EPOCHREALTIME/./} - t0)))
  return $rc
}

# Microseconds given as arguments, printed as milliseconds with one decimal.
as_ms() { printf '%s\n' "$@" | awk '{printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1000}'; }

# Median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The cargo target dir the workspace builds into: CARGO_TARGET_DIR, else .cargo/config.toml's
# (what cargo itself says, so the bench runs the binaries it just built).
target_dir() {
  local dir
  dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  [ -n "$dir" ] || { echo "bench: cannot find cargo's target directory" >&2; return 1; }
  echo "$dir"
}

# Builds in release what the benches run: `gantry` and `gantryd` (the client execs the engine
# for in-process commands, `gantryd` must sit next to it), and `gantry-secrets` with `sidecar`.
build_release() {
  cargo build --release --locked -q -p gantry-agent --bins "$@"
}

# The directory of the programs a bench runs, printed: $GANTRY_BENCH_BIN_DIR when set (a
# prebuilt release build, e.g. another commit's for bench/compare.sh; nothing is built), else
# the workspace's release build, built first (build_release with the arguments given).
release_bin_dir() {
  if [ -n "${GANTRY_BENCH_BIN_DIR:-}" ]; then
    [ -x "$GANTRY_BENCH_BIN_DIR/gantry" ] || { echo "bench: no gantry in GANTRY_BENCH_BIN_DIR=$GANTRY_BENCH_BIN_DIR" >&2; return 1; }
    (cd "$GANTRY_BENCH_BIN_DIR" && pwd)
  else
    build_release "$@" >&2
    echo "$(target_dir)/release"
  fi
}

# The directory of the static (musl) release build the packages ship, printed: built first by
# packaging/build for this machine's architecture (binaries only, into
# /var/cache/gantry/bench-dist; the cargo target dir is the workspace's, so after the test
# command, which packages the same build, this is an incremental no-op).
static_bin_dir() {
  local out=/var/cache/gantry/bench-dist arch
  arch=$(uname -m)
  packaging/build --target "$arch" --no-packages --out "$out" >&2
  echo "$out/$arch-unknown-linux-musl"
}

# Brings up the test services named as arguments and loads their addresses.
bench_env() {
  tests/env/up "$@" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . /var/cache/gantry/test-env/env
  set +a
}
