"""One settings object for the embedded defaults and their overrides from the environment.

Everything the embedded mode keeps (world, staging area, metadata DB, catalogue) lives under one folder,
``$EVENTINDEX_HOME`` (default ``.eventindex/`` in the working directory), so a test or a user can point
the whole system somewhere else with one variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


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
        raise ValueError(f"not a STOMP URL (stomp://host:port/queue/NAME): {url!r}")
    destination = parts.path or "/queue/eventindex.producer"
    return StompTarget(parts.hostname, parts.port or 61613, destination, parts.username, parts.password)


@dataclass(frozen=True)
class Settings:
    home: Path
    staging: str
    metadata_url: str
    stomp_url: str | None

    @property
    def world_dir(self) -> Path:
        return self.home / "world"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def stomp(self) -> StompTarget | None:
        return parse_stomp_url(self.stomp_url) if self.stomp_url else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("EVENTINDEX_HOME") or ".eventindex").expanduser().resolve()
        return cls(
            home=home,
            staging=env.get("EVENTINDEX_STAGING") or str(home / "staging"),
            metadata_url=env.get("EVENTINDEX_METADATA_URL") or f"sqlite:///{home / 'metadata.sqlite'}",
            stomp_url=env.get("EVENTINDEX_STOMP_URL") or None,
        )
