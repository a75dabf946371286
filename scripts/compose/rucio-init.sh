#!/bin/bash
# Entrypoint of the one-shot `rucio-init` service (the official rucio/rucio-init image): on a new database it
# creates Rucio's tables and the root account with the userpass identity of RUCIO_CFG_BOOTSTRAP_USERPASS_* (from
# .env). On every later `docker compose up` the database is already there, and bootstrapping again would fail on the
# existing root account, so it is skipped.
set -euo pipefail
set +e
python3 - <<'PY'
import os, sys
try:
    import sqlalchemy as sa
    engine = sa.create_engine(os.environ["RUCIO_CFG_DATABASE_DEFAULT"])
    sys.exit(0 if sa.inspect(engine).has_table("accounts") else 3)
except Exception as exc:  # the database cannot be reached: say so, do not try to bootstrap it
    print(f"rucio-init: cannot inspect Rucio's database: {exc}", file=sys.stderr)
    sys.exit(1)
PY
state=$?
set -e
case $state in
  0) echo "rucio-init: Rucio's database is already bootstrapped"; exit 0 ;;
  3) echo "rucio-init: bootstrapping Rucio's database (tables, root account)"; exec /docker-entrypoint.sh ;;
  *) exit "$state" ;;
esac
