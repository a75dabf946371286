"""Picking's outputs registered in a real Rucio 41.5 server at the output RSE (non-deterministic): file:// PFNs for a
local folder; object-store URIs for an object store, through an s3 protocol on the bucket (Rucio keeps bucket and key,
not the query with the endpoint); never with credentials."""

import uuid

import pytest

from eventindex import picking

pytestmark = pytest.mark.integration


def _outputs(dataset: str, n: int, uri_of) -> list[dict]:
    lfns = [f"{dataset}._{k:05d}.1.pool.root" for k in range(n)]
    return [{"lfn": lfn, "guid": str(uuid.uuid4()).upper(), "uri": uri_of(lfn), "nevents": 10 + k, "bytes": 1000 + k}
            for k, lfn in enumerate(lfns)]


def test_outputs_in_a_local_folder_are_file_replicas_at_the_output_rse(real_rucio, tmp_path):
    outputs = _outputs("user.tester.local.AOD", 2, lambda lfn: str(tmp_path / "picks" / "r1" / lfn))
    did = picking.register_output(real_rucio, "user.tester.local.AOD", outputs, rse="PICKS_LOCAL")
    assert did == "user.tester:user.tester.local.AOD"
    files = real_rucio.list_files("user.tester", "user.tester.local.AOD")
    assert {(f["name"], f["events"], f["bytes"]) for f in files} == \
        {(o["lfn"], o["nevents"], o["bytes"]) for o in outputs}
    [replica] = real_rucio.list_replicas([{"scope": "user.tester", "name": outputs[0]["lfn"]}])
    assert replica["rses"] == {"PICKS_LOCAL": [f"file://{tmp_path}/picks/r1/{outputs[0]['lfn']}"]}


def test_outputs_in_an_object_store_are_registered_with_their_uris_without_credentials(real_rucio):
    base = "s3://KEY:SECRET@picks-bucket/eventindex/picks/r2"
    query = "?endpoint_override=127.0.0.1:8333&scheme=http&secret_key=SECRET"
    outputs = _outputs("user.tester.s3.AOD", 3, lambda lfn: f"{base}/{lfn}{query}")
    picking.register_output(real_rucio, "user.tester.s3.AOD", outputs, rse="PICKS_S3")
    assert real_rucio.get_metadata("user.tester", "user.tester.s3.AOD")["is_open"] is False
    assert len(real_rucio.list_files("user.tester", "user.tester.s3.AOD")) == 3
    [replica] = list(real_rucio.client.list_replicas([{"scope": "user.tester", "name": outputs[0]["lfn"]}],
                                                     schemes=["s3"]))
    [pfn] = replica["rses"]["PICKS_S3"]
    assert pfn == f"s3://picks-bucket/eventindex/picks/r2/{outputs[0]['lfn']}"  # Rucio keeps no query (endpoint)
    # a second request into the same RSE and bucket
    more = _outputs("user.tester.s3b.AOD", 1, lambda lfn: f"{base}/b/{lfn}{query}")
    assert picking.register_output(real_rucio, "user.tester.s3b.AOD", more, rse="PICKS_S3")
