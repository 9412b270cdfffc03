#!/bin/sh
# The App Runner start command of the workers (architectures/003):
#   bash apps/api/scripts/start-worker.sh [worker-file]
# Here it is the CMD that `gantry-secrets exec` starts (with the secrets in the environment)
# and restarts when they change. The real script runs `node dist/workers/<worker>.js`; the
# stand-in runs apps/api/src/workers/<worker>.sh with busybox sh.
set -eu
worker="${1:?usage: start-worker.sh <worker-file>}"
file="apps/api/src/workers/${worker}.sh"
if [ ! -f "$file" ]; then
  echo "start-worker: no worker file ${file}" >&2
  exit 2
fi
echo "start-worker: ${worker} (release ${RELEASE:-unknown})"
exec sh "$file"
