"""Ingestion steps against the embedded data catalogue (LocalRucio): every check can fail and says why."""

import pytest

from eventindex import ingest
from eventindex.catalog import make_selection
from eventindex.catalog.embedded import BadLoad, EmbeddedCatalog
from eventindex.ddm import LocalRucio, register_world
from eventindex.producer import produce
from eventindex.workarea import WorkArea
from tests.conftest import corrupt_copy, dataset


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
    catalog = EmbeddedCatalog(tmp_path / "cat", f"sqlite:///{tmp_path / 'm.sqlite'}")
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
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    n = ingest.record_problems(url, [ingest.Problem("ds", "f.root", "broken")])
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("select dataset, file, problem from validation_reports")).all() == \
            [("ds", "f.root", "broken")]
    assert n == 1
