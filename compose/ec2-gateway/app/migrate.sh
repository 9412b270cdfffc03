#!/bin/sh
# Stand-in for the one-shot migration container (Flyway against RDS): needs the database
# password, then appends one line per run (release, time) to its schema history, a named volume
# standing in for the flyway_schema_history table, so a test can count the runs.
set -eu
if [ -z "${SPRING_DATASOURCE_PASSWORD:-}" ]; then
  echo "migration: no password for ${SPRING_DATASOURCE_URL:-the datasource}" >&2
  exit 1
fi
release=$(cat /app/release)
mkdir -p /var/lib/schema
echo "$release $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> /var/lib/schema/history
echo "migrated to $release"
