"""Ingestion steps against the embedded data catalogue (LocalRucio): every check can fail and says why."""

import pytest

from eventindex import ingest
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import BadLoad, EmbeddedCatalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.producer import produce
from eventindex.workarea import WorkArea
from tests.conftest import corrupt_copy, dataset, upgraded


def _work(tmp_path) -> WorkArea:
    """The run's work area that fetch copies into (one per test, as a DAG run has its own)."""
    return WorkArea(str(tmp_path / "work"), "manual__test")


@pytest.fixture
def ddm(small_world, tmp_path):
    world, out = small_world
    rucio = LocalRucio(f"sqlite:///{tmp_path / 'rucio.sqlite'}")
    register_world(rucio, world, out)
    return rucio


def test_a_good_dataset_goes_through_fetch_validate_load_publish(staged_world, ddm, tmp_path):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="r11969_r11784_p4072")
    fetched = ingest.fetch(d["name"], str(staging), _work(tmp_path))
    summary = ingest.validate(fetched, ddm)
    assert summary["nevents"] == d["nevents"] and summary["nfiles"] == len(d["files"])
    catalog = EmbeddedCatalog(tmp_path / "cat", upgraded(f"sqlite:///{tmp_path / 'm.sqlite'}"))
    older = dataset(world, "AOD", tag="f961_m1831")
    ingest.load(catalog, ingest.fetch(older["name"], str(staging), _work(tmp_path)))
    tier0 = ingest.source_of("eventindex_ingest_tier0", "tier0__x")
    assert ingest.load(catalog, fetched, source=tier0).nevents == d["nevents"]
    assert catalog.show(d["name"])["source"] == "tier0" and catalog.show(older["name"])["source"] == "manual"
    # a rerun of the same version (the same job parts) loads nothing: one load per complete version
    assert ingest.load(catalog, ingest.fetch(d["name"], str(staging), _work(tmp_path))) is None
    assert [h["action"] for h in catalog.show(d["name"])["history"]] == ["load"]
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]
    published = ingest.publish(catalog, d["name"], obsolete_older=True)
    assert published["obsoleted"] == [older["name"]] and published["nevents"] == d["nevents"]
    assert catalog.show(older["name"])["status"] == "obsolete"


def _fetched(staged_world, tmp_path, kind="RAW", **kw):
    world, _, staging = staged_world
    d = dataset(world, kind, **kw)
    return d, ingest.fetch(d["name"], str(staging), _work(tmp_path))


def test_a_file_missing_from_rucio_fails_validation_naming_it(staged_world, ddm, tmp_path):
    d, fetched = _fetched(staged_world, tmp_path)
    gone = d["files"][0]
    ddm.remove_file(d["scope"], d["name"], gone["lfn"])
    with pytest.raises(ingest.ValidationFailed) as exc:
        ingest.validate(fetched, ddm)
    assert any(p.file == gone["guid"] and "not a file of the dataset in Rucio" in p.what for p in exc.value.problems)


def test_an_event_count_mismatch_with_rucio_fails_validation(staged_world, ddm, tmp_path, small_world):
    world, out = small_world
    d, fetched = _fetched(staged_world, tmp_path)
    files = [{"scope": d["scope"], "name": f["lfn"], "meta": {"guid": f["guid"], "events": f["nevents"] + (i == 1)}}
             for i, f in enumerate(d["files"])]
    ddm.register_dataset(d["scope"], d["name"], files, "LOCAL_DISK")
    with pytest.raises(ingest.ValidationFailed, match=f"{d['files'][1]['lfn']}: Rucio says"):
        ingest.validate(fetched, ddm)


def test_an_open_dataset_or_an_unknown_one_fails_validation(staged_world, ddm, tmp_path):
    d, fetched = _fetched(staged_world, tmp_path)
    ddm.set_open(d["scope"], d["name"], True)
    with pytest.raises(ingest.ValidationFailed, match="still open"):
        ingest.validate(fetched, ddm)
    fresh = LocalRucio(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(ingest.ValidationFailed, match="not a dataset in Rucio"):
        ingest.validate(fetched, fresh)


def test_announcement_counts_must_match_the_index(staged_world, ddm, tmp_path):
    d, fetched = _fetched(staged_world, tmp_path)
    job = fetched.summaries[0]
    told = {"task_id": job["task_id"], "job_id": job["job_id"], "guids": {f["guid"]: f["nevents"] for f in d["files"]}}
    assert ingest.validate(fetched, ddm, told)["nevents"] == d["nevents"]
    told["guids"][d["files"][0]["guid"]] += 5
    with pytest.raises(ingest.ValidationFailed, match="announced with"):
        ingest.validate(fetched, ddm, told)


def test_duplicated_events_fail_validation_unless_allowed(small_world, ddm, tmp_path):
    world, out = small_world
    d = dataset(world, "RAW", stream="express_express")
    files = [str(out / f["path"]) for f in d["files"]]
    produce(d["name"], files, str(tmp_path / "st"), 1, 1)
    produce(d["name"], files[:1], str(tmp_path / "st"), 1, 2)  # a second job indexing the same file again
    fetched = ingest.fetch(d["name"], str(tmp_path / "st"), _work(tmp_path))
    with pytest.raises(ingest.ValidationFailed) as exc:
        ingest.validate(fetched, ddm)
    assert any("appear more than once" in p.what for p in exc.value.problems)


def test_a_corrupt_staging_file_is_refused_at_fetch(staged_world, tmp_path):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="physics_MinBias")
    copy = corrupt_copy(staging, d["name"], tmp_path / "staging")
    with pytest.raises(BadLoad, match="adler32"):
        ingest.fetch(d["name"], str(copy), _work(tmp_path))


def test_problems_are_recorded_in_the_metadata_db(tmp_path):
    from eventindex.metadata import upgrade

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url)  # only `eventindex db upgrade` (and the fixtures) make the schema: recording never migrates
    n = ingest.record_problems(url, [ingest.Problem("ds", "f.root", "broken")])
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("select dataset, file, problem from validation_reports")).all() == \
            [("ds", "f.root", "broken")]
    assert n == 1


# --- a dataset Rucio does not know ------------------------------------------------------------------------------


def _metadata(tmp_path):
    from eventindex.metadata import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'metadata.sqlite'}"
    upgrade(url)
    return make_engine(url)


def test_a_staged_dataset_unknown_to_rucio_fails_after_the_grace_period_not_the_stuck_limit(staged_world, tmp_path):
    from datetime import datetime, timedelta

    from eventindex import progress
    from eventindex.errors import NotFound

    world, _, staging = staged_world
    d = dataset(world, "RAW")
    engine, nobody = _metadata(tmp_path), LocalRucio(f"sqlite:///{tmp_path / 'empty-rucio.sqlite'}")
    t0, grace, stuck = datetime(2026, 1, 1, 12, 0), timedelta(minutes=10), timedelta(hours=6)
    seen = ingest.wait_complete(engine, nobody, d["name"], str(staging), stuck, grace, now=t0)
    assert not seen.complete and not seen.stuck
    assert seen.detail.startswith("unknown to Rucio (for 0 min 0 s; failing after 10 minutes)")
    later = ingest.wait_complete(engine, nobody, d["name"], str(staging), stuck, grace, now=t0 + timedelta(minutes=9))
    assert not later.complete and "for 9 min 0 s" in later.detail
    with pytest.raises(NotFound) as exc:
        ingest.wait_complete(engine, nobody, d["name"], str(staging), stuck, grace, now=t0 + grace)
    assert str(exc.value) == f"{d['name']} is unknown to Rucio after 10 minutes"
    row = progress.get(engine, d["name"])
    assert row["state"] == progress.FAILED and row["detail"] == str(exc.value)


def test_a_dataset_rucio_learns_of_within_the_grace_period_goes_on(staged_world, ddm, tmp_path):
    from datetime import datetime, timedelta

    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="physics_MinBias")
    engine, nobody = _metadata(tmp_path), LocalRucio(f"sqlite:///{tmp_path / 'empty-rucio.sqlite'}")
    t0, grace = datetime(2026, 1, 1, 12, 0), timedelta(minutes=10)
    assert not ingest.wait_complete(engine, nobody, d["name"], str(staging), None, grace, now=t0).complete
    # registered 5 minutes later (``ddm`` holds the world): complete, the grace is over
    seen = ingest.wait_complete(engine, ddm, d["name"], str(staging), None, grace, now=t0 + timedelta(minutes=5))
    assert seen.complete and seen.expected_files == len(d["files"])
    # and a later run of the same dataset starts its own grace period (the first look of a run starts the clock)
    from eventindex import progress

    progress.mark(engine, d["name"], progress.LOADED)
    again = ingest.wait_complete(engine, nobody, d["name"], str(staging), None, grace, now=t0 + timedelta(hours=1))
    assert not again.complete and "unknown to Rucio (for 0 min 0 s" in again.detail


def test_an_announced_dataset_unknown_to_rucio_with_nothing_staged_fails_after_the_grace(tmp_path):
    """The issue's case: announced, unknown to Rucio, waited 6 hours."""
    from datetime import datetime, timedelta

    from eventindex.errors import NotFound
    from eventindex import progress

    engine, nobody = _metadata(tmp_path), LocalRucio(f"sqlite:///{tmp_path / 'empty-rucio.sqlite'}")
    name, t0 = "data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831", datetime(2026, 1, 1, 12, 0)
    told = [{"task_id": 1, "job_id": 1, "njobs": 2}]
    assert not progress.check(engine, nobody, name, [], told, timedelta(hours=6), timedelta(minutes=3), t0).complete
    with pytest.raises(NotFound, match=f"^{name} is unknown to Rucio after 3 minutes$"):
        progress.check(engine, nobody, name, [], told, timedelta(hours=6), timedelta(minutes=3),
                       t0 + timedelta(minutes=3, seconds=1))


def test_a_malformed_summary_fails_the_wait_at_once(staged_world, ddm, tmp_path):
    import shutil

    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    shutil.copytree(staging / d["name"], tmp_path / "st" / d["name"])
    summary = next((tmp_path / "st" / d["name"]).glob("*.summary.json"))
    summary.write_text("{")
    with pytest.raises(BadLoad, match=f"^{summary}: malformed producer summary: not JSON"):
        ingest.wait_complete(_metadata(tmp_path), ddm, d["name"], str(tmp_path / "st"))
