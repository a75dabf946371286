"""The picking page's downloads read one output file of one request (``picking.outputs.read_output``): the bytes
extraction stored, and nothing outside the request's own folder, whatever name is asked for."""

from __future__ import annotations

import pytest

from eventindex.errors import NotFound
from eventindex.picking.outputs import read_output, store
from eventindex.workarea import run_folder

RUN = "manual__2026-01-01T00:00:00+00:00"


def test_an_output_is_read_back_whole_in_chunks(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "local.root").write_bytes(data)
    store(tmp_path / "local.root", tmp_path / "picks" / run_folder(RUN), "picked._000001.x.pool.root")
    size, chunks = read_output(tmp_path / "picks", RUN, "picked._000001.x.pool.root", chunk=100_000)
    parts = list(chunks)
    assert size == len(data) and b"".join(parts) == data and len(parts) == 13


@pytest.mark.parametrize("name", ["../secret", "..", ".", "a/b", "/etc/passwd", "..%2fsecret", ".hidden", "",
                                  "x" * 300])
def test_no_name_reaches_outside_the_requests_folder(tmp_path, name):
    picks = tmp_path / "picks"
    (picks / run_folder(RUN)).mkdir(parents=True)
    (picks / "secret").write_bytes(b"another request's file")
    (tmp_path / "passwd").write_bytes(b"x")
    with pytest.raises(NotFound):
        read_output(picks, RUN, name)
    with pytest.raises(NotFound):  # nor a request id that would climb out of the picks area
        read_output(picks / run_folder(RUN), "..", "secret")


def test_a_missing_output_is_not_found_naming_it(tmp_path):
    (tmp_path / run_folder(RUN)).mkdir()
    with pytest.raises(NotFound, match="picked.root"):
        read_output(tmp_path, RUN, "picked.root")
