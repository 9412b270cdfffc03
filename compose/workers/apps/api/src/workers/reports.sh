# Stand-in for dist/workers/reports.js.
WORKER=reports
. apps/api/src/workers/_worker.sh
