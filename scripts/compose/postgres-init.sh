#!/bin/bash
# Run once by the postgres:15 image when its data volume is new (/docker-entrypoint-initdb.d): the second database
# of the `postgres` service, the EventIndex metadata DB `eventindex`, owned by its own role whose password comes
# from the environment (METADATA_DB_PASSWORD, from .env), never from this file. Airflow's own database (`airflow`)
# is the image's POSTGRES_DB. psql's :'pw' quotes the password as an SQL literal.
set -euo pipefail
: "${METADATA_DB_PASSWORD:?METADATA_DB_PASSWORD is not set (see .env.example)}"
psql -v ON_ERROR_STOP=1 -v pw="$METADATA_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE eventindex LOGIN PASSWORD :'pw';
CREATE DATABASE eventindex OWNER eventindex;
REVOKE ALL ON DATABASE eventindex FROM PUBLIC;
SQL
echo "postgres-init: database eventindex (owner eventindex) created"
