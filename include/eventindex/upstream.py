"""What the upstream systems hold: the Tier-0 dataset table (READY/DONE flags) and the production system's
task table (read incrementally by ``last_update``). SQLAlchemy Core, so the same code reads SQLite (the
simulated world) or the real databases by URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

metadata = sa.MetaData()

tier0_datasets = sa.Table(
    "tier0_datasets", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("run_number", sa.Integer, nullable=False),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("datatype", sa.String(32), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # READY -> DONE once indexed
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
)

prodsys_tasks = sa.Table(
    "prodsys_tasks", metadata,
    sa.Column("task_id", sa.BigInteger, primary_key=True),
    sa.Column("taskname", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output_datasets", sa.Text, nullable=False),  # JSON list
    sa.Column("last_update", sa.DateTime, nullable=False, index=True),
    sa.Column("input_datasets", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("cross_section_pb", sa.Float),  # event generation (EVNT) tasks: AMI's physics parameters
    sa.Column("filter_efficiency", sa.Float),
)


def create(url: str, tier0: list[dict], tasks: list[dict]) -> None:
    """(Re)create both tables at ``url`` with the given rows."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
        if tier0:
            conn.execute(tier0_datasets.insert(), tier0)
        if tasks:
            conn.execute(prodsys_tasks.insert(),
                         [{"cross_section_pb": None, "filter_efficiency": None, **t,
                           "output_datasets": json.dumps(t["output_datasets"]),
                           "input_datasets": json.dumps(t.get("input_datasets", []))} for t in tasks])
    engine.dispose()


def _open(url: str) -> sa.Engine:
    """An engine for reading (or flipping flags in) an upstream DB: a missing SQLite file is an error, never a new
    empty DB (reads never write); a locked or unreachable DB is transient (:mod:`eventindex.dbopen`)."""
    from .dbopen import open_engine
    from .errors import NotFound

    return open_engine(url, what="the upstream DB", missing=lambda: NotFound(
        f"no upstream DB at {sa.engine.make_url(url).database} (simulate a world first: `eventindex simulate`, or "
        "point the connection at the Tier-0 / production system DB)"))


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def ready_datasets(url: str, limit: int = 50) -> list[str]:
    """Tier-0 datasets flagged READY, oldest first."""
    engine = _open(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tier0_datasets.c.name).where(tier0_datasets.c.status == "READY")
                            .order_by(tier0_datasets.c.created, tier0_datasets.c.name).limit(limit)).all()
    engine.dispose()
    return [r[0] for r in rows]


def mark_done(url: str, names: list[str]) -> int:
    """READY -> DONE for these datasets (only those still READY); returns how many flipped."""
    if not names:
        return 0
    engine = _open(url)
    with engine.begin() as conn:
        n = conn.execute(tier0_datasets.update().where(tier0_datasets.c.name.in_(names))
                         .where(tier0_datasets.c.status == "READY")
                         .values(status="DONE", updated=datetime.now(timezone.utc).replace(tzinfo=None))).rowcount
    engine.dispose()
    return n


@dataclass
class FinishedBatch:
    """What one read of the production system returned: the tasks, where the read stopped (``cursor``:
    ``(last_update, task_id)`` of the last task read) and whether the window holds more than was read."""

    tasks: list[dict]
    cursor: tuple[datetime, int] | None
    more: bool


def read_finished(url: str, start: datetime | None, end: datetime, after: tuple[datetime, int] | None = None,
                  max_datasets: int | None = None, bite: int = 20, big_bite: int = 200,
                  backlog_threshold: int = 1000) -> FinishedBatch:
    """Production tasks that finished in [start, end) after the stop point ``after``, read incrementally by
    (last_update, task_id) in bites as the ATLAS Supervisor reads the production system: bites of ``bite`` tasks,
    ``big_bite`` once the backlog passes ``backlog_threshold``. Stops at whole tasks once ``max_datasets`` output
    datasets are collected, with ``more`` set, so that a caller can go on from the cursor."""
    engine = _open(url)
    t = prodsys_tasks.c
    out: list[dict] = []
    ndatasets, more = 0, False
    with engine.connect() as conn:
        window = (t.last_update < end) & t.status.in_(["done", "finished"])
        if start is not None:
            window &= t.last_update >= start
        if after is not None:
            window &= sa.tuple_(t.last_update, t.task_id) > sa.tuple_(*after)
        backlog = conn.execute(sa.select(sa.func.count()).where(window)).scalar()
        size = big_bite if backlog > backlog_threshold else bite
        cursor = after
        while not more:
            q = sa.select(prodsys_tasks).where(window).order_by(t.last_update, t.task_id).limit(size)
            if cursor is not None:
                q = q.where(sa.tuple_(t.last_update, t.task_id) > sa.tuple_(*cursor))
            rows = conn.execute(q).all()
            for r in rows:
                outputs = json.loads(r.output_datasets)
                if max_datasets is not None and out and ndatasets + len(outputs) > max_datasets:
                    more = True
                    break
                out.append({**r._mapping, "output_datasets": outputs,
                            "input_datasets": json.loads(r.input_datasets or "[]")})
                ndatasets += len(outputs)
                cursor = (r.last_update, r.task_id)
            if len(rows) < size:
                break
    engine.dispose()
    return FinishedBatch(out, cursor, more)


def finished_tasks(url: str, start: datetime, end: datetime, bite: int = 20, big_bite: int = 200,
                   backlog_threshold: int = 1000) -> list[dict]:
    """Every production task that finished in [start, end) (see ``read_finished``)."""
    return read_finished(url, start, end, bite=bite, big_bite=big_bite, backlog_threshold=backlog_threshold).tasks


coma_menus = sa.Table(
    "coma_menus", metadata,
    sa.Column("smk", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON of eventindex.trigger.TriggerMenu (items, chains, seeds)
    sa.Column("created", sa.DateTime, nullable=False),
)

coma_periods = sa.Table(
    "coma_periods", metadata,
    sa.Column("project", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),  # "B", "C", ... (A is commissioning)
    sa.Column("first_run", sa.BigInteger, nullable=False),
    sa.Column("last_run", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text),
)


def tasks_updated(url: str, after: tuple[datetime, int] | None = None, limit: int = 10_000) -> list[dict]:
    """Tasks of any status updated after the stop point ``after`` ((last_update, task_id)), oldest first: what AMI
    reads to keep its view of the production system current."""
    t = prodsys_tasks.c
    q = sa.select(prodsys_tasks).order_by(t.last_update, t.task_id).limit(limit)
    if after is not None:
        q = q.where(sa.tuple_(t.last_update, t.task_id) > sa.tuple_(*after))
    return [{**r._mapping, "output_datasets": json.loads(r.output_datasets),
             "input_datasets": json.loads(r.input_datasets or "[]")} for r in _read(url, q)]


def tier0_flags(url: str) -> dict[str, tuple[str, datetime]]:
    """Every Tier-0 dataset's flag (READY or DONE) and when it last changed."""
    t = tier0_datasets.c
    return {r.name: (r.status, r.updated) for r in _read(url, sa.select(t.name, t.status, t.updated))}


def write_conditions(url: str, menus=(), periods=()) -> None:
    """Add trigger menus (``TriggerMenu``) and run periods (dicts of the ``coma_periods`` columns) to the conditions
    source at ``url``, creating its tables if needed. A menu whose SMK is there is left alone (a menu never changes
    once it has a key); a period already there is replaced (a period grows while it takes data)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[coma_menus, coma_periods])
        known = {r[0] for r in conn.execute(sa.select(coma_menus.c.smk))}
        rows = [{"smk": m.smk, "name": m.name, "content": json.dumps(m.to_json()),
                 "created": datetime.now(timezone.utc).replace(tzinfo=None)} for m in menus if m.smk not in known]
        if rows:
            conn.execute(coma_menus.insert(), rows)
        for p in periods:
            key = (coma_periods.c.project == p["project"]) & (coma_periods.c.period == p["period"])
            conn.execute(coma_periods.delete().where(key))
            conn.execute(coma_periods.insert().values(**p))
    engine.dispose()


def _read(url: str, query) -> list:
    engine = _open(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(query.get_final_froms()[0].name):
                return []  # a source that has no conditions yet (an upstream DB of an older world)
            return conn.execute(query).all()
    finally:
        engine.dispose()


def menu_keys(url: str) -> list[int]:
    """The SMKs the conditions source holds (cheap: no menu content)."""
    return [r[0] for r in _read(url, sa.select(coma_menus.c.smk).order_by(coma_menus.c.smk))]


def read_menus(url: str, smks=None) -> list:
    """The trigger menus of the conditions source (only ``smks`` when given), as ``TriggerMenu``, by SMK."""
    from .trigger import TriggerMenu

    query = sa.select(coma_menus.c.content).order_by(coma_menus.c.smk)
    if smks is not None:
        smks = [int(s) for s in smks]
        if not smks:
            return []
        query = query.where(coma_menus.c.smk.in_(smks))
    return [TriggerMenu.from_json(json.loads(r[0])) for r in _read(url, query)]


def read_periods(url: str) -> list[dict]:
    """The run periods of the conditions source: project, period, first_run, last_run, description."""
    rows = _read(url, sa.select(coma_periods).order_by(coma_periods.c.project, coma_periods.c.first_run))
    return [dict(r._mapping) for r in rows]
