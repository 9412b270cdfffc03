#!/bin/sh
# Stand-in for delivery-outbox-relay and delivery-event-projector: long-running consumers
# with no port. They log their start and keep running until stopped.
set -eu
echo "${ROLE:-worker} ${RELEASE:-r1} started (pid $$)"
trap 'echo "${ROLE:-worker} stopping"; exit 0' TERM INT
while :; do sleep 1; done
