# The two quick-start commands: `make demo` and `make test`. Both set up whatever is missing first.
SHELL := /bin/bash
VENV := .venv
export AIRFLOW__CORE__PARALLELISM ?= 4

.PHONY: setup setup-test demo test test-unit bench lock clean up down up-cluster down-cluster

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

# The main job end to end, with Airflow running the DAGs (the library-only path: .venv/bin/eventindex demo).
demo: setup
	$(VENV)/bin/python -m eventindex_airflow.demo

# Real services (ActiveMQ) are started and stopped by the test harness itself (tests/conftest.py).
test: setup-test
	$(VENV)/bin/python -m pytest tests

test-unit: setup
	$(VENV)/bin/python -m pytest tests/unit

bench: setup-test
	$(VENV)/bin/python -m bench.producer
	$(VENV)/bin/python -m bench.catalog --events 2000000
	$(VENV)/bin/python -m bench.cli
	$(VENV)/bin/python -m bench.grid

lock: setup
	$(VENV)/bin/uv pip compile requirements.txt -o requirements.lock --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu

# Airflow standalone on 127.0.0.1:8080 with this project's DAGs; prints the URL, user and password.
up: setup
	@scripts/airflow.sh up

down:
	@scripts/airflow.sh down

# The docker-compose.yaml topology natively on loopback: PostgreSQL, Redis, ActiveMQ, SeaweedFS (S3), Airflow's
# api-server, scheduler, dag-processor, triggerer and two Celery workers, state under .cluster/; stopped by PID.
up-cluster: setup-test
	$(VENV)/bin/python -m eventindex_harness.cluster up

down-cluster:
	$(VENV)/bin/python -m eventindex_harness.cluster down

clean:
	rm -rf .eventindex .pytest_cache
