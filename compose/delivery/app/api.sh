#!/bin/sh
# Stand-in for the delivery-api (NestJS on Node.js 22): busybox httpd on 8080 with the three
# endpoints the Kubernetes probes call. `/` answers the release and the replica's hostname, so
# a client can tell versions and replicas apart. Behaviour switches, each standing in for a real failure:
#   BOOT_FAIL=1          the release fails to boot (a NestJS module throws): exit 1 at start
#   READY_FAIL_AFTER=N   /readyz stops answering 200 (404) N seconds after start (its dependencies
#                        went away: the "elevated error rate" the canary watches)
set -eu
release="${RELEASE:-r1}"
echo "delivery-api ${release} starting (pid $$)"
if [ "${BOOT_FAIL:-}" = 1 ]; then
  echo "delivery-api ${release}: boot failed: configuration invalid" >&2
  exit 1
fi
mkdir -p /www
echo "${release} $(hostname)" > /www/index.html
echo ok > /www/healthz
echo ready > /www/readyz
if [ -n "${READY_FAIL_AFTER:-}" ]; then
  (sleep "${READY_FAIL_AFTER}"; rm -f /www/readyz; echo "delivery-api ${release}: not ready") &
fi
exec httpd -f -p 8080 -h /www
