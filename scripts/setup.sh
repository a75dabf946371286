#!/usr/bin/env bash
# Set up what `make demo` and `make test` need on a fresh Debian 12 + Python 3.11 machine, idempotently:
# system packages (apt), the venv at .venv/ with the locked dependencies (uv), and the project itself (editable).
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite's real services need: ActiveMQ, PostgreSQL, Redis,
# Debian's docker-compose that validates docker-compose.yaml, and Debian's chromium for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libkrb5-dev gcc python3-dev)
[ "${1:-}" = "--test" ] && want+=(activemq postgresql curl redis-server docker-compose chromium)
python3 -c 'import venv, ensurepip' 2>/dev/null || want+=(python3-venv)

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Python headers may come from the interpreter itself (pyenv) rather than python3-dev.
if [[ " ${missing[*]} " == *" python3-dev "* ]] && [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
  missing=("${missing[@]/python3-dev}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

UV_VERSION=0.13.9
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
stamp=.venv/.lock-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp"; then
  echo "setup: installing the locked dependencies (requirements.lock)"
  .venv/bin/uv pip install --python .venv/bin/python -q --compile-bytecode -r requirements.lock
  cp requirements.lock "$stamp"
fi
if [ ! -f .venv/.project-installed ] || [ pyproject.toml -nt .venv/.project-installed ]; then
  .venv/bin/uv pip install --python .venv/bin/python -q --compile-bytecode --no-deps -e .
  .venv/bin/python -m compileall -q include operators >/dev/null  # an editable install is not compiled by uv
  touch .venv/.project-installed
fi
