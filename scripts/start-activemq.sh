#!/bin/sh
# Start ActiveMQ 5.17 (Debian package `activemq`) in the foreground as the current user, all state under $1,
# bound to 127.0.0.1 only (STOMP 61613, OpenWire 61616). The Debian service and /usr/bin/activemq are not used.
set -eu
B=${1:?usage: start-activemq.sh BASE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$B/conf" "$B/data" "$B/tmp"
[ -f "$B/conf/activemq.xml" ] || cp "$HERE/activemq/activemq.xml" "$B/conf/activemq.xml"
[ -f "$B/conf/log4j.properties" ] || cp "$HERE/activemq/log4j.properties" "$B/conf/log4j.properties"
exec java -Xms256M -Xmx256M -XX:+UseSerialGC \
  --add-reads=java.xml=java.logging \
  --add-opens java.base/java.security=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
  --add-opens java.naming/javax.naming.spi=ALL-UNNAMED --add-opens java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED \
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
  -Djava.io.tmpdir="$B/tmp" \
  -Dactivemq.classpath="$B/conf" -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$B" \
  -Dactivemq.conf="$B/conf" -Dactivemq.data="$B/data" \
  -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$B/conf/activemq.xml"
