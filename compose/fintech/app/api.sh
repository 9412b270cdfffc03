#!/bin/sh
# Stand-in for drop-api (Hono on Node.js 22), listening on $PORT. In production it refuses to
# start without JWT_SECRET (auth.ts falls back to a static string in development only), and
# GET /api/v1/health answers like routes/health.ts: {"status":"ok","version",...,"db"}.
# "db" says whether DATABASE_URL is set; nothing real is contacted (no RDS, no Redis).
set -eu
fault=$(cat /app/fault)
release=$(cat /app/release)
if [ "$fault" = crash ]; then
  echo "Error: Cannot find module './routes/health.js' (release $release)" >&2
  exit 1
fi
if [ "${NODE_ENV:-development}" = production ] && [ -z "${JWT_SECRET:-}" ]; then
  echo "JWT_SECRET must be set in production" >&2
  exit 1
fi
db=disconnected
if [ -n "${DATABASE_URL:-}" ]; then db=connected; fi
www=/tmp/www
mkdir -p "$www/api/v1"
health() {
  printf '{"status":"%s","version":"%s","db":"%s","timestamp":"%s"}\n' \
    "$1" "$release" "$db" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$www/api/v1/health.tmp"
  mv "$www/api/v1/health.tmp" "$www/api/v1/health"
}
case "$fault" in
  degraded) health degraded ;;
  degrade-later) health ok; (sleep "${DEGRADE_AFTER:-5}"; health degraded) & ;;
  *) health ok ;;
esac
exec httpd -f -p "${PORT:-3001}" -h "$www"
