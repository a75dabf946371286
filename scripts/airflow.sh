#!/usr/bin/env bash
# `make up` / `make down`: Airflow standalone for this project (AIRFLOW_HOME inside the project, DAGs from dags/,
# plugins from plugins/, parallelism suited to 2 cores), started in the background and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW__API__PORT/execution/"
export PATH="$ROOT/.venv/bin:$PATH"
export EVENTINDEX_HOME="${EVENTINDEX_HOME:-$ROOT/.eventindex}"  # tasks see the same embedded state as the CLI
# the sensing and ingestion DAGs run as soon as they are parsed (a backfill of a paused DAG would never run)
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
# three accounts of Airflow's simple auth manager, passwords generated on first start (printed below): an admin, a
# viewer (reads the catalogue and the pages) and an analyst (role user: submits picking requests)
ACCOUNTS="admin:admin,viewer:viewer,analyst:user"  # user:role, as Airflow's setting spells it
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-$ACCOUNTS}"
PID="$AIRFLOW_HOME/standalone.pid"
LOG="$AIRFLOW_HOME/standalone.log"
# everything made from here on (Airflow's home and DB with its -wal/-shm, the generated passwords, the logs, the
# metadata DB) is the owner's alone: the DBs hold picks' event lists and users' requests
umask 077
mkdir -p "$AIRFLOW_HOME"

case "${1:-}" in
  up)
    # the metadata DB's schema: created or migrated here, once (no task, sensor or page ever migrates it)
    eventindex db upgrade
    if [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; then
      echo "Airflow is already running (pid $(cat "$PID"))"
    else
      # standalone stops cleanly only on SIGINT, which a background job ignores unless reset
      nohup python -c "import os,signal; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('airflow',['airflow','standalone'])" \
        >"$LOG" 2>&1 &
      echo $! > "$PID"
      for _ in $(seq 1 90); do
        curl -fsS "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
        kill -0 "$(cat "$PID")" 2>/dev/null || { echo "Airflow exited; see $LOG"; tail -20 "$LOG"; exit 1; }
        sleep 2
      done
    fi
    # one pool per ingestion source (dags/eventindex_ingest.py): a campaign backlog cannot take every worker slot
    airflow pools import "$ROOT/scripts/pools.json" >/dev/null
    # DAGs paused by an earlier Airflow home stay paused unless told: unpause the sensing and ingestion ones
    airflow dags unpause --treat-dag-id-as-regex -y '^eventindex_(ingest|stomp|tier0|campaign|conditions|pick)' \
      >/dev/null 2>&1 || true
    # homes made before (or by another tool) keep nothing readable by others either: the folders, the secrets and
    # the DBs with their -wal and -shm (SQLite gives those the DB file's mode)
    chmod go-rwx "$AIRFLOW_HOME" "$EVENTINDEX_HOME" 2>/dev/null || true
    for f in "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" "$AIRFLOW_HOME/airflow.cfg" \
             "$AIRFLOW_HOME"/airflow.db* "$AIRFLOW_HOME"/*.log "$EVENTINDEX_HOME"/*.sqlite*; do
      if [ -f "$f" ]; then chmod go-rwx "$f"; fi
    done
    accounts=$(python -c "import json,sys; print(*(f'{u}:{p}' for u, p in json.load(open(sys.argv[1])).items()))" \
               "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" 2>/dev/null || echo "")
    # where `eventindex pick` finds the API when AIRFLOW_URL is not set (the port may not be the default)
    echo "http://127.0.0.1:$AIRFLOW__API__PORT" > "$AIRFLOW_HOME/api_url"
    echo "Airflow UI: http://127.0.0.1:$AIRFLOW__API__PORT"
    [ -n "$accounts" ] || echo "  accounts: see $LOG"
    for account in $accounts; do
      user=${account%%:*}
      role=$(tr ',' '\n' <<<"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" | sed -n "s/^$user://p")
      echo "  user: $user  password: ${account#*:}  (role ${role:-?})"
    done
    echo "logs: $LOG   stop: make down"
    ;;
  down)
    if [ -f "$PID" ] && kill -0 "$(cat "$PID")" 2>/dev/null; then
      kill -INT "$(cat "$PID")"
      for _ in $(seq 1 30); do kill -0 "$(cat "$PID")" 2>/dev/null || break; sleep 1; done
      kill -0 "$(cat "$PID")" 2>/dev/null && kill -TERM -- "$(cat "$PID")" 2>/dev/null || true
      echo "Airflow stopped"
    else
      echo "Airflow is not running"
    fi
    rm -f "$PID" "$AIRFLOW_HOME/api_url"
    ;;
  *) echo "usage: scripts/airflow.sh up|down"; exit 2 ;;
esac
