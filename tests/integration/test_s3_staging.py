"""The producer's staging area on S3, against a local S3-compatible HTTP server (moto's server) on loopback."""

import json
import socket
from pathlib import Path

import boto3
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from eventindex.errors import ProducerError
from eventindex.producer import produce
from tests.conftest import dataset

pytestmark = pytest.mark.integration
BUCKET = "eventindex-staging"


@pytest.fixture(scope="module")
def s3_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "loopback-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "loopback-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=f"http://{s3_server}", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_producer_writes_parquet_and_summary_to_s3(small_world, s3_server, bucket):
    world, out = small_world
    ds = dataset(world, "AOD", tag="f961_m1831")
    staging = f"s3://{BUCKET}/staging?endpoint_override={s3_server}&scheme=http&region=us-east-1"
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


def test_bad_input_leaves_the_bucket_empty(small_world, s3_server, bucket, tmp_path):
    world, out = small_world
    ds = dataset(world, "RAW")
    good = Path(out / ds["files"][0]["path"])
    bad = tmp_path / good.name
    bad.write_bytes(good.read_bytes()[:5000])
    staging = f"s3://{BUCKET}/staging?endpoint_override={s3_server}&scheme=http&region=us-east-1"
    with pytest.raises(ProducerError, match=good.name):
        produce(ds["name"], [str(bad)], staging)
    assert _keys(bucket) == []
