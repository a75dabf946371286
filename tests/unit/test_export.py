"""Writing a selection to a file: whole or nothing, and a one-line refusal for a name that cannot be written."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from eventindex.catalog import make_selection, open_catalog
from eventindex.catalog.loader import load_staged
from eventindex.errors import BadInput, BadRequest
from eventindex.export import stream_selection, write_selection
from tests.conftest import dataset


@pytest.fixture
def catalog(staged_world, eventindex_home, metadata_home):
    _, _, staging = staged_world
    catalog = open_catalog()
    load_staged(catalog, str(staging))
    return catalog


def test_write_selection_writes_every_selected_event_and_reports_progress(staged_world, catalog, tmp_path):
    world, _, _ = staged_world
    d = dataset(world, "RAW")
    seen = []
    n = write_selection(catalog, make_selection(dataset=d["name"]), ["run_number", "event_number"],
                        tmp_path / "raw.csv", progress=lambda done, total: seen.append((done, total)))
    rows = list(csv.DictReader((tmp_path / "raw.csv").open()))
    assert n == len(rows) == d["nevents"]
    assert seen[-1] == (d["nevents"], d["nevents"])
    assert not list(tmp_path.glob("*.part"))


def test_a_missing_output_folder_is_refused_before_anything_is_written(catalog, tmp_path):
    target = tmp_path / "missing" / "folder" / "x.csv"
    with pytest.raises(BadInput, match=f"output folder {tmp_path / 'missing' / 'folder'} does not exist"):
        write_selection(catalog, make_selection(), None, target)
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "select", "--type", "RAW", "--output", target],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr and ".part" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: output folder {target.parent} does not exist (create it "
                                                "first)"]
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", ["x.txt", "x", "x.csv.gz"])
def test_an_unknown_suffix_is_refused(catalog, tmp_path, name):
    (tmp_path / "out").mkdir()
    with pytest.raises(BadInput, match=r"must end in \.csv, \.parquet or \.json"):
        write_selection(catalog, make_selection(), None, tmp_path / "out" / name)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_selection_leaves_no_file(catalog, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(Exception, match="unknown column"):
        write_selection(catalog, make_selection(), ["event_number;drop"], tmp_path / "out" / "x.json")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_streamed_selection_stops_at_its_limit_and_agrees_with_the_written_file(staged_world, catalog, tmp_path,
                                                                                  fmt):
    import io
    import json

    import pyarrow.parquet as pq

    world, _, _ = staged_world
    d = dataset(world, "AOD")
    sel, columns = make_selection(dataset=d["name"]), ["run_number", "event_number", "AOD_guid"]
    write_selection(catalog, sel, columns, tmp_path / f"all.{fmt}")

    def rows(data: bytes) -> list[dict]:
        if fmt == "csv":
            return [{k: int(v) if v.isdigit() else v for k, v in r.items()}
                    for r in csv.DictReader(io.StringIO(data.decode()))]
        return json.loads(data) if fmt == "json" else pq.read_table(io.BytesIO(data)).to_pylist()

    everything = rows((tmp_path / f"all.{fmt}").read_bytes())
    assert len(everything) == d["nevents"] > 1000
    chunks = list(stream_selection(catalog, sel, columns, fmt, 1000))
    assert all(isinstance(c, bytes) for c in chunks)
    assert rows(b"".join(chunks)) == everything[:1000]
    assert rows(b"".join(stream_selection(catalog, sel, columns, fmt.upper(), None))) == everything
    assert rows(b"".join(stream_selection(catalog, sel, columns, fmt, 0))) == []


def test_a_streamed_selection_refuses_a_bad_format_or_limit_before_reading(catalog):
    with pytest.raises(BadRequest, match="format 'xml' is not one of csv, parquet, json"):
        stream_selection(catalog, make_selection(), None, "xml", 10)
    with pytest.raises(BadRequest, match="limit -1"):
        stream_selection(catalog, make_selection(), None, "csv", -1)
    with pytest.raises(BadInput, match="unknown column"):
        stream_selection(catalog, make_selection(), ["event_number;drop"], "csv", 10)
