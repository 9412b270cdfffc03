#!/bin/sh
# Stand-in for `rasa run --enable-api` (internal only): GET / greets, GET /status answers JSON.
set -eu
www=/tmp/www
mkdir -p "$www"
echo 'Hello from Rasa (stand-in)' > "$www/index.html"
echo '{"model_file":"models/current.tar.gz","num_active_training_jobs":0}' > "$www/status"
exec httpd -f -p "${RASA_PORT:-5005}" -h "$www"
