#!/bin/sh
# Stand-in for one Kafka broker in KRaft mode, reading the same KAFKA_* variables as the
# apache/kafka image: it refuses to start without the KRaft settings (process roles with a
# controller, node id, quorum voters, cluster id), formats its log directory once
# (meta.properties, as kafka-storage.sh format does), refuses a directory formatted for another
# cluster, records each start in the directory, and listens on 9092 (a TCP port, not the Kafka
# protocol).
set -eu
: "${KAFKA_PROCESS_ROLES:?}" "${KAFKA_NODE_ID:?}" "${KAFKA_CONTROLLER_QUORUM_VOTERS:?}"
: "${CLUSTER_ID:?}" "${KAFKA_LOG_DIRS:?}" "${KAFKA_ADVERTISED_LISTENERS:?}"
case "$KAFKA_PROCESS_ROLES" in
  *controller*) ;;
  *) echo "KRaft: process.roles must include controller on a single broker" >&2; exit 1 ;;
esac
mkdir -p "$KAFKA_LOG_DIRS"
meta="$KAFKA_LOG_DIRS/meta.properties"
if [ ! -f "$meta" ]; then
  printf 'version=1\ncluster.id=%s\nnode.id=%s\n' "$CLUSTER_ID" "$KAFKA_NODE_ID" > "$meta"
  echo "Formatting $KAFKA_LOG_DIRS with cluster.id $CLUSTER_ID"
fi
if ! grep -qx "cluster.id=$CLUSTER_ID" "$meta"; then
  echo "Invalid cluster.id in $meta: expected $CLUSTER_ID" >&2
  exit 1
fi
date -u +%Y-%m-%dT%H:%M:%SZ >> "$KAFKA_LOG_DIRS/starts"
exec httpd -f -p 9092 -h "$KAFKA_LOG_DIRS"
