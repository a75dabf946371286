#!/usr/bin/env bash
# The one-shot `init` service of docker-compose.yaml (the project image). It runs on every `docker compose up`, before
# any Airflow component starts, and every step is idempotent:
#   1. Airflow's database schema (airflow db migrate);
#   2. the admin's password: the simple auth manager's passwords file, from AIRFLOW_ADMIN_PASSWORD;
#   3. the Rucio client configuration ($RUCIO_CONFIG, on the shared EventIndex volume) and the Airflow connection
#      eventindex_rucio (the Rucio server of the compose file, the root account's userpass identity);
#   4. the ingestion pools (scripts/pools.json);
#   5. the object store's bucket and prefixes of the staging, work and picking areas (when they are s3:// URIs);
#   6. the EventIndex metadata schema (eventindex db upgrade).
# Secrets come from the environment (.env through the compose file) and are written only to files of mode 0600.
set -euo pipefail
cd "$(dirname "$0")/../.."   # /opt/eventindex in the image

for var in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE \
           AIRFLOW_ADMIN_PASSWORD EVENTINDEX_METADATA_URL RUCIO_CONFIG RUCIO_URL RUCIO_USERNAME RUCIO_PASSWORD; do
  [ -n "${!var:-}" ] || { echo "init: $var is not set (see .env.example and docker-compose.yaml)" >&2; exit 1; }
done
umask 077
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "init: Airflow's database"
airflow db migrate

echo "init: the admin user's password ($AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE)"
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "w") as out:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
os.replace(path + ".tmp", path)
PY

echo "init: the Rucio client configuration ($RUCIO_CONFIG) and the connection eventindex_rucio"
python - "$scratch/connections.json" <<'PY'
import configparser, json, os, sys
env = os.environ
account = env.get("RUCIO_ACCOUNT") or "root"
cfg = configparser.ConfigParser(interpolation=None)
cfg["client"] = {"rucio_host": env["RUCIO_URL"], "auth_host": env["RUCIO_URL"], "auth_type": "userpass",
                 "username": env["RUCIO_USERNAME"], "password": env["RUCIO_PASSWORD"], "account": account,
                 "request_retries": "3", "auth_token_file_path": "/tmp/rucio_token"}
os.makedirs(os.path.dirname(env["RUCIO_CONFIG"]), exist_ok=True)
with open(env["RUCIO_CONFIG"] + ".tmp", "w") as out:
    cfg.write(out)
os.replace(env["RUCIO_CONFIG"] + ".tmp", env["RUCIO_CONFIG"])
connections = {"eventindex_rucio": {
    "conn_type": "generic", "host": env["RUCIO_URL"], "login": env["RUCIO_USERNAME"],
    "password": env["RUCIO_PASSWORD"], "extra": {"account": account, "config": env["RUCIO_CONFIG"]}}}
with open(sys.argv[1], "w") as out:
    json.dump(connections, out)
PY
airflow connections import --overwrite "$scratch/connections.json"

echo "init: pools"
airflow pools import scripts/pools.json

echo "init: the object store's bucket and prefixes"
python - <<'PY'
import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow.fs as pafs

for name in ("EVENTINDEX_STAGING", "EVENTINDEX_WORK", "EVENTINDEX_PICKS", "EVENTINDEX_REQUESTS"):
    uri = os.environ.get(name) or ""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        print(f"init: {name} is not an object-store URI: nothing to create")
        continue
    query = dict(parse_qsl(parts.query))
    query["allow_bucket_creation"] = "true"
    fs, path = pafs.FileSystem.from_uri(urlunsplit(parts._replace(query=urlencode(query))))
    fs.create_dir(path)
    print(f"init: {name}: s3://{path} ready")
PY

echo "init: the EventIndex metadata schema"
eventindex db upgrade

echo "init: done"
