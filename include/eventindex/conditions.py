"""Conditions: the trigger menus and run periods the index needs, copied from the conditions source into the
metadata DB by the pipeline rather than by hand.

ATLAS keeps both in COMA, the conditions metadata database: a menu per super master key (SMK), which names the L1
items and HLT chains at each bit of the masks, and the lettered periods a project's runs fall into. The simulated
world writes the same tables next to its Tier-0 and production-system tables (``eventindex.upstream``). ``sync``
copies what the metadata DB lacks: it is cheap when nothing changed (the source's SMKs are listed, only new menus
are read), safe to run at any time and as often as wanted.

A real xAOD file carries the menus its events were taken with in its own metadata (the ``MetaData`` tree's
``TriggerMenu``): ``menus_from_file`` reads them, and ``sync(..., files=[...])`` saves those too.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import metadata as md
from . import upstream, xaod_trigger
from .errors import BadInput, NotFound, TransientError
from .trigger import TriggerMenu



@dataclass
class SyncResult:
    """What one sync changed: the SMKs added, the periods added or changed (``project period``), and what the
    source holds."""

    menus_added: list[int] = field(default_factory=list)
    periods_added: list[str] = field(default_factory=list)
    periods_updated: list[str] = field(default_factory=list)
    source_menus: int = 0
    source_periods: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.menus_added or self.periods_added or self.periods_updated)

    def to_json(self) -> dict:
        return {**asdict(self), "changed": self.changed}


def world_source(world_dir: str | Path) -> str:
    """The conditions source of a simulated world (its upstream database)."""
    return f"sqlite:///{Path(world_dir) / 'upstream.sqlite'}"


def sync(upstream_url: str, target, *, files=()) -> SyncResult:
    """Copy the menus and run periods the metadata DB lacks from the conditions source at ``upstream_url`` (and the
    menus of the data ``files`` given) into ``target``: a catalogue (whose readers then see the new menus at once)
    or a metadata DB engine. A menu is never replaced (an SMK names one menu for good); a period whose runs changed
    (a period grows while it takes data) is updated."""
    _check_reachable(upstream_url)
    engine = target if isinstance(target, sa.Engine) else target.engine
    result = SyncResult()
    try:
        with engine.connect() as conn:
            known = {r[0] for r in conn.execute(sa.select(md.trigger_menus.c.smk))}
            held = {(r.project, r.period): r for r in conn.execute(sa.select(md.run_periods))}
        keys = upstream.menu_keys(upstream_url)
        menus = upstream.read_menus(upstream_url, sorted(set(keys) - known))
        periods = upstream.read_periods(upstream_url)
    except sa.exc.OperationalError as exc:  # a server down, a locked file: the next run tries again
        raise TransientError(f"the conditions source cannot be read now ({_where(upstream_url)}): "
                             f"{str(exc.orig or exc).splitlines()[0]}") from None
    for path in files:
        menus += [m for m in menus_from_file(path) if m.smk not in known and m.smk not in {x.smk for x in menus}]
    result.source_menus, result.source_periods = len(keys), len(periods)
    if menus:
        if isinstance(target, sa.Engine):
            with engine.begin() as conn:
                md.save_menus(conn, menus)
        else:
            target.save_menus(menus)
        result.menus_added = sorted(m.smk for m in menus)
    _save_periods(engine, periods, held, result)
    return result


def _save_periods(engine: sa.Engine, periods: list[dict], held: dict, result: SyncResult) -> None:
    t = md.run_periods
    with engine.begin() as conn:
        for p in periods:
            row = {"project": p["project"], "period": p["period"], "first_run": int(p["first_run"]),
                   "last_run": int(p["last_run"]), "description": p.get("description")}
            old = held.get((row["project"], row["period"]))
            label = f"{row['project']} {row['period']}"
            if old is None:
                conn.execute(t.insert().values(**row, updated=md.now()))
                result.periods_added.append(label)
            elif (old.first_run, old.last_run, old.description) != (row["first_run"], row["last_run"],
                                                                    row["description"]):
                conn.execute(t.update().where((t.c.project == row["project"]) & (t.c.period == row["period"]))
                             .values(**row, updated=md.now()))
                result.periods_updated.append(label)


def periods(target, project: str | None = None) -> list[dict]:
    """The run periods the metadata DB holds (of ``project``), in run order."""
    engine = target if isinstance(target, sa.Engine) else target.engine
    query = sa.select(md.run_periods).order_by(md.run_periods.c.project, md.run_periods.c.first_run)
    if project:
        query = query.where(md.run_periods.c.project == project)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _where(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _check_reachable(url: str) -> None:
    """A SQLite source must exist: connecting would create an empty one (a world not simulated yet)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise BadInput(f"not a database URL for the conditions source: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not os.path.exists(parsed.database):
        raise NotFound(f"no conditions source at {parsed.database} (simulate a world first: `eventindex simulate`, "
                       "or point the eventindex_conditions connection at the conditions DB)")


# --- menus in a data file's own metadata -----------------------------------------------------------------------


def menus_from_file(path: str | Path) -> list[TriggerMenu]:
    """The trigger menus a real ATLAS xAOD file keeps in its ``MetaData`` (Run 2 ``xAOD::TriggerMenu``, Run 3
    ``TriggerMenuJson``; see ``eventindex.xaod_trigger``); ``[]`` for a file without them (ours)."""
    import uproot

    try:
        with uproot.open(path) as handle:
            return xaod_trigger.read_menus(handle, str(path))
    except BadInput:
        raise
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
