#!/bin/sh
# Stand-in for the BullMQ workers (AML checks, notifications): needs REDIS_URL, then waits
# for jobs (it takes none: no Redis is contacted).
set -eu
if [ -z "${REDIS_URL:-}" ]; then
  echo "REDIS_URL is not set" >&2
  exit 1
fi
trap 'exit 0' TERM INT
while :; do sleep 1; done
