#!/bin/sh
# Entrypoint of the `activemq` service (apache/activemq-classic 5.17): the broker runs with this project's own
# configuration, scripts/activemq/activemq.xml (mounted read-only at /etc/eventindex/activemq.xml: the queues it
# creates up front, KahaDB persistence, store limits), the same file the native test broker uses. That file binds
# its connectors to 127.0.0.1; in a container they must listen on the container's network instead, so the copy
# the broker reads has them on 0.0.0.0. The host still sees only 127.0.0.1 (the published port in the compose file).
# Usage: activemq.sh [BROKER_XML]   (default /etc/eventindex/activemq.xml)
set -eu
src=${1:-/etc/eventindex/activemq.xml}
conf="${ACTIVEMQ_HOME:?ACTIVEMQ_HOME is not set: not the apache/activemq-classic image?}/conf/activemq.xml"
[ -r "$src" ] || { echo "activemq: $src is missing (mount scripts/activemq/activemq.xml there)" >&2; exit 1; }
sed -e 's#tcp://127\.0\.0\.1:#tcp://0.0.0.0:#g' -e 's#stomp://127\.0\.0\.1:#stomp://0.0.0.0:#g' "$src" > "$conf"
grep -q 'stomp://0\.0\.0\.0:61613' "$conf" \
  || { echo "activemq: $src has no STOMP connector on port 61613" >&2; exit 1; }
exec activemq console
