# Shared by the worker stand-ins (sourced, not run): the body of one NestJS worker. It serves
# /health and / on $PORT (App Runner's health check, the API Gateway's route to this worker),
# logs one line when it starts, and processes its queue. A message in /tmp/poison stands in for
# a message the worker cannot handle: it dies with exit 1, as an unhandled exception would.
# The start line shows which secret it holds as a SHA-256 digest, never the value.
: "${WORKER:?}" "${PORT:?PORT is set per service}"
digest=$(printf '%s' "${DB_PASSWORD:-}" | sha256sum | cut -c1-16)
echo "worker ${WORKER} started pid=$$ release=${RELEASE:-unknown} queue=${QUEUE_PREFIX:-}${WORKER} db_password_sha256=${digest}"
mkdir -p "/tmp/www-${WORKER}"
echo ok > "/tmp/www-${WORKER}/health"
echo "${WORKER} ${RELEASE:-unknown}" > "/tmp/www-${WORKER}/index.html"
httpd -f -p "127.0.0.1:${PORT}" -h "/tmp/www-${WORKER}" &
web=$!
trap 'kill "$web" 2>/dev/null; exit 0' TERM INT
while :; do
  if [ -f /tmp/poison ]; then
    echo "worker ${WORKER}: cannot process message $(cat /tmp/poison): exiting" >&2
    kill "$web" 2>/dev/null
    exit 1
  fi
  sleep 1
done
