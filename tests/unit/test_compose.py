"""docker-compose.yaml, the Dockerfile and .env.example: the production topology as a site runs it.

No container engine runs here, but Debian's docker-compose 1.29 (scripts/setup.sh --test) interpolates .env and
validates the file without one (`docker-compose config`); what it resolves to is read here: ports, health checks,
dependencies, mounts, the project image's commands (against the CLIs in .venv), the settings. The entrypoint scripts
of scripts/compose/ that can run here are run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from itertools import takewhile
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
SETTINGS = REPO / "include" / "eventindex" / "settings.py"
VENV_BIN = Path(sys.executable).parent
IMAGE_ROOT = "/opt/eventindex"  # where the Dockerfile puts the repository's dags/, plugins/, scripts/, sql/
WORKER = "airflow-worker"


def compose_binary() -> str:
    found = shutil.which("docker-compose", path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        pytest.fail("Debian's docker-compose is not installed: `scripts/setup.sh --test` (make setup-test) installs it "
                    "(apt-get install docker-compose); it validates docker-compose.yaml without a container engine")
    return found


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    """docker-compose with only the env file as configuration: nothing of this shell's environment (a variable set
    here would win over .env), no COMPOSE_* settings."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8"}
    return subprocess.run([compose_binary(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


def interpolated() -> tuple[set[str], set[str]]:
    """(every variable the compose file interpolates, those it requires with ${VAR:?message})."""
    text = COMPOSE_FILE.read_text()
    names = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    required = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))
    return names, required


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def filled_env() -> dict[str, str]:
    """.env.example with every required secret filled in, as a site's .env would be."""
    _, required = interpolated()
    values = env_example()
    for name in required:
        values[name] = values.get(name) or secrets.token_urlsafe(24)
    return values


@pytest.fixture(scope="module")
def env_file(tmp_path_factory, filled_env) -> Path:
    return write_env(tmp_path_factory.mktemp("compose") / "site.env", filled_env)


@pytest.fixture(scope="module")
def config(env_file) -> dict:
    """The compose file as docker-compose resolves it, with every profile's services."""
    result = run_compose(env_file, "--profile", "phoenix", "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict[str, dict]:
    return config["services"]


def one_shots(services) -> set[str]:
    return {name for name, svc in services.items() if str(svc.get("restart", "no")) == "no"}


def project_image_services(services) -> dict[str, dict]:
    return {name: svc for name, svc in services.items()
            if svc.get("build") and Path(svc["build"]["context"]).resolve() == REPO}


def as_argv(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


# --- validity and secrets ------------------------------------------------------------------------------------------

def test_the_compose_file_is_valid_with_an_env_file_made_from_env_example(env_file):
    for profile in ([], ["--profile", "phoenix"]):
        result = run_compose(env_file, *profile, "config", "-q")
        assert result.returncode == 0, result.stderr


def test_env_example_copied_as_it_is_stops_compose_until_its_secrets_are_filled_in():
    result = run_compose(ENV_EXAMPLE, "config", "-q")
    assert result.returncode != 0 and re.search(r"set \w+ in \.env", result.stderr), result.stderr[-300:]


def test_a_missing_required_secret_stops_compose_and_names_it(tmp_path, filled_env):
    _, required = interpolated()
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD", "S3_SECRET_KEY", "RUCIO_DB_PASSWORD"} <= required

    def without(name: str):
        values = {k: v for k, v in filled_env.items() if k != name}
        return name, run_compose(write_env(tmp_path / f"{name}.env", values), "config", "-q")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(without, sorted(required)))
    for name, result in results:
        assert result.returncode != 0, f"docker-compose accepted an .env without {name}"
        assert f"set {name} in .env" in result.stderr, result.stderr[-500:]


def test_env_example_lists_every_variable_the_compose_file_interpolates_and_holds_no_secret():
    names, required = interpolated()
    example = env_example()
    assert names - set(example) == set(), "variables the compose file reads that .env.example does not list"
    assert {k: v for k, v in example.items() if k in required and v} == {}, \
        "a required secret has a value in .env.example: secrets are made per site, never committed"
    assert "secrets.token_urlsafe" in ENV_EXAMPLE.read_text()


def test_no_password_or_key_is_written_into_the_compose_file():
    text = COMPOSE_FILE.read_text()
    for m in re.finditer(r"^\s*([A-Z0-9_]*(?:PASSWORD|SECRET|_KEY|PWD)[A-Z0-9_]*):\s*(.*)$", text, re.M):
        name, value = m.groups()
        if name.endswith("_FILE"):  # where a secret lives, not the secret
            continue
        assert value.strip('"\'') == "" or "${" in value, f"{name} is set to a literal value in docker-compose.yaml"


# --- the topology --------------------------------------------------------------------------------------------------

def test_the_services_of_the_topology_are_all_there_and_the_phoenix_profile_switches_the_catalogue(services):
    assert {"postgres", "redis", "activemq", "seaweedfs", "rucio-db", "rucio", "init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", WORKER, "flower"} <= set(services)
    phoenix = services["phoenix-catalog"]
    assert phoenix["profiles"] == ["phoenix"] and phoenix["environment"]["EVENTINDEX_CATALOG"] == "phoenix"


def test_every_published_port_binds_loopback_only(services):
    published = set()
    for name, svc in services.items():
        for port in svc.get("ports", []):
            parts = str(port).split("/")[0].split(":")  # docker-compose 1.29 prints "ip:host:container/tcp"
            host_ip, host_port = (parts[0], parts[1]) if len(parts) == 3 else (None, parts[0])
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"
            published.add(f"{name}:{host_port}")
    assert {"airflow-apiserver:8080", "flower:5555", "activemq:61613", "seaweedfs:8333"} <= published


def test_every_long_running_service_has_a_health_check_and_every_one_shot_is_awaited(services):
    shots = one_shots(services)
    assert {"init", "rucio-init", "phoenix-catalog"} <= shots
    for name, svc in services.items():
        if name in shots:
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} runs for good but has no health check"
    awaited = {dep for svc in services.values() for dep, how in (svc.get("depends_on") or {}).items()
               if how.get("condition") == "service_completed_successfully"}
    for name in shots:
        assert name in awaited or services[name].get("profiles"), f"nothing waits for the one-shot {name}"


def test_every_dependency_waits_for_health_or_completion(services):
    shots = one_shots(services)
    for name, svc in services.items():
        for dep, how in (svc.get("depends_on") or {}).items():
            condition = how.get("condition")
            if dep in shots:
                assert condition == "service_completed_successfully", f"{name} -> {dep}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health, which it never checks"
    for name in project_image_services(services):
        if name != "init":
            assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully", name


def test_the_worker_scales_no_container_name_no_host_port(services):
    worker = services[WORKER]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a fixed host port would stop --scale airflow-worker=N"
    assert as_argv(worker["command"])[:3] == ["airflow", "celery", "worker"]
    mounts = {str(v).split(":")[1] for v in worker.get("volumes", [])}
    assert {"/var/lib/eventindex", "/opt/airflow"} <= mounts, "workers share the catalogue and the task logs"


def test_every_file_a_service_mounts_from_the_repository_exists(services, config):
    named = set(config.get("volumes") or {})
    mounted = 0
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source in named:
                continue
            path = Path(source)
            assert path.is_absolute() and path.resolve().is_relative_to(REPO), \
                f"{name} mounts {source}: a host path outside the repository"
            assert path.exists(), f"{name} mounts {source}, which does not exist"
            mounted += 1
    assert mounted >= 5 and "scripts/activemq/activemq.xml" in " ".join(map(str, services["activemq"]["volumes"]))


def _cli(argv: list[str]) -> tuple[str, ...] | None:
    """`airflow celery worker --concurrency 4` -> ("airflow", "celery", "worker"); None for other programs."""
    if not argv or argv[0] not in ("airflow", "eventindex"):
        return None
    return (argv[0], *list(takewhile(lambda w: not w.startswith("-"), argv[1:]))[:2])


def _scripts_commands(path: Path) -> list[list[str]]:
    """The `airflow ...` and `eventindex ...` command lines a shell script runs (at the start of a line)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [shlex.split(line.split(" >")[0]) for line in lines if re.match(r"^(airflow|eventindex) [a-z]", line)]


# Airflow's own parser (what `airflow` runs) asked for `<words> --help` in one process: a subprocess per command
# costs 1.3 s each; the real `airflow ... --help` runs too, for the worker, so the two cannot drift apart.
_AIRFLOW_HELP = """
import contextlib, io, json, sys
from airflow.cli.cli_parser import get_parser
parser, codes = get_parser(), {}
for words in json.loads(sys.argv[1]):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args([*words, "--help"])
        codes[" ".join(words)] = "no exit"
    except SystemExit as exc:
        codes[" ".join(words)] = exc.code or 0
print(json.dumps(codes))
"""


def test_every_command_the_project_image_runs_exists(services, tmp_path):
    checks: dict[tuple[str, ...], str] = {}
    for name, svc in project_image_services(services).items():
        argv = as_argv(svc["command"])
        test = (svc.get("healthcheck") or {}).get("test") or []
        health = shlex.split(test[1]) if test[:1] == ["CMD-SHELL"] else list(test[1:])
        for what, words in (("command", argv), ("health check", health)):
            if not words:
                continue
            if words[0].startswith(IMAGE_ROOT + "/"):
                script = REPO / words[0][len(IMAGE_ROOT) + 1:]
                assert script.is_file() and script.relative_to(REPO).parts[0] == "scripts", \
                    f"{name} runs {words[0]}, which is not a script of scripts/"
                assert os.access(script, os.X_OK), f"{script} is not executable"
                assert script.read_text().startswith("#!"), f"{script} has no #! line"
                checks.update({_cli(inner): f"{name} ({script.name})" for inner in _scripts_commands(script)})
            elif (cli := _cli(words)) is not None:
                checks[cli] = f"{name} {what}"
            else:
                assert what == "health check" and words[0] in ("curl", "celery"), \
                    f"{name} runs {words[0]!r}: not airflow, eventindex or a script of scripts/"
    airflow = [list(k[1:]) for k in checks if k[0] == "airflow"]
    eventindex = [list(k[1:]) for k in checks if k[0] == "eventindex"]
    assert ["celery", "worker"] in airflow and ["db", "migrate"] in airflow and ["db", "upgrade"] in eventindex
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "EVENTINDEX_HOME": str(tmp_path / "ei")}
    jobs = [[sys.executable, "-c", _AIRFLOW_HELP, json.dumps(airflow)],
            [str(VENV_BIN / "airflow"), "celery", "worker", "--help"],
            [str(VENV_BIN / "airflow"), "celery", "no-such-command", "--help"],
            *([str(VENV_BIN / "eventindex"), *words, "--help"] for words in eventindex)]
    with ThreadPoolExecutor(4) as pool:
        parsed, real, bogus, *own = pool.map(
            lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env), jobs)
    assert parsed.returncode == 0, parsed.stderr[-500:]
    codes = json.loads(parsed.stdout.strip().splitlines()[-1])
    wrong = {f"airflow {k}": checks[("airflow", *k.split())] for k, code in codes.items() if code != 0}
    assert wrong == {}, f"commands that do not exist (command: where): {wrong}"
    assert real.returncode == 0 and bogus.returncode != 0, "the real CLI and its parser disagree"
    for words, result in zip(eventindex, own):
        assert result.returncode == 0, f"{checks[('eventindex', *words)]}: `eventindex {' '.join(words)}` " \
                                       f"does not exist: {result.stderr[-300:]}"


def test_the_worker_health_check_names_a_celery_app_that_imports(services):
    test = services[WORKER]["healthcheck"]["test"]
    argv = shlex.split(test[1])
    target = argv[argv.index("--app") + 1]
    module, attr = target.rsplit(".", 1)
    result = subprocess.run([sys.executable, "-c", f"import {module} as m; getattr(m, {attr!r})"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        f"the CeleryExecutor's module {module} does not import with requirements.lock, so no scheduler or worker "
        f"of the compose file can start: {result.stderr.strip().splitlines()[-1]}")


def test_every_eventindex_variable_the_compose_file_sets_is_one_settings_reads(services):
    read = SETTINGS.read_text()
    names = {k for svc in services.values() for k in (svc.get("environment") or {}) if k.startswith("EVENTINDEX_")}
    assert {"EVENTINDEX_HOME", "EVENTINDEX_METADATA_URL", "EVENTINDEX_STAGING", "EVENTINDEX_WORK",
            "EVENTINDEX_STOMP_URL", "EVENTINDEX_CATALOG", "EVENTINDEX_PHOENIX_URL"} <= names
    unknown = sorted(n for n in names if f'"{n}"' not in read)
    assert unknown == [], f"set by docker-compose.yaml but never read by include/eventindex/settings.py: {unknown}"


def test_the_stores_of_the_airflow_services_are_the_site_services(services):
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["EVENTINDEX_METADATA_URL"].endswith("@postgres:5432/eventindex")
    for name in ("EVENTINDEX_STAGING", "EVENTINDEX_WORK", "EVENTINDEX_PICKS"):
        assert env[name].startswith("s3://eventindex/") and "endpoint_override=seaweedfs:8333" in env[name]
    assert env["EVENTINDEX_STOMP_URL"] == "stomp://activemq:61613/queue/eventindex.producer"
    for name in project_image_services(services):
        assert services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


# --- the Dockerfile ------------------------------------------------------------------------------------------------

def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(m.group(1).upper(), m.group(2)) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)
            if not m.group(0).lstrip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out: a pattern matches it or a parent (our file has no ! exceptions)."""
    assert not any(p.startswith("!") for p in patterns), "teach _ignored the ! exceptions of .dockerignore"
    parts = Path(path).parts
    return any(fnmatch("/".join(parts[:i]), p.strip("/")) or (p.startswith("**/") and fnmatch(parts[i - 1], p[3:]))
               for p in patterns for i in range(1, len(parts) + 1))


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = []
    for op, args in _dockerfile_instructions():
        if op not in ("COPY", "ADD"):
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        assert not args.startswith("--from"), "no multi-stage copies expected"
        for source in words[:-1]:
            copied.append(source)
            assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"
            assert not _ignored(source.rstrip("/"), patterns), f".dockerignore keeps {source} out of the build"
    assert {"requirements.lock", "pyproject.toml", "dags/", "plugins/", "scripts/", "sql/"} <= set(copied)
    assert _ignored(".venv", patterns) and _ignored(".env", patterns) and _ignored("dags/__pycache__", patterns)


def test_the_dockerfile_installs_the_locked_dependencies_as_user_airflow():
    steps = _dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    assert any(op == "RUN" and "libkrb5-dev" in a and "gcc" in a for op, a in steps)
    locked = re.compile(r"uv pip install\b.*-r requirements\.lock")
    install = next(i for i, (op, a) in enumerate(steps) if op == "RUN" and locked.search(a))
    assert steps.index(("COPY", "requirements.lock ./")) < install
    assert [a for op, a in steps if op == "USER"][-1:] == ["airflow"] and ("WORKDIR", IMAGE_ROOT) in steps


def _subpackages() -> dict[str, Path]:
    """Every package and subpackage the project's folders hold (an ``__init__.py``), by its import name."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {}
    for package, folder in project["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found[".".join([package, *init.parent.relative_to(REPO / folder).parts])] = init
    return found


def test_pyproject_lists_every_subpackage_so_a_wheel_or_a_plain_install_has_them():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert set(_subpackages()) == listed


def test_a_wheel_built_from_the_project_holds_every_subpackage_and_the_migrations(tmp_path):
    import zipfile

    src = tmp_path / "src"  # what the Dockerfile copies, so that the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in ("include", "operators", "harness", "plugins"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("eventindex-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in _subpackages():
        assert f"{package.replace('.', '/')}/__init__.py" in names, f"the wheel lacks {package}"
    assert any(n.startswith("eventindex/migrations/versions/") and n.endswith(".py") for n in names)
    assert "eventindex/cli/main.py" in names and "eventindex_web/pages/" in " ".join(sorted(names))


# --- the entrypoint scripts that can run here ----------------------------------------------------------------------

def fake_program(path: Path) -> Path:
    """An executable that records its arguments in ``started`` next to it, for the exec of an entrypoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho \"$@\" > {path.parent / 'started'}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_the_activemq_entrypoint_opens_our_broker_config_to_the_container_network(tmp_path):
    home = tmp_path / "activemq"
    (home / "conf").mkdir(parents=True)
    fake = fake_program(tmp_path / "bin" / "activemq")
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "ACTIVEMQ_HOME": str(home)}
    argv = ["sh", str(REPO / "scripts/compose/activemq.sh"), str(REPO / "scripts/activemq/activemq.xml")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (fake.parent / "started").read_text().split() == ["console"]
    conf = (home / "conf" / "activemq.xml").read_text()
    assert "stomp://0.0.0.0:61613" in conf and "127.0.0.1" not in conf
    assert 'physicalName="Consumer.eventindex.VirtualTopic.rucio.events"' in conf


def test_the_seaweedfs_entrypoint_writes_the_one_identity_of_env_and_refuses_odd_keys(tmp_path):
    fake = fake_program(tmp_path / "entrypoint.sh")
    identities = tmp_path / "run" / "s3.json"
    env = {"PATH": "/usr/bin:/bin", "SEAWEEDFS_ENTRYPOINT": str(fake), "S3_IDENTITIES": str(identities),
           "AWS_ACCESS_KEY_ID": "ei0123abcd", "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24)}
    script = str(REPO / "scripts/compose/seaweedfs.sh")
    result = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(identities.read_text())["identities"][0]["credentials"] == [
        {"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]}]
    assert stat.S_IMODE(identities.stat().st_mode) == 0o600
    started = (tmp_path / "started").read_text().split()
    assert started[0] == "server" and "-s3" in started and f"-s3.config={identities}" in started
    bad = subprocess.run(["sh", script], env={**env, "AWS_SECRET_ACCESS_KEY": 'a"b'}, capture_output=True, text=True)
    assert bad.returncode == 1 and "may hold only" in bad.stderr
    missing = subprocess.run(["sh", script], env={k: v for k, v in env.items() if k != "AWS_ACCESS_KEY_ID"},
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "AWS_ACCESS_KEY_ID" in missing.stderr


def test_the_phoenix_profile_refuses_to_start_without_a_query_server(tmp_path):
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "EVENTINDEX_CATALOG": "phoenix", "HOME": str(tmp_path)}
    result = subprocess.run([str(REPO / "scripts/compose/phoenix.sh")], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and "EVENTINDEX_PHOENIX_URL is not set" in result.stderr
