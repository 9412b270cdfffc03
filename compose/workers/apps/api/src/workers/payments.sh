# Stand-in for dist/workers/payments.js.
WORKER=payments
. apps/api/src/workers/_worker.sh
