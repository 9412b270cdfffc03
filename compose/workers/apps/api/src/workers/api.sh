# Stand-in for dist/workers/api.js.
WORKER=api
. apps/api/src/workers/_worker.sh
