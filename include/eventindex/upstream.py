"""What the upstream systems hold: the Tier-0 dataset table (READY/DONE flags) and the production system's
task table (read incrementally by ``last_update``). SQLAlchemy Core, so the same code reads SQLite (the
simulated world) or the real databases by URL.
"""

from __future__ import annotations

import json
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
                         [{**t, "output_datasets": json.dumps(t["output_datasets"])} for t in tasks])
    engine.dispose()


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def ready_datasets(url: str, limit: int = 50) -> list[str]:
    """Tier-0 datasets flagged READY, oldest first."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tier0_datasets.c.name).where(tier0_datasets.c.status == "READY")
                            .order_by(tier0_datasets.c.created, tier0_datasets.c.name).limit(limit)).all()
    engine.dispose()
    return [r[0] for r in rows]


def mark_done(url: str, names: list[str]) -> int:
    """READY -> DONE for these datasets (only those still READY); returns how many flipped."""
    if not names:
        return 0
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        n = conn.execute(tier0_datasets.update().where(tier0_datasets.c.name.in_(names))
                         .where(tier0_datasets.c.status == "READY")
                         .values(status="DONE", updated=datetime.now(timezone.utc).replace(tzinfo=None))).rowcount
    engine.dispose()
    return n


def finished_tasks(url: str, start: datetime, end: datetime, bite: int = 20, big_bite: int = 200,
                   backlog_threshold: int = 1000) -> list[dict]:
    """Production tasks that finished in [start, end), read incrementally by (last_update, task_id) in bites,
    as the ATLAS Supervisor reads the production system: bites of ``bite`` tasks, ``big_bite`` once the backlog
    passes ``backlog_threshold``."""
    engine = sa.create_engine(url)
    t = prodsys_tasks.c
    out: list[dict] = []
    with engine.connect() as conn:
        window = (t.last_update >= start) & (t.last_update < end) & t.status.in_(["done", "finished"])
        backlog = conn.execute(sa.select(sa.func.count()).where(window)).scalar()
        size = big_bite if backlog > backlog_threshold else bite
        after = None
        while True:
            q = sa.select(prodsys_tasks).where(window).order_by(t.last_update, t.task_id).limit(size)
            if after is not None:
                q = q.where(sa.tuple_(t.last_update, t.task_id) > sa.tuple_(*after))
            rows = conn.execute(q).all()
            out += [{**r._mapping, "output_datasets": json.loads(r.output_datasets)} for r in rows]
            if len(rows) < size:
                break
            after = (rows[-1].last_update, rows[-1].task_id)
    engine.dispose()
    return out
