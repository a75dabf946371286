#!/usr/bin/env bash
# The one-shot `phoenix-catalog` service of the compose profile `phoenix` (the project image, with
# EVENTINDEX_CATALOG=phoenix): it points the site's catalogue at an EXTERNAL Apache Phoenix query server
# (EVENTINDEX_PHOENIX_URL, with EVENTINDEX_PHOENIX_AUTH/_USER/_PASSWORD/_CA when the server wants them).
#   1. opens the Phoenix catalogue once (`eventindex datasets`): proves the server answers with these credentials
#      and creates the event table, its index and its sequence when they are missing (sql/phoenix/events.sql);
#   2. sets the Airflow connection eventindex_catalog to {"backend": "phoenix"} with the server as host: every task
#      on every worker opens its catalogue through that connection, whatever the worker's own environment says.
# The connection stays until it is deleted (`airflow connections delete eventindex_catalog` goes back to the
# embedded catalogue): a later `docker compose up` without the profile never silently splits the catalogue.
set -euo pipefail
if [ -z "${EVENTINDEX_PHOENIX_URL:-}" ]; then
  echo "phoenix: EVENTINDEX_PHOENIX_URL is not set: put the Phoenix query server in .env," \
       "e.g. EVENTINDEX_PHOENIX_URL=http://phoenix.example.org:8765/" >&2
  exit 1
fi
[ "${EVENTINDEX_CATALOG:-}" = phoenix ] || { echo "phoenix: run with EVENTINDEX_CATALOG=phoenix" >&2; exit 1; }

echo "phoenix: opening the catalogue on $EVENTINDEX_PHOENIX_URL"
eventindex datasets >/dev/null

umask 077
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python - "$scratch/connections.json" <<'PY'
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({"eventindex_catalog": {"conn_type": "generic", "host": os.environ["EVENTINDEX_PHOENIX_URL"],
                                      "extra": {"backend": "phoenix"}}}, out)
PY
airflow connections import --overwrite "$scratch/connections.json"
echo "phoenix: the catalogue of every task is now Phoenix at $EVENTINDEX_PHOENIX_URL"
