#!/bin/sh
# Stand-in for the Spring Cloud Gateway, the only container the ALB reaches (:8080):
# serves its front page, routes /cgi-bin/accounts to the accounts service by its Docker DNS
# name, and answers the ALB's health check path /actuator/health ({"status":"UP"}). A release
# built with FAULT=gateway-down answers {"status":"DOWN"} (Spring answers 503; the probe
# checks the body, which catches both).
set -eu
www=/tmp/www
mkdir -p "$www/actuator" "$www/cgi-bin"
cp /app/cgi-bin/* "$www/cgi-bin/"
echo "connexing gateway $(cat /app/release)" > "$www/index.html"
status=UP
if [ "$(cat /app/fault)" = gateway-down ]; then status=DOWN; fi
printf '{"status":"%s"}\n' "$status" > "$www/actuator/health"
exec httpd -f -p "${SERVER_PORT:-8080}" -h "$www"
