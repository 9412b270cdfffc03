#!/bin/sh
# Stand-in for the forward-only schema migration: needs DATABASE_URL, then appends one line
# per run (release, time) to the history on its volume (standing in for the migrations
# table in RDS), so a test can count the runs.
set -eu
if [ -z "${DATABASE_URL:-}" ]; then
  echo "DATABASE_URL is not set" >&2
  exit 1
fi
release=$(cat /app/release)
mkdir -p /var/lib/migrations
echo "$release $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> /var/lib/migrations/history
echo "migrated to $release"
