"""Garbage of the embedded store and of the metadata DB: what ``gc`` removes, what it must never remove (a live
version, a version replaced less than its min age ago, a file a process holds open), ``eventindex gc`` as an
operator runs it, and the retention of Rucio CLOSE records nobody announced."""

import json
import os
import time
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from eventindex import announcements, maintenance, progress
from eventindex import metadata as md
from eventindex.ami import derived
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.cli.main import main
from eventindex.errors import BadInput
from eventindex.rucio_events import handle_rucio_event, parse_rucio_event
from tests.conftest import dataset

pytestmark = pytest.mark.integration
HOUR = 3600


@pytest.fixture
def catalog(metadata_home):
    """The catalogue ``eventindex`` opens under EVENTINDEX_HOME, its DB made as `eventindex db upgrade` makes it."""
    from eventindex.settings import Settings

    settings = Settings.from_env()
    return EmbeddedCatalog(settings.catalog_dir, settings.metadata_url)


@pytest.fixture
def aod(staged_world):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    return d["name"], pq.read_table(next((staging / d["name"]).glob("*.parquet")))


def _files(cat) -> dict[str, set[str]]:
    """load id -> the names of its files, as the folder holds them."""
    out = {}
    for p in (cat.root / "data").rglob("*"):
        if p.is_file():
            out.setdefault(p.name.partition(".")[0], set()).add(p.name)
    return out


def _age(paths, seconds: float) -> None:
    """Make files look ``seconds`` old (as if written that long ago)."""
    when = time.time() - seconds
    for p in paths:
        os.utime(p, (when, when))


def _age_replacements(cat, seconds: float) -> None:
    """Make every replacement in the load history look ``seconds`` old."""
    with cat.engine.begin() as conn:
        conn.execute(md.load_history.update().values(at=md.now() - timedelta(seconds=seconds)))


def _orphan(cat, name: str, load_id: str, *suffixes: str) -> list:
    folder = cat.root / "data" / f"dataset={name}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in suffixes:
        (folder / f"{load_id}{s}").write_bytes(b"x" * 1000)
        paths.append(folder / f"{load_id}{s}")
    return paths


def test_a_replaced_version_stays_its_min_age_after_the_replacement_however_old_its_files(catalog, aod):
    name, table = aod
    first = catalog.load(name, table).load_id
    _age((catalog.root / "data").rglob(f"{first}*"), 10 * HOUR)  # written long ago ...
    second = catalog.load(name, table.slice(10)).load_id  # ... replaced now: a reader may have just resolved it
    assert set(_files(catalog)) == {first, second}  # the load's own cleanup kept it too
    kept = catalog.gc(min_age_s=HOUR)
    assert kept.removed == [] and {k["reason"] for k in kept.kept} == {f"replaced, younger than {HOUR} s"}
    _age_replacements(catalog, 2 * HOUR)
    done = catalog.gc(min_age_s=HOUR)
    assert sorted(os.path.basename(r["path"]) for r in done.removed) == sorted(
        f"{first}{s}" for s in (".parquet", ".keys.arrow", ".triggers.arrow"))
    assert {r["reason"] for r in done.removed} == {"replaced"}
    assert set(_files(catalog)) == {second}
    assert catalog.count(make_selection(dataset=name)) == table.num_rows - 10


def test_live_versions_of_every_status_are_never_removed(catalog, aod, staged_world):
    name, table = aod
    world, _, staging = staged_world
    raw = dataset(world, "RAW")["name"]
    catalog.load(name, table)
    catalog.load(raw, pq.read_table(next((staging / raw).glob("*.parquet"))))
    catalog.mark_obsolete(name)  # hidden, but restorable and readable with include_obsolete
    catalog.mark_erased(raw)
    before = _files(catalog)
    _age((catalog.root / "data").rglob("*"), 100 * HOUR)
    _age_replacements(catalog, 100 * HOUR)
    assert catalog.gc(min_age_s=0).removed == []
    assert _files(catalog) == before
    catalog.restore(name)
    assert catalog.count(make_selection(dataset=name)) == table.num_rows


def test_a_load_whose_writer_holds_a_file_open_keeps_all_its_files(catalog, aod):
    name, table = aod
    live = catalog.load(name, table).load_id
    # a big load still writing its Parquet file, its key file done hours ago
    keys, part = _orphan(catalog, name, "18f0000000000000-deadbeef", ".keys.arrow", ".parquet.part")
    _age([keys, part], 10 * HOUR)
    with open(part, "ab"):  # its writer is alive (here: this process)
        kept = catalog.gc(min_age_s=0)
        assert kept.removed == []
        assert [k["reason"] for k in kept.kept] == ["orphan, its load still runs (a file is open)",
                                                    "partial, its load still runs (a file is open)"]
    done = catalog.gc(min_age_s=0)  # the writer is gone
    assert [(r["path"], r["reason"]) for r in done.removed] == [(str(keys), "orphan"), (str(part), "partial")]
    assert set(_files(catalog)) == {live}


def test_a_load_goes_only_once_none_of_its_files_was_written_to_for_the_min_age(catalog, aod):
    name, table = aod
    catalog.load(name, table)
    keys, part = _orphan(catalog, name, "18f0000000000004-abcdef01", ".keys.arrow", ".parquet.part")
    _age([keys], 10 * HOUR)  # the Parquet file was written to just now
    assert catalog.gc(min_age_s=HOUR).removed == []
    _age([part], 2 * HOUR)
    assert len(catalog.gc(min_age_s=HOUR).removed) == 2


def test_a_replaced_version_a_reader_still_maps_is_kept_until_the_reader_lets_it_go(catalog, aod):
    name, table = aod
    first = catalog.load(name, table).load_id
    reader = EmbeddedCatalog(catalog.root, catalog.engine.url.render_as_string(hide_password=False))
    first_run = table.column("run_number")[0].as_py()
    assert reader.lookup(first_run, table.column("event_number")[0].as_py())  # maps the first version's key file
    catalog.load(name, table.slice(10))
    _age_replacements(catalog, 2 * HOUR)
    kept = catalog.gc(min_age_s=HOUR)
    assert [os.path.basename(k["path"]) for k in kept.kept] == [f"{first}.keys.arrow"]
    assert kept.kept[0]["reason"] == "replaced, open in a running process"
    assert reader.count(make_selection(dataset=name, runs=[first_run])) > 0  # its next query sees the new version
    assert [os.path.basename(r["path"]) for r in catalog.gc(min_age_s=HOUR).removed] == [f"{first}.keys.arrow"]


def test_young_garbage_waits_and_a_dry_run_removes_nothing(catalog, aod):
    name, table = aod
    live = catalog.load(name, table).load_id
    orphans = _orphan(catalog, name, "18f0000000000001-0badf00d", ".parquet", ".keys.arrow")
    stray = catalog.root / ".GENERATION.4f2a"  # a crash between writing GENERATION's temporary file and its rename
    stray.write_text("1 x\n")
    unknown = catalog.root / "data" / f"dataset={name}" / "notes.txt"  # not a name the store writes: not ours
    unknown.write_text("kept")
    assert catalog.gc().removed == []  # all written just now: a load in progress may still commit them
    _age([*orphans, stray], 2 * HOUR)
    dry = catalog.gc(dry_run=True)
    assert sorted(r["reason"] for r in dry.removed) == ["orphan", "orphan", "partial"]
    assert dry.bytes_freed == 2000 + stray.stat().st_size and all(p.exists() for p in [*orphans, stray])
    done = catalog.gc()
    assert done.to_json()["removed"] == dry.to_json()["removed"] and not any(p.exists() for p in [*orphans, stray])
    assert unknown.exists() and set(_files(catalog)) == {live, "notes"}


def test_eventindex_gc_prints_what_it_removed_and_the_bytes_freed(catalog, aod, capsys):
    name, table = aod
    catalog.load(name, table)
    orphans = _orphan(catalog, name, "18f0000000000002-facefeed", ".parquet", ".triggers.arrow.part")
    sizes = sum(p.stat().st_size for p in orphans)
    assert main(["gc", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would remove 0 files, 0 B" in text  # written just now: younger than the default hour
    assert main(["gc", "--min-age", "0s", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["bytes_freed"], dry["dry_run"], len(dry["removed"])) == (sizes, True, 2)
    assert all(p.exists() for p in orphans)
    assert main(["gc", "--min-age", "0"]) == 0
    text = capsys.readouterr().out
    assert f"removed {orphans[0]} (1.0 kB, orphan)" in text and "removed 2 files, 2.0 kB freed" in text
    assert not any(p.exists() for p in orphans)
    with pytest.raises(SystemExit) as refused:
        main(["gc", "--min-age=-1h"])
    assert refused.value.code == 2  # bad usage, nothing done
    assert "is not a duration" in capsys.readouterr().err


def test_the_phoenix_backend_has_no_files_to_collect():
    from eventindex.catalog.phoenix import PhoenixCatalog

    phoenix = PhoenixCatalog.__new__(PhoenixCatalog)  # no server here; collecting touches nothing of it
    assert maintenance.collect_garbage(phoenix).to_json() == {"removed": [], "kept": [], "bytes_freed": 0,
                                                             "dry_run": False}
    for bad in (-1, float("nan"), "1h", True):
        with pytest.raises(BadInput):
            maintenance.collect_garbage(phoenix, bad)


# --- Rucio CLOSE records -------------------------------------------------------------------------------------------

def _close(cat, name: str, days_ago: float) -> None:
    scope = name.split(".")[0]
    body = json.dumps({"event_type": "CLOSE", "payload": {"scope": scope, "name": name, "length": 3, "events": 10}})
    handle_rucio_event(cat.engine, cat, parse_rucio_event(body))
    with cat.engine.begin() as conn:
        conn.execute(md.dataset_progress.update().where(md.dataset_progress.c.dataset == name)
                     .values(closed_at=md.now() - timedelta(days=days_ago)))


def test_close_records_nobody_announced_are_pruned_after_the_retention(catalog, aod):
    name, table = aod
    base = "data18_13TeV.00358031.physics_Main.merge.AOD."
    stale, recent, announced, upstream = (base + t for t in ("f1_m1", "f2_m2", "f3_m3", "f4_m4"))
    catalog.load(name, table)
    for ds in (stale, announced, upstream, name):
        _close(catalog, ds, days_ago=40)
    _close(catalog, recent, days_ago=5)
    announcements.record(catalog.engine, {"type": "eventindex.produced", "dataset": announced, "task_id": 7,
                                          "job_id": 1, "attempt": 0})
    with catalog.engine.begin() as conn:
        conn.execute(md.upstream_datasets.insert().values(
            dataset=upstream, source="prodsys", task_id=9, status="done", inputs="[]", last_update=md.now(),
            synced_at=md.now()))
    assert derived.stored(catalog.engine, stale)["production_status"] == "indexing"  # from the CLOSE alone
    assert maintenance.prune_rucio_closes(catalog.engine, 30, dry_run=True) == sorted([stale, upstream])
    assert progress.get(catalog.engine, stale) is not None
    assert maintenance.prune_rucio_closes(catalog.engine, 30) == sorted([stale, upstream])
    assert progress.get(catalog.engine, stale) is None and progress.get(catalog.engine, upstream) is None
    for kept in (recent, announced, name):  # too recent, announced, in the catalogue
        assert progress.get(catalog.engine, kept)["closed_at"] is not None
    assert derived.stored(catalog.engine, stale) is None  # derived from the CLOSE alone: gone with it
    assert derived.stored(catalog.engine, upstream)["production_status"] == "produced"
    assert maintenance.prune_rucio_closes(catalog.engine, 30) == []  # idempotent
    _close(catalog, stale, days_ago=0)  # Rucio closes it again: recorded as new
    assert progress.get(catalog.engine, stale)["state"] == progress.CLOSED
    for bad in (-1, float("nan")):
        with pytest.raises(BadInput):
            maintenance.prune_rucio_closes(catalog.engine, bad)
    with catalog.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(md.dataset_progress)).scalar() == 4
