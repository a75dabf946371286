"""Distributed data management: what Rucio knows of datasets and files, behind one small interface.

``LocalRucio`` is the embedded default (a SQLite catalogue under ``$EVENTINDEX_HOME``) with the same methods and
return shapes as the calls the pipeline makes on the real ``rucio-clients`` (``RealRucio``): file lists with GUID
and event counts, dataset metadata (open/closed), datasets by GUID, replicas with file:// PFNs (object-store URIs
for picking's outputs). The pipeline therefore runs the same code against both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa

from .errors import DDMError, DIDNotFound
from .guid import normalize_guid
from .naming import parse
from .settings import scoped_environ


class DataCatalogue(Protocol):
    def list_files(self, scope: str, name: str) -> list[dict]: ...
    def get_metadata(self, scope: str, name: str) -> dict: ...
    def get_dataset_by_guid(self, guid: str) -> list[dict]: ...
    def list_replicas(self, dids: list[dict]) -> list[dict]: ...
    def list_dataset_replicas(self, scope: str, name: str) -> list[dict]: ...
    def register_dataset(self, scope: str, name: str, files: list[dict], rse: str, close: bool = True) -> None: ...


def guid_key(guid: str) -> str:
    return normalize_guid(guid)


_meta = sa.MetaData()
_datasets = sa.Table(
    "ddm_datasets", _meta,
    sa.Column("scope", sa.String(64), primary_key=True), sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("is_open", sa.Boolean, nullable=False), sa.Column("meta", sa.Text, nullable=False, default="{}"),
)
_files = sa.Table(
    "ddm_files", _meta,
    sa.Column("scope", sa.String(64), primary_key=True), sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("guid", sa.String(36), nullable=False, index=True), sa.Column("events", sa.BigInteger),
    sa.Column("bytes", sa.BigInteger), sa.Column("adler32", sa.String(8)),
)
_content = sa.Table(
    "ddm_content", _meta,
    sa.Column("ds_scope", sa.String(64), primary_key=True), sa.Column("ds_name", sa.String(255), primary_key=True),
    sa.Column("scope", sa.String(64), primary_key=True), sa.Column("name", sa.String(255), primary_key=True),
)
_replicas = sa.Table(
    "ddm_replicas", _meta,
    sa.Column("scope", sa.String(64), primary_key=True), sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("rse", sa.String(64), primary_key=True), sa.Column("pfn", sa.Text, nullable=False),
)


class LocalRucio:
    """The embedded data catalogue: Rucio's answers for a world that lives on one machine.

    Opening it writes nothing (reads never write): a catalogue whose file does not exist yet is an empty one (no
    data identifier is known), and its tables are made by the first write (a registration), as a real Rucio's
    exist before anyone asks it anything."""

    def __init__(self, url: str):
        from .dbopen import open_engine
        from .settings import Settings

        self.url, self._tables_made = url, False
        self.engine = open_engine(url, what="the local data catalogue",
                                  busy_timeout=Settings.from_env().db_busy_timeout)

    def _begin(self):
        """A write transaction, the tables made first (once per instance; cheap when they exist)."""
        if not self._tables_made:
            from .dbopen import open_engine

            maker = open_engine(self.url, what="the local data catalogue", create=True)
            try:
                _meta.create_all(maker)
            finally:
                maker.dispose()
            self._tables_made = True
        return self.engine.begin()

    def register_dataset(self, scope: str, name: str, files: list[dict], rse: str, close: bool = True) -> None:
        """files: ``{"scope", "name", "bytes", "adler32", "meta": {"guid", "events"}, "pfn"}`` (Rucio's shape)."""
        with self._begin() as conn:
            conn.execute(_datasets.delete().where((_datasets.c.scope == scope) & (_datasets.c.name == name)))
            conn.execute(_content.delete().where((_content.c.ds_scope == scope) & (_content.c.ds_name == name)))
            conn.execute(_datasets.insert().values(scope=scope, name=name, is_open=not close, meta="{}"))
            for f in files:
                key = (_files.c.scope == f["scope"]) & (_files.c.name == f["name"])
                conn.execute(_files.delete().where(key))
                conn.execute(_files.insert().values(scope=f["scope"], name=f["name"],
                                                    guid=guid_key(f["meta"]["guid"]), events=f["meta"].get("events"),
                                                    bytes=f.get("bytes"), adler32=f.get("adler32")))
                conn.execute(_content.insert().values(ds_scope=scope, ds_name=name, scope=f["scope"], name=f["name"]))
                if f.get("pfn"):
                    conn.execute(_replicas.delete().where((_replicas.c.scope == f["scope"])
                                                          & (_replicas.c.name == f["name"]) & (_replicas.c.rse == rse)))
                    conn.execute(_replicas.insert().values(scope=f["scope"], name=f["name"], rse=rse, pfn=f["pfn"]))

    def set_open(self, scope: str, name: str, is_open: bool) -> None:
        with self._begin() as conn:
            conn.execute(_datasets.update().where((_datasets.c.scope == scope) & (_datasets.c.name == name))
                         .values(is_open=is_open))

    def remove_file(self, scope: str, name: str, file_name: str) -> None:
        """Take a file out of a dataset (tests use it to stage inconsistencies)."""
        with self._begin() as conn:
            conn.execute(_content.delete().where((_content.c.ds_scope == scope) & (_content.c.ds_name == name)
                                                 & (_content.c.name == file_name)))

    def list_files(self, scope: str, name: str) -> list[dict]:
        self._dataset(scope, name)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_files).join(_content, (_content.c.scope == _files.c.scope)
                                                       & (_content.c.name == _files.c.name))
                                .where((_content.c.ds_scope == scope) & (_content.c.ds_name == name))).all()
        # Rucio's list_files spells GUIDs upper-case without dashes
        return [{"scope": r.scope, "name": r.name, "guid": r.guid.replace("-", ""), "events": r.events,
                 "bytes": r.bytes, "adler32": r.adler32} for r in rows]

    def get_metadata(self, scope: str, name: str) -> dict:
        row = self._dataset(scope, name)
        files = self.list_files(scope, name)
        closed = not row.is_open
        return {"scope": scope, "name": name, "did_type": "DATASET", "is_open": row.is_open,
                "length": len(files) if closed else None,
                "events": sum(f["events"] or 0 for f in files) if closed else None,
                "bytes": sum(f["bytes"] or 0 for f in files) if closed else None, **json.loads(row.meta)}

    def get_dataset_by_guid(self, guid: str) -> list[dict]:
        if self._empty():
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_content.c.ds_scope, _content.c.ds_name)
                                .join(_files, (_content.c.scope == _files.c.scope) & (_content.c.name == _files.c.name))
                                .where(_files.c.guid == guid_key(guid))).all()
        return [{"scope": s, "name": n} for s, n in rows]

    def list_replicas(self, dids: list[dict]) -> list[dict]:
        out = []
        if self._empty():
            return out
        with self.engine.connect() as conn:
            for did in dids:  # one indexed query per file: as cheap here as one bulk call
                rows = conn.execute(sa.select(_replicas).where((_replicas.c.scope == did["scope"])
                                                               & (_replicas.c.name == did["name"]))).all()
                if rows:
                    out.append({"scope": did["scope"], "name": did["name"],
                                "rses": {r.rse: [r.pfn] for r in rows}, "pfns": {r.pfn: {"rse": r.rse} for r in rows}})
        return out

    def add_replicas(self, rse: str, files: list[dict]) -> None:
        """More replicas of known files at ``rse``: ``{"scope", "name", "pfn"}`` (as rucio-clients' add_replicas)."""
        with self._begin() as conn:
            for f in files:
                conn.execute(_replicas.delete().where((_replicas.c.scope == f["scope"]) & (_replicas.c.name == f["name"])
                                                      & (_replicas.c.rse == rse)))
                conn.execute(_replicas.insert().values(scope=f["scope"], name=f["name"], rse=rse, pfn=f["pfn"]))

    def list_dataset_replicas(self, scope: str, name: str) -> list[dict]:
        """Per RSE: how many of the dataset's files it holds (``available_length`` of ``length``); complete when
        equal (Rucio's ``list_dataset_replicas(deep=True)``)."""
        files = self.list_files(scope, name)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_replicas.c.rse, sa.func.count()).join(
                _content, (_content.c.scope == _replicas.c.scope) & (_content.c.name == _replicas.c.name))
                .where((_content.c.ds_scope == scope) & (_content.c.ds_name == name)).group_by(_replicas.c.rse)).all()
        return [{"scope": scope, "name": name, "rse": rse, "length": len(files), "available_length": n,
                 "state": "AVAILABLE" if n == len(files) else "UNAVAILABLE"} for rse, n in rows]

    def _empty(self) -> bool:
        """Nothing was ever registered: the file or its tables do not exist (answers are "not found", not errors)."""
        from .dbopen import Missing

        if self._tables_made:
            return False
        try:
            with self.engine.connect() as conn:
                self._tables_made = sa.inspect(conn).has_table(_content.name)
        except Missing:
            return True
        return not self._tables_made

    def _dataset(self, scope: str, name: str):
        row = None
        if not self._empty():
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(_datasets).where((_datasets.c.scope == scope)
                                                              & (_datasets.c.name == name))).first()
        if row is None:
            raise DIDNotFound(f"Data identifier not found: {scope}:{name} is not known to the data catalogue")
        return row


class RealRucio:
    """The same interface over rucio-clients (configured by RUCIO_CONFIG or ``rucio.cfg``)."""

    def __init__(self, config: str | None = None, **client_args):
        """``config``: a rucio.cfg for what the arguments do not say (CA, token cache, ...); rucio-clients reads its
        path from the environment only, so it is set there while the client is made, and restored after."""
        from rucio.client import Client

        with scoped_environ({"RUCIO_CONFIG": config} if config else {}):
            self.client = Client(**client_args)

    def _call(self, fn, *args, **kwargs):
        from rucio.common import exception as rex

        try:
            return fn(*args, **kwargs)
        except (rex.DataIdentifierNotFound, rex.ScopeNotFound) as exc:
            raise DIDNotFound(f"Data identifier not found: {exc}") from None
        except (rex.RucioException, OSError) as exc:
            raise DDMError(f"Rucio: {type(exc).__name__}: {exc}") from exc

    def list_files(self, scope: str, name: str) -> list[dict]:
        return list(self._call(lambda: list(self.client.list_files(scope, name))))

    def get_metadata(self, scope: str, name: str) -> dict:
        return self._call(self.client.get_metadata, scope, name)

    def get_dataset_by_guid(self, guid: str) -> list[dict]:
        return self._call(lambda: list(self.client.get_dataset_by_guid(guid)))

    def list_replicas(self, dids: list[dict]) -> list[dict]:
        return self._call(lambda: list(self.client.list_replicas(dids, schemes=["file"])))

    def list_dataset_replicas(self, scope: str, name: str) -> list[dict]:
        return self._call(lambda: list(self.client.list_dataset_replicas(scope, name, deep=True)))

    def add_replicas(self, rse: str, files: list[dict]) -> None:
        self._call(self.client.add_replicas, rse, files)

    def ensure_rse(self, rse: str, scopes: Iterable[str], pfns: Iterable[str] = ()) -> None:
        """A non-deterministic file:// RSE (the PFNs are the world's paths) and the scopes, created if missing.

        Rucio keeps a non-deterministic replica's path only, checked against a protocol of the PFN's scheme and host:
        object-store PFNs (``s3://bucket/key?endpoint_override=...``, picking's outputs) add a protocol for their
        bucket. Rucio keeps bucket and key, not the query (the endpoint): it lists such a replica as s3://bucket/key."""
        from rucio.common import exception as rex

        domains = {"lan": {"read": 1, "write": 1, "delete": 1}, "wan": {"read": 1, "write": 1, "delete": 1}}
        try:
            self.client.add_rse(rse, deterministic=False)
            self.client.add_rse_attribute(rse, "type", "TEST")
            self.client.add_protocol(rse, {"scheme": "file", "hostname": "", "port": 0, "prefix": "/",
                                           "impl": "rucio.rse.protocols.posix.Default", "domains": domains})
        except rex.Duplicate:
            pass
        for scheme, host in sorted({(u.scheme, u.hostname or "") for u in map(urlsplit, pfns)} - {("file", "")}):
            try:
                self._call(self.client.add_protocol, rse, {"scheme": scheme, "hostname": host, "port": 0,
                                                           "prefix": "/", "impl": "rucio.rse.protocols.gfal.NoRename",
                                                           "domains": domains})
            except DDMError as exc:
                if not isinstance(exc.__cause__, rex.Duplicate):
                    raise
        account = self.client.whoami()["account"]
        for scope in scopes:
            try:
                self.client.add_scope(account, scope)
            except rex.Duplicate:
                pass

    def register_dataset(self, scope: str, name: str, files: list[dict], rse: str, close: bool = True) -> None:
        from rucio.common import exception as rex

        try:
            self.client.add_dataset(scope, name)
        except rex.DataIdentifierAlreadyExists:
            if not self.get_metadata(scope, name).get("is_open"):
                return  # registered and closed before: a closed dataset never changes
        for chunk in iter_chunks(list(files), 100):  # bulk: one call per 100 files
            try:
                self._call(self.client.add_files_to_dataset, scope, name, chunk, rse=rse)
            except DDMError as exc:  # attached by an earlier, interrupted try: nothing to do
                if not isinstance(exc.__cause__, (rex.FileAlreadyExists, rex.Duplicate, rex.DataIdentifierAlreadyExists)):
                    raise
        if close:
            self._call(self.client.close, scope, name)


def register_world(ddm, world: dict, world_dir: str | Path, rse: str = "LOCAL_DISK",
                   only: Iterable[str] | None = None) -> int:
    """Register the simulated world's datasets and file replicas (file:// PFNs) in the data catalogue."""
    wanted = set(only) if only is not None else None
    if hasattr(ddm, "ensure_rse"):
        ddm.ensure_rse(rse, sorted({d["scope"] for d in world["datasets"]}))
    n = 0
    for d in world["datasets"]:
        if wanted is not None and d["name"] not in wanted:
            continue
        files = [{"scope": d["scope"], "name": f["lfn"], "bytes": f.get("bytes"), "adler32": f.get("adler32"),
                  "meta": {"guid": f["guid"], "events": f["nevents"]},
                  "pfn": "file://" + str(Path(world_dir).resolve() / f["path"])} for f in d["files"]]
        ddm.register_dataset(d["scope"], d["name"], files, rse)
        n += 1
    return n


def split_did(dataset: str) -> tuple[str, str]:
    d = parse(dataset)
    return d.scope or d.project, d.name


def files_by_guid(files: Iterable[dict]) -> dict[str, dict]:
    return {guid_key(f["guid"]): f for f in files}


def iter_chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
