"""One settings object for the embedded defaults and their overrides from the environment.

Everything the embedded mode keeps (world, staging area, metadata DB, catalogue) lives under one folder,
``$EVENTINDEX_HOME`` (default ``.eventindex/`` in the working directory), so a test or a user can point
the whole system somewhere else with one variable.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from .errors import BadInput, ConfigurationError

_ENVIRON_LOCK = threading.RLock()


@contextmanager
def scoped_environ(values: dict[str, str | None]):
    """Environment variables set (``None``: unset) for the length of a block, then as they were. For the clients
    that read their configuration only from the environment (panda-client, rucio-clients); serialized, so two
    configurations in one process (a triggerer following several servers) never mix."""
    with _ENVIRON_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        try:
            _set_environ(values)
            yield
        finally:
            _set_environ(saved)


def _set_environ(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass(frozen=True)
class StompTarget:
    host: str
    port: int
    destination: str
    user: str | None = None
    password: str | None = None


def parse_stomp_url(url: str) -> StompTarget:
    """``stomp://[user:password@]host:port/queue/name`` -> StompTarget."""
    parts = urlsplit(url)
    if parts.scheme != "stomp" or not parts.hostname:
        raise BadInput(f"not a STOMP URL (stomp://host:port/queue/NAME): {url!r}")
    destination = parts.path or "/queue/eventindex.producer"
    return StompTarget(parts.hostname, parts.port or 61613, destination, parts.username, parts.password)


def parse_groups(text: str | None) -> dict[str, tuple[str, ...]]:
    """``EVENTINDEX_GROUPS``: who belongs to which group scope, ``user:group1,group2;user2:group3`` ->
    ``{"user": ("group1", "group2"), "user2": ("group3",)}`` (a picking request may write to ``group.<name>`` only
    for a member). Names are Rucio accounts: a-z, 0-9, '_', '-'."""
    groups: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (e.strip() for e in (text or "").split(";"))):
        user, sep, names = entry.partition(":")
        names_ = tuple(n.strip() for n in names.split(",") if n.strip())
        if not sep or not _ACCOUNT.match(user.strip()) or not all(_ACCOUNT.match(n) for n in names_):
            raise ConfigurationError(f"EVENTINDEX_GROUPS: {entry!r} is not user:group1,group2 (names of a-z, 0-9, "
                                     "'_', '-'; entries separated by ';')")
        groups[user.strip()] = groups.get(user.strip(), ()) + names_
    return groups


_ACCOUNT = re.compile(r"^[a-z0-9_-]{1,25}$")


@dataclass(frozen=True)
class Settings:
    home: Path
    staging: str
    metadata_url: str
    stomp_url: str | None
    # the work area between the tasks of a run (folder or object-store URI); default $EVENTINDEX_HOME/work
    work: str = ""
    # event picking's outputs: the output RSE's storage (folder or object-store URI; default $EVENTINDEX_HOME/picks)
    # and the RSE's name in Rucio, under which the output files are registered
    picks: str = ""
    picks_rse: str = "LOCAL_DISK"
    # picking requests too big to travel inline in a run's params: uploaded here by the CLI, read by the plan task
    # (folder or object-store URI; default $EVENTINDEX_HOME/requests)
    requests: str = ""
    # skims (ROOT files of the events passing a selection) the skim DAG writes (folder or object-store URI;
    # default $EVENTINDEX_HOME/skims)
    skims: str = ""
    # group scopes of picking outputs: "user:group1,group2;user2:group3" (see parse_groups)
    groups_spec: str = ""
    # PanDA (the picking backend): the server's base URL as PANDA_URL, the site, OIDC authentication
    panda_url: str | None = None
    panda_site: str = "ANALY_LOCAL"
    panda_auth: str | None = None
    panda_vo: str | None = None
    panda_poll_seconds: float = 30.0
    panda_token_file: str | None = None
    panda_id_token: str | None = field(default=None, repr=False)
    # Airflow's REST API, for `eventindex pick`: AIRFLOW_URL wins over the URL `make up` wrote to $AIRFLOW_HOME/api_url
    airflow_url: str | None = None
    airflow_home: str = "airflow_home"
    airflow_user: str = "admin"
    airflow_password: str | None = field(default=None, repr=False)
    # the real Rucio client's configuration file (rucio-clients reads RUCIO_CONFIG itself; kept for messages)
    rucio_config: str | None = None
    # the event store: "embedded" (Parquet + DuckDB under home) or "phoenix" (HBase through a Phoenix query server,
    # with SPNEGO, BASIC or DIGEST authentication and the CA bundle of its certificate)
    catalog_backend: str = "embedded"
    phoenix_url: str | None = None
    phoenix_auth: str | None = None
    phoenix_user: str | None = None
    phoenix_password: str | None = field(default=None, repr=False)
    phoenix_ca: str | None = None
    # Rucio's DID events (Hermes -> the virtual topic VirtualTopic.rucio.events): our own queue of that topic, which
    # keeps what is published while no consumer runs; on the broker of stomp_url
    rucio_events_destination: str = "/queue/Consumer.eventindex.VirtualTopic.rucio.events"
    # notifications (eventindex.notify): a requester's address is <Airflow user>@mail_domain; the operators' address
    mail_domain: str | None = None
    operators_mail: str | None = None
    # how long a write waits for another process's lock on a SQLite metadata DB before it gives up (seconds); then
    # the caller gets a TransientError (the CLI exits 75, Airflow retries)
    db_busy_timeout: float = 60.0

    @property
    def world_dir(self) -> Path:
        return self.home / "world"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def work_area(self) -> str:
        return self.work or str(self.home / "work")

    @property
    def picks_area(self) -> str:
        """Where event picking stores its output files (the output RSE's storage), a folder or an object-store URI."""
        return self.picks or str(self.home / "picks")

    @property
    def requests_area(self) -> str:
        """Where big picking requests are uploaded (the only place ``events_uri`` may point to)."""
        return self.requests or str(self.home / "requests")

    @property
    def skims_area(self) -> str:
        """Where the skim DAG writes its ROOT files, a folder or an object-store URI."""
        return self.skims or str(self.home / "skims")

    def groups_of(self, user: str) -> tuple[str, ...]:
        """The group scopes ``user`` may write picking outputs to (``EVENTINDEX_GROUPS``)."""
        return parse_groups(self.groups_spec).get(user, ())

    @property
    def local_rucio_url(self) -> str:
        """The embedded data catalogue (Rucio's interface on SQLite), next to the metadata DB."""
        return f"sqlite:///{self.home / 'rucio.sqlite'}"

    @property
    def stomp(self) -> StompTarget | None:
        return parse_stomp_url(self.stomp_url) if self.stomp_url else None

    @property
    def rucio_events(self) -> StompTarget | None:
        target = self.stomp
        return replace(target, destination=self.rucio_events_destination) if target else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("EVENTINDEX_HOME") or ".eventindex").expanduser().resolve()
        return cls(
            home=home,
            staging=env.get("EVENTINDEX_STAGING") or str(home / "staging"),
            metadata_url=env.get("EVENTINDEX_METADATA_URL") or f"sqlite:///{home / 'metadata.sqlite'}",
            stomp_url=env.get("EVENTINDEX_STOMP_URL") or None,
            work=env.get("EVENTINDEX_WORK") or str(home / "work"),
            picks=env.get("EVENTINDEX_PICKS") or str(home / "picks"),
            picks_rse=env.get("EVENTINDEX_PICKS_RSE") or "LOCAL_DISK",
            requests=env.get("EVENTINDEX_REQUESTS") or str(home / "requests"),
            skims=env.get("EVENTINDEX_SKIMS") or str(home / "skims"),
            groups_spec=env.get("EVENTINDEX_GROUPS") or "",
            panda_url=env.get("EVENTINDEX_PANDA_URL") or env.get("PANDA_URL") or None,
            panda_site=env.get("EVENTINDEX_PANDA_SITE") or "ANALY_LOCAL",
            panda_auth=env.get("PANDA_AUTH") or None,
            panda_vo=env.get("PANDA_AUTH_VO") or None,
            panda_poll_seconds=float(env.get("EVENTINDEX_PANDA_POLL") or 30),
            panda_token_file=env.get("OIDC_AUTH_TOKEN_FILE") or None,
            panda_id_token=env.get("PANDA_AUTH_ID_TOKEN") or None,
            airflow_url=(env.get("AIRFLOW_URL") or "").rstrip("/") or None,
            airflow_home=env.get("AIRFLOW_HOME") or "airflow_home",
            airflow_user=env.get("EVENTINDEX_AIRFLOW_USER") or "admin",
            airflow_password=env.get("EVENTINDEX_AIRFLOW_PASSWORD") or None,
            rucio_config=env.get("RUCIO_CONFIG") or None,
            catalog_backend=env.get("EVENTINDEX_CATALOG") or "embedded",
            phoenix_url=env.get("EVENTINDEX_PHOENIX_URL") or None,
            phoenix_auth=env.get("EVENTINDEX_PHOENIX_AUTH") or None,
            phoenix_user=env.get("EVENTINDEX_PHOENIX_USER") or None,
            phoenix_password=env.get("EVENTINDEX_PHOENIX_PASSWORD") or None,
            phoenix_ca=env.get("EVENTINDEX_PHOENIX_CA") or None,
            rucio_events_destination=env.get("EVENTINDEX_RUCIO_EVENTS") or cls.rucio_events_destination,
            mail_domain=env.get("EVENTINDEX_MAIL_DOMAIN") or None,
            operators_mail=env.get("EVENTINDEX_OPERATORS_MAIL") or None,
            db_busy_timeout=float(env.get("EVENTINDEX_DB_BUSY_TIMEOUT") or 60),
        )
