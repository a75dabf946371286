"""What can be checked of the Phoenix backend without a Phoenix server: its DDL and the rows it would UPSERT.
The backend's behaviour is checked by the catalogue contract tests when EVENTINDEX_PHOENIX_URL is set."""

from pathlib import Path

import pyarrow.parquet as pq

from eventindex.catalog.phoenix import EVENT_COLUMNS, ddl, upsert_rows
from eventindex.guid import format_guid
from tests.conftest import dataset

ROOT = Path(__file__).resolve().parents[2]


def test_committed_phoenix_ddl_matches_the_code():
    assert (ROOT / "sql" / "phoenix" / "events.sql").read_text() == ddl()


def test_row_key_starts_with_run_and_event_so_lookups_need_no_dataset():
    text = ddl("T")
    assert "PRIMARY KEY (RUN_NUMBER, EVENT_NUMBER, LOAD_KEY)" in text and "SALT_BUCKETS" in text


def test_upsert_rows_carry_masks_and_references_as_bytes(staged_world):
    world, _, staging = staged_world
    d = dataset(world, "AOD", tag="f961_m1831")
    table = pq.read_table(next((staging / d["name"]).glob("*.parquet")))
    rows = upsert_rows(table, ["RAW", "AOD"], load_key=7)
    assert len(rows) == table.num_rows
    names = [n for n, _ in EVENT_COLUMNS] + ["RAW_GUID", "RAW_OID", "AOD_GUID", "AOD_OID"]
    first = dict(zip(names, rows[0]))
    rec = table.slice(0, 1).to_pylist()[0]
    assert first["LOAD_KEY"] == 7 and first["RUN_NUMBER"] == rec["run_number"]
    assert first["HLT_PASSED"] == rec["hlt_passed"] and len(first["L1_TAV"]) == 64
    assert format_guid(first["AOD_GUID"]) in {f["guid"] for f in d["files"]}
    assert first["RAW_OID"] == rec["RAW_oid"] and first["STREAM"] == "physics_Main"
