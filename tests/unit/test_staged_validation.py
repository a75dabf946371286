"""`eventindex load` and the ingestion DAG's validate step check a staged dataset the same way, and a malformed
producer summary is bad input named in one line. Ground truth: the producer's own summary and the world's files,
never the catalogue under test."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventindex import ingest
from eventindex.catalog import make_selection
from eventindex.catalog.loader import find_staged, load_staged
from eventindex.cli.main import main
from eventindex.ddm import LocalRucio, register_world
from eventindex.errors import BadLoad, ValidationFailed
from eventindex.producer import PARQUET_OPTIONS
from eventindex.settings import Settings
from eventindex.workarea import WorkArea
from tests.conftest import dataset


def _copy(staging: Path, name: str, to: Path) -> Path:
    shutil.copytree(staging / name, to / name)
    return to / name


def _rewrite(folder: Path, change) -> tuple[str, dict]:
    """The dataset folder's (one) part rewritten as ``change(table)`` makes it, with the summary's bytes and adler32
    fixed to match: a copy that passes the checksum check and holds other records than its summary says."""
    summary_path = next(folder.glob("*.summary.json"))
    summary = json.loads(summary_path.read_text())
    parquet = folder / summary["parquet"]
    table = change(pq.read_table(parquet))
    pq.write_table(table, parquet, **PARQUET_OPTIONS)
    data = parquet.read_bytes()
    summary.update(bytes=len(data), adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
    summary_path.write_text(json.dumps(summary))
    return summary["parquet"], summary


def _drop_one_event(table: pa.Table) -> pa.Table:
    keep = np.ones(table.num_rows, bool)
    keep[table.num_rows // 2] = False
    return table.filter(pa.array(keep))


def _cli(capsys, *args) -> tuple[int, list[str], str]:
    """Exit status, the error lines and all of stderr of ``eventindex ARGS`` (stdout in ``_cli.out``)."""
    code = main(list(map(str, args)))
    captured = capsys.readouterr()
    _cli.out = captured.out
    return code, [line for line in captured.err.splitlines() if line.startswith("error:")], captured.err


@pytest.fixture
def home_with_rucio(small_world, eventindex_home, metadata_home, capsys):
    """An EVENTINDEX_HOME with its metadata DB upgraded and the world registered in the local data catalogue."""
    world, out = small_world
    eventindex_home.mkdir(parents=True, exist_ok=True)
    assert main(["db", "upgrade"]) == 0
    register_world(LocalRucio(Settings.from_env().local_rucio_url), world, out)
    capsys.readouterr()
    return eventindex_home


def test_a_part_with_one_event_dropped_and_its_checksum_fixed_is_refused_by_the_cli(staged_world, home_with_rucio,
                                                                                     tmp_path, capsys):
    """The issue's case: 4,873 events against a summary of 4,874 was loaded with exit 0."""
    world, _, staging = staged_world
    bad, good = dataset(world, "RAW"), dataset(world, "RAW", stream="physics_MinBias")
    area = tmp_path / "staging"
    _copy(staging, bad["name"], area)
    code, errors, _ = _cli(capsys, "load", area)  # the good version of it first: the catalogue's state to keep
    assert code == 0 and errors == []
    _copy(staging, good["name"], area)
    part, summary = _rewrite(area / bad["name"], _drop_one_event)
    assert summary["nevents"] == bad["nevents"]  # the summary still says the true count

    code, errors, err = _cli(capsys, "load", area, "--json")
    assert code == 1 and "Traceback" not in err
    assert len(errors) == 1, err
    assert bad["name"] in errors[0] and part in errors[0]
    assert f"the producer summary says {bad['nevents']} events, the index file holds {bad['nevents'] - 1}" in errors[0]
    assert [r["dataset"] for r in json.loads(_cli.out)] == [good["name"]]
    from eventindex.catalog import open_catalog

    catalog = open_catalog()
    assert catalog.count(make_selection(dataset=bad["name"])) == bad["nevents"]  # unchanged: the earlier version
    assert [h["action"] for h in catalog.show(bad["name"])["history"]] == ["load"]
    assert catalog.count(make_selection(dataset=good["name"])) == good["nevents"]  # the good dataset was loaded


def test_the_dag_and_the_cli_find_the_same_problems(staged_world, tmp_path):
    world, _, staging = staged_world
    d = dataset(world, "RAW")
    area = tmp_path / "staging"
    _copy(staging, d["name"], area)
    _rewrite(area / d["name"], _drop_one_event)
    ddm = LocalRucio(f"sqlite:///{tmp_path / 'rucio.sqlite'}")
    register_world(ddm, world, staged_world[1], only=[d["name"]])
    fetched = ingest.fetch(d["name"], str(area), WorkArea(str(tmp_path / "work"), "manual__t"))
    with pytest.raises(ValidationFailed) as dag:
        ingest.validate(fetched, ddm)
    refused: list = []
    assert load_staged(None, str(area), ddm=ddm, refused=refused) == []
    [(name, cli)] = refused
    assert name == d["name"] and str(cli) == str(dag.value)
    whats = [p.what for p in dag.value.problems]
    # the part's events and unique events, its GUID's count, and Rucio's count of that file
    n = d["nevents"]
    assert [w.split(": ", 1)[-1] for w in whats[:2]] == [
        f"the producer summary says {n} events, the index file holds {n - 1}",
        f"the producer summary says {n} unique events, the index file holds {n - 1}"]
    assert len(whats) == 4 and "the index holds" in whats[2] and whats[3].startswith("Rucio says")


def test_a_changed_first_event_with_the_same_counts_is_refused(staged_world, tmp_path):
    """Counts agree, the events do not: the summary's first event per GUID catches it (0 is no event of the run)."""
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    area = tmp_path / "staging"
    _copy(staging, d["name"], area)

    def renumber(table: pa.Table) -> pa.Table:
        evt = table.column("event_number").to_numpy().copy()
        assert 0 not in evt
        evt[int(np.argmin(evt))] = 0
        return table.set_column(table.schema.get_field_index("event_number"), "event_number",
                                pa.array(evt, pa.uint64()))

    _rewrite(area / d["name"], renumber)
    with pytest.raises(ValidationFailed, match=r"the producer summary says first event \[\d+, \d+\], the index holds "
                                               r"\[\d+, 0\]") as exc:
        load_staged(None, str(area))
    assert len(exc.value.problems) == 1


def test_without_a_data_catalogue_the_rucio_checks_are_skipped_and_the_cli_says_so(staged_world, eventindex_home,
                                                                                    metadata_home, tmp_path, capsys):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    eventindex_home.mkdir(parents=True, exist_ok=True)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    code, errors, err = _cli(capsys, "load", staging / d["name"])
    assert code == 0 and errors == []
    assert "note: no data catalogue configured" in err and "not checked against Rucio" in err
    assert not (eventindex_home / "rucio.sqlite").exists()  # looking for one made none


# --- malformed producer summaries ----------------------------------------------------------------------------------


def _valid_summary(staging: Path, name: str) -> dict:
    return json.loads(next((staging / name).glob("*.summary.json")).read_text())


MALFORMED = {
    "not JSON": lambda s: b'{"dataset": "x", ',
    "a list": lambda s: json.dumps([s]).encode(),
    **{f"no {k}": (lambda s, k=k: json.dumps({x: v for x, v in s.items() if x != k}).encode())
       for k in ("bytes", "adler32", "parquet", "nevents", "dataset")},
    "bytes as text": lambda s: json.dumps({**s, "bytes": str(s["bytes"])}).encode(),
    "nevents true": lambda s: json.dumps({**s, "nevents": True}).encode(),
    "adler32 a number": lambda s: json.dumps({**s, "adler32": 12345}).encode(),
    "parquet elsewhere": lambda s: json.dumps({**s, "parquet": "../../etc/x.parquet"}).encode(),
    "guids not a list": lambda s: json.dumps({**s, "guids": {"a": 1}}).encode(),
    "a guid count as text": lambda s: json.dumps({**s, "guids": [{**s["guids"][0], "nevents": "7"}]}).encode(),
    "task_id negative": lambda s: json.dumps({**s, "task_id": -1}).encode(),
    "an lfn as a number": lambda s: json.dumps({**s, "guids": [{**s["guids"][0], "lfn": 7}]}).encode(),
    "first_event not a pair": lambda s: json.dumps({**s, "guids": [{**s["guids"][0], "first_event": [1]}]}).encode(),
    "not UTF-8": lambda s: b'{"dataset": "\xff"}',
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_summary_is_bad_input_naming_its_path_on_both_paths(staged_world, tmp_path, case):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    area = tmp_path / "staging"
    folder = _copy(staging, d["name"], area)
    path = next(folder.glob("*.summary.json"))
    path.write_bytes(MALFORMED[case](_valid_summary(staging, d["name"])))
    with pytest.raises(BadLoad) as cli:
        find_staged(str(area))
    with pytest.raises(BadLoad) as dag:  # the DAG's fetch (and wait_complete: the same find_staged)
        ingest.fetch(d["name"], str(area), WorkArea(str(tmp_path / "work"), "manual__t"))
    for exc in (cli.value, dag.value):
        message = str(exc)
        assert message.startswith(f"{path}: malformed producer summary: ") and "\n" not in message, message
    with pytest.raises(BadLoad):
        ingest.staged_parts(d["name"], str(area))


def test_the_cli_loads_the_good_datasets_and_names_the_malformed_summary(staged_world, eventindex_home, metadata_home,
                                                                          tmp_path, capsys):
    world, _, staging = staged_world
    bad, good = dataset(world, "RAW", stream="express_express"), dataset(world, "RAW", stream="physics_MinBias")
    area = tmp_path / "staging"
    _copy(staging, good["name"], area)
    path = next(_copy(staging, bad["name"], area).glob("*.summary.json"))
    path.write_text('{"dataset": ')
    eventindex_home.mkdir(parents=True, exist_ok=True)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    code, errors, err = _cli(capsys, "load", area)
    assert code == 1 and "Traceback" not in err
    assert errors == [f"error: not loaded: {path}: malformed producer summary: not JSON (Expecting value at line 1 "
                      "column 13)"]
    from eventindex.catalog import open_catalog

    assert [d["name"] for d in open_catalog().datasets()] == [good["name"]]


def test_an_unreadable_part_with_a_matching_checksum_is_one_problem_naming_it(staged_world, tmp_path):
    """The producer's checksum of a file that is not Parquet at all (a truncated copy re-summed): refused in one
    line naming the part, on the CLI path as on the DAG's."""
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    folder = _copy(staging, d["name"], tmp_path / "staging")
    summary_path = next(folder.glob("*.summary.json"))
    summary = json.loads(summary_path.read_text())
    parquet = folder / summary["parquet"]
    data = parquet.read_bytes()[: 1000]
    parquet.write_bytes(data)
    summary.update(bytes=len(data), adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(ValidationFailed) as exc:
        load_staged(None, str(tmp_path / "staging"))
    [problem] = exc.value.problems
    assert problem.file == summary["parquet"] and problem.what.startswith("unreadable index file")
    assert "\n" not in str(exc.value)
