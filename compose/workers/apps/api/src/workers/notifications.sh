# Stand-in for dist/workers/notifications.js.
WORKER=notifications
. apps/api/src/workers/_worker.sh
