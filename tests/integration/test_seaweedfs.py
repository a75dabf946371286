"""The SeaweedFS harness (harness/seaweedfs.py): pyarrow's S3 filesystem against it, authentication, and a restart
keeping the data. The restart tests use a SeaweedFS of their own, not the session's."""

import uuid

import boto3
import pyarrow.fs as pafs
import pytest
from botocore.exceptions import ClientError

from eventindex_harness.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration


def _bucket(seaweedfs) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweedfs.create_bucket(name)
    seaweedfs.create_bucket(name)  # idempotent
    return name


def test_pyarrow_writes_lists_copies_and_deletes(seaweedfs):
    bucket = _bucket(seaweedfs)
    uri = seaweedfs.uri(bucket, "x")
    assert uri == f"s3://{bucket}/x?endpoint_override={seaweedfs.endpoint}&scheme=http&region=us-east-1"
    assert seaweedfs.uri(bucket).startswith(f"s3://{bucket}?endpoint_override=127.0.0.1:")
    fs, root = pafs.FileSystem.from_uri(uri)
    assert root == f"{bucket}/x"
    payload = bytes(range(256)) * 40_000  # 10 MB: more than one SeaweedFS chunk (4 MB)
    with fs.open_output_stream(f"{root}/a/one.bin") as out:
        out.write(payload)
    with fs.open_output_stream(f"{root}/b.txt") as out:
        out.write(b"two")
    with fs.open_input_stream(f"{root}/a/one.bin") as src:
        assert src.read() == payload
    files = {i.path: i.size for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
             if i.type == pafs.FileType.File}
    assert files == {f"{root}/a/one.bin": len(payload), f"{root}/b.txt": 3}

    pafs.copy_files(root, f"{bucket}/y", source_filesystem=fs, destination_filesystem=fs)
    with fs.open_input_stream(f"{bucket}/y/a/one.bin") as src:
        assert src.read() == payload
    fs.delete_dir(root)
    assert fs.get_file_info(root).type == pafs.FileType.NotFound
    keys = sorted(o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", []))
    assert [k for k in keys if not k.endswith("/")] == ["y/a/one.bin", "y/b.txt"]


def test_requests_need_the_key(seaweedfs):
    assert seaweedfs.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    stranger = boto3.client("s3", endpoint_url=f"http://{seaweedfs.endpoint}", region_name="us-east-1",
                            aws_access_key_id=seaweedfs.access_key, aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError, match="SignatureDoesNotMatch|AccessDenied"):
        stranger.list_buckets()


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    server = SeaweedFS(tmp_path / "weed")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    with server:
        yield server
    assert server.proc.poll() is not None  # close() left no server behind


def test_restart_keeps_data_and_endpoint(own_server):
    own_server.create_bucket("keep")
    fs, root = pafs.FileSystem.from_uri(own_server.uri("keep", "p"))
    with fs.open_output_stream(f"{root}/before.bin") as out:
        out.write(b"written before stop" * 1000)
    endpoint = own_server.endpoint
    own_server.stop()
    own_server.start()
    assert own_server.endpoint == endpoint and own_server.starts == 2
    with fs.open_input_stream(f"{root}/before.bin") as src:  # the same filesystem object as before the restart
        assert src.read() == b"written before stop" * 1000
    with fs.open_output_stream(f"{root}/after.bin") as out:
        out.write(b"after")
    own_server.stop()
    # a new instance on the same folder (as harness/cluster.py makes one per `up`): same ports, same data
    again = SeaweedFS(own_server.base, access_key=own_server.access_key, secret_key=own_server.secret_key)
    assert (again.ports, again.grpc_ports) == (own_server.ports, own_server.grpc_ports)
    with again:
        with fs.open_input_stream(f"{root}/after.bin") as src:
            assert src.read() == b"after"


def test_reads_while_stopped_raise_oserror(own_server):
    own_server.create_bucket("down")
    fs, root = pafs.FileSystem.from_uri(own_server.uri("down"))
    with fs.open_output_stream(f"{root}/f") as out:
        out.write(b"x")
    own_server.stop()
    with pytest.raises(OSError, match="Could not connect"):  # after pyarrow's own retries (~6 s)
        with fs.open_input_stream(f"{root}/f") as src:
            src.read()
    own_server.start()
    with fs.open_input_stream(f"{root}/f") as src:
        assert src.read() == b"x"
