"""The producer's staging area on S3, against a real SeaweedFS (S3 gateway) on loopback (the session's ``seaweedfs``
fixture of harness/seaweedfs.py, which also puts its credentials into the AWS_* environment variables)."""

import json
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from eventindex.errors import ProducerError
from eventindex.producer import produce
from tests.conftest import dataset

pytestmark = pytest.mark.integration
BUCKET = "eventindex-staging"


@pytest.fixture
def bucket(seaweedfs):
    client = seaweedfs.client()
    seaweedfs.create_bucket(BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_producer_writes_parquet_and_summary_to_s3(small_world, seaweedfs, bucket):
    world, out = small_world
    ds = dataset(world, "AOD", tag="f961_m1831")
    staging = seaweedfs.uri(BUCKET, "staging")
    result = produce(ds["name"], [str(out / f["path"]) for f in ds["files"]], staging, task_id=9, job_id=2)
    prefix = f"staging/{ds['name']}/ei.00000009.000002"
    assert _keys(bucket) == [f"{prefix}.parquet", f"{prefix}.summary.json"]
    assert result.parquet_uri.startswith(f"s3://{BUCKET}/staging/{ds['name']}/") and "endpoint_override" in \
        result.parquet_uri
    fs, path = pafs.FileSystem.from_uri(result.parquet_uri)
    assert pq.read_metadata(path, filesystem=fs).num_rows == ds["nevents"]
    summary = json.loads(bucket.get_object(Bucket=BUCKET, Key=f"{prefix}.summary.json")["Body"].read())
    assert summary["bytes"] == bucket.head_object(Bucket=BUCKET, Key=f"{prefix}.parquet")["ContentLength"]
    assert {g["guid"] for g in summary["guids"]} == {f["guid"] for f in ds["files"]}


def test_bad_input_leaves_the_bucket_empty(small_world, seaweedfs, bucket, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW")
    good = Path(out / ds["files"][0]["path"])
    bad = tmp_path / good.name
    bad.write_bytes(good.read_bytes()[:5000])
    staging = seaweedfs.uri(BUCKET, "staging")
    with pytest.raises(ProducerError, match=good.name):
        produce(ds["name"], [str(bad)], staging)
    assert _keys(bucket) == []
