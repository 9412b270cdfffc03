#!/bin/sh
# Stand-in for the backend API of architectures/001 (Express on Node.js 20, started by PM2 from
# ecosystem.config.js). Its configuration comes only from its environment, which
# `gantry-secrets exec` filled from Vault (PORT, NODE_ENV, DB_*, FRONTEND_URL), as Vault Agent's
# .env.generated did for PM2. It answers the App Runner health check on /api/health with what a
# team checks after a rotation: which process answers and which database password it holds,
# as the first 16 hex digits of its SHA-256 (never the value).
set -eu
: "${PORT:?PORT comes from Vault (kv/secrets/nodeapp)}" "${DB_PASSWORD:?DB_PASSWORD comes from Vault}"
digest=$(printf '%s' "$DB_PASSWORD" | sha256sum | cut -c1-16)
www=/tmp/www
mkdir -p "$www/api"
printf '{"status":"ok","pid":%s,"node_env":"%s","db":"%s@%s:%s/%s","db_password_sha256":"%s","frontend_url":"%s"}\n' \
  "$$" "${NODE_ENV:-}" "${DB_USER:-}" "${DB_HOST:-}" "${DB_PORT:-}" "${DB_NAME:-}" "$digest" "${FRONTEND_URL:-}" \
  > "$www/api/health"
echo "backend: listening on ${PORT} (pid $$, NODE_ENV=${NODE_ENV:-})"
exec httpd -f -p "127.0.0.1:${PORT}" -h "$www"
