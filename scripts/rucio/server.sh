#!/usr/bin/env bash
# A real Rucio 41.5 server on 127.0.0.1 for the tests (adapted from shared/recipes/rucio-up.sh): its own venv
# (.services/rucio-venv, from scripts/rucio/requirements.lock; the server pins old urllib3/requests, so it must not
# share the project's venv), a SQLite database and gunicorn with one worker.
# Usage: scripts/rucio/server.sh start BASE PORT   -> prints the client config path
#        scripts/rucio/server.sh stop BASE
#        scripts/rucio/server.sh hermes BASE STOMP_PORT DESTINATION
#            one cycle of the real rucio-hermes daemon: the server's messages table (CLOSE, ERASE, ...) -> ActiveMQ
#            on 127.0.0.1:STOMP_PORT, DESTINATION e.g. /topic/VirtualTopic.rucio.events
#        scripts/rucio/server.sh undertaker BASE   -> one cycle of rucio-undertaker: expired DIDs erased (ERASE)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.services/rucio-venv"
cmd=${1:?start|stop|hermes|undertaker}; BASE=${2:?BASE}
mkdir -p "$BASE"/{etc,log,tmp}
if [ "$cmd" = hermes ] || [ "$cmd" = undertaker ]; then
  [ -f "$BASE/etc/rucio.cfg" ] || { echo "no Rucio server configured under $BASE (start it first)" >&2; exit 1; }
  # the server's configuration, logging at INFO (what each cycle did: "N messages successfully submitted ...")
  cfg="$BASE/etc/$cmd.cfg"
  sed 's/^loglevel = .*/loglevel = INFO/' "$BASE/etc/rucio.cfg" > "$cfg.tmp" && mv "$cfg.tmp" "$cfg"
  if [ "$cmd" = hermes ]; then
    STOMP_PORT=${3:?STOMP_PORT}; DEST=${4:?DESTINATION}
    # where Hermes delivers: plain STOMP on loopback (the test broker has no users, so the login is only a name;
    # use_ssl = False makes Hermes take username/password and nonssl_port)
    cat >> "$cfg" <<CFG
[messaging-hermes]
brokers = 127.0.0.1
port = $STOMP_PORT
nonssl_port = $STOMP_PORT
use_ssl = False
username = rucio-hermes
password =
destination = $DEST
CFG
    RUCIO_CONFIG=$cfg exec "$VENV/bin/python" "$VENV/bin/rucio-hermes" --run-once
  fi
  RUCIO_CONFIG=$cfg exec "$VENV/bin/python" "$VENV/bin/rucio-undertaker" --run-once
fi
if [ "$cmd" = stop ]; then
  if [ -f "$BASE/gunicorn.pid" ]; then kill "$(cat "$BASE/gunicorn.pid")" 2>/dev/null || true; fi
  for _ in $(seq 1 50); do [ -f "$BASE/gunicorn.pid" ] && kill -0 "$(cat "$BASE/gunicorn.pid")" 2>/dev/null || break; sleep 0.2; done
  exit 0
fi
PORT=${3:?PORT}
stamp="$VENV/.lock-installed"
if [ ! -f "$stamp" ] || ! cmp -s scripts/rucio/requirements.lock "$stamp"; then
  rm -rf "$VENV"
  "$ROOT/.venv/bin/uv" venv -q --python "$(command -v python3)" "$VENV"
  "$ROOT/.venv/bin/uv" pip install -q --python "$VENV/bin/python" -r scripts/rucio/requirements.lock
  cp scripts/rucio/requirements.lock "$stamp"
fi
SP=$("$VENV/bin/python" -c 'import rucio, os; print(os.path.dirname(os.path.dirname(rucio.__file__)))')
DBURL="sqlite:///$BASE/rucio.db"
cat > "$BASE/etc/alembic.ini" <<CFG
[alembic]
script_location = $SP/rucio/db/sqla/migrate_repo
sqlalchemy.url = $DBURL
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
CFG
# a password made for this server only, never committed
[ -f "$BASE/etc/password" ] || "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(12))' > "$BASE/etc/password"
PW=$(cat "$BASE/etc/password")
cat > "$BASE/etc/rucio.cfg" <<CFG
[common]
logdir = $BASE/log
loglevel = WARNING
[database]
default = $DBURL
[bootstrap]
userpass_identity = ddmlab
userpass_pwd = $PW
userpass_email = ddmlab@example.org
[alembic]
cfg = $BASE/etc/alembic.ini
[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
[hermes]
# the messages the server writes for Hermes (CLOSE, ERASE, ...): for ActiveMQ only, no e-mail
services_list = activemq
CFG
cat > "$BASE/etc/client.cfg" <<CFG
[client]
rucio_host = http://127.0.0.1:$PORT
auth_host = http://127.0.0.1:$PORT
auth_type = userpass
username = ddmlab
password = $PW
account = root
request_retries = 1
auth_token_file_path = $BASE/tmp/rucio_token
CFG
if [ ! -f "$BASE/rucio.db" ]; then
  RUCIO_CONFIG=$BASE/etc/rucio.cfg "$VENV/bin/python" -c '
from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
build_database(); create_base_vo(); create_root_account()' >"$BASE/log/bootstrap.log" 2>&1
fi
RUCIO_CONFIG=$BASE/etc/rucio.cfg nohup "$VENV/bin/gunicorn" --no-control-socket -b 127.0.0.1:$PORT -w 1 --threads 1 \
  --timeout 120 --pid "$BASE/gunicorn.pid" rucio.web.rest.flaskapi.v1.main:application >"$BASE/log/gunicorn.log" 2>&1 &
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null || { echo "Rucio did not start; see $BASE/log/gunicorn.log" >&2; exit 1; }
echo "$BASE/etc/client.cfg"
