#!/bin/sh
# Stand-in for drop-appweb (Next.js 15 standalone, `node server.js`) on $PORT: a page naming
# its release.
set -eu
www=/tmp/www
mkdir -p "$www"
echo "Drop $(cat /app/release)" > "$www/index.html"
exec httpd -f -p "${PORT:-3000}" -h "$www"
