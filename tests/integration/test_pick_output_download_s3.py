"""The web app's download of a picking output (``picking.outputs.read_output``) from the object store the outputs go
to in production (SeaweedFS's S3 gateway on loopback): the object's bytes, and no other object of the bucket."""

from __future__ import annotations

import pytest

from eventindex.errors import NotFound
from eventindex.picking.outputs import read_output, store
from eventindex.staging import open_staging, uri_of
from eventindex.workarea import run_folder

pytestmark = pytest.mark.integration


def test_an_output_in_the_object_store_downloads_whole_and_alone(seaweedfs, tmp_path):
    seaweedfs.create_bucket("picks-download")
    area = seaweedfs.uri("picks-download", "eventindex/picks")
    data = bytes(range(256)) * 9000
    (tmp_path / "out.root").write_bytes(data)
    store(tmp_path / "out.root", uri_of(area, run_folder("manual__1:00")), "picked._000001.pool.root")
    store(tmp_path / "out.root", area, "secret.root")  # beside the request's folder, not in it
    size, chunks = read_output(area, "manual__1:00", "picked._000001.pool.root", chunk=1 << 20)
    assert size == len(data) and b"".join(chunks) == data
    fs, base = open_staging(area)
    assert fs.get_file_info(f"{base}/secret.root").size == len(data)
    for name in ("../secret.root", "..", "secret.root"):
        with pytest.raises(NotFound):
            read_output(area, "manual__1:00", name)
