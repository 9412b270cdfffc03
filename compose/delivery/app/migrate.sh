#!/bin/sh
# Stand-in for the forward-only database migration (in production: the release image's
# migration command against PostgreSQL). The schema's history is a file on the host
# (/state/schema_migrations, a bind mount): one line per migration applied, never removed.
# A release whose migration is already applied does nothing; there is no down migration.
# Every run is also logged in /state/migrate_runs, so that a test can count the runs.
set -eu
release="${RELEASE:-r1}"
history=/state/schema_migrations
touch "$history"
echo "${release}" >> /state/migrate_runs
if grep -qx "${release}" "$history"; then
  echo "migration ${release}: already applied"
  exit 0
fi
echo "${release}" >> "$history"
echo "migration ${release}: applied"
