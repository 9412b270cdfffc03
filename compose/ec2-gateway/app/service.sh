#!/bin/sh
# Stand-in for a Spring Boot microservice (accounts, conversations): like a Spring app whose
# DataSource cannot be built, it refuses to start without the database password that
# gantry-secrets renders from Secrets Manager; then it answers /actuator/health and
# /<service> (which release it runs). It reaches nothing real: RDS and Kafka traffic is not
# simulated.
set -eu
: "${SERVICE_NAME:?}" "${SERVER_PORT:?}"
if [ -z "${SPRING_DATASOURCE_PASSWORD:-}" ]; then
  echo "APPLICATION FAILED TO START: no password for ${SPRING_DATASOURCE_URL:-the datasource}" >&2
  exit 1
fi
www=/tmp/www
mkdir -p "$www/actuator"
echo '{"status":"UP"}' > "$www/actuator/health"
printf '{"service":"%s","release":"%s"}\n' "$SERVICE_NAME" "$(cat /app/release)" > "$www/$SERVICE_NAME"
exec httpd -f -p "$SERVER_PORT" -h "$www"
