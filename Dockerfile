# The project image of docker-compose.yaml: Airflow 3.3 with the locked dependencies (requirements.lock), the
# eventindex packages (eventindex, eventindex_airflow, eventindex_harness; see pyproject.toml), the DAGs, the plugins
# folder, the scripts and the DDL under /opt/eventindex; runs as the non-root user `airflow`.
#   docker compose build          (or: docker build -t eventindex .)
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.9
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    AIRFLOW_HOME=/opt/airflow \
    EVENTINDEX_HOME=/var/lib/eventindex

# what scripts/setup.sh installs for the venv: the Kerberos headers and a compiler (gssapi and requests-gssapi
# build from source); curl for the health checks of docker-compose.yaml
RUN apt-get update \
 && apt-get install -y --no-install-recommends libkrb5-dev gcc curl \
 && rm -rf /var/lib/apt/lists/*

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /opt/eventindex

# the locked dependencies first: this layer is rebuilt only when the lock changes
COPY requirements.lock ./
RUN uv pip install --system -r requirements.lock

# the project itself (its dependencies are the lock's), installed in place as scripts/setup.sh does (-e): the
# packages map to folders (pyproject.toml: package-dir), and a plain wheel of the current pyproject.toml would hold
# only the top-level modules of each package, not eventindex.catalog, .cli, .sim, .picking. The import below fails
# the build if a subpackage is missing.
COPY pyproject.toml README.md ./
COPY include/ include/
COPY operators/ operators/
COPY harness/ harness/
COPY plugins/ plugins/
RUN uv pip install --system --no-deps -e . \
 && python -m compileall -q include operators harness plugins \
 && python -c "import eventindex.cli.main, eventindex.catalog, eventindex.picking, eventindex.sim, eventindex_harness, eventindex_web.api" \
 && eventindex --help >/dev/null

COPY dags/ dags/
COPY scripts/ scripts/
COPY sql/ sql/

RUN useradd --create-home --uid 50000 --shell /bin/bash airflow \
 && mkdir -p "$AIRFLOW_HOME" "$EVENTINDEX_HOME" \
 && chown airflow: "$AIRFLOW_HOME" "$EVENTINDEX_HOME"
USER airflow

EXPOSE 8080 5555
CMD ["airflow", "--help"]
