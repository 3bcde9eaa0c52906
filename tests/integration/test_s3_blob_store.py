"""The S3-compatible blob store (`SECUREFILES_BLOB_STORE=s3`) against a real local S3 server
(moto's, over HTTP): the adapter on its own, then the whole system storing its blobs there."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from securefiles.common.config import ConfigError
from securefiles.common.errors import NotFound, Unavailable
from securefiles.storage.adapters.s3_blobs import S3BlobStore, S3Settings
from securefiles.storage.adapters.sql_blobs import SWEEP_GRACE
from securefiles.storage.app import StorageSettings
from tests.conftest import LocalSystem, job_token_for, unique

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-secret-key"}
REGION = "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"blobs-{uuid.uuid4().hex[:12]}"
    _client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _client(endpoint: str):
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION,
                                          aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = _client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _key() -> str:
    return f"{uuid.uuid4()}/v1-{uuid.uuid4().hex[:12]}"


def _store(endpoint: str, bucket: str, prefix: str = "sf/", clock=None) -> S3BlobStore:
    settings = S3Settings(bucket=bucket, endpoint_url=endpoint, region=REGION, prefix=prefix)
    return S3BlobStore(settings, clock=clock) if clock else S3BlobStore(settings)


def test_a_committed_blob_reads_back_by_range_and_delete_removes_it(s3_endpoint: str, bucket: str) -> None:
    store = _store(s3_endpoint, bucket)
    key = _key()
    segments = [os.urandom(1000), os.urandom(1), os.urandom(70_000)]
    whole = b"".join(segments)

    async def scenario() -> None:
        writer = store.begin(key)
        for segment in segments:
            writer.write(segment)
        assert _objects(s3_endpoint, bucket) == {}  # nothing is visible before commit
        await writer.commit()
        assert _objects(s3_endpoint, bucket) == {f"sf/{key}": whole}

        reader = await store.open(key)
        assert reader.size == len(whole)
        for offset, length in [(0, 10), (995, 10), (1000, 1), (1001, 5000), (0, len(whole)),
                               (len(whole) - 3, 100), (len(whole), 10), (5, 0)]:
            assert await reader.read_at(offset, length) == whole[offset : offset + length]
        reader.close()

        await store.delete(key)
        assert _objects(s3_endpoint, bucket) == {}
        with pytest.raises(NotFound) as missing:
            await store.open(key)
        assert missing.value.reason == "BLOB_MISSING"

    asyncio.run(scenario())


def test_an_aborted_write_leaves_nothing(s3_endpoint: str, bucket: str) -> None:
    store = _store(s3_endpoint, bucket)
    key = _key()

    async def scenario() -> None:
        writer = store.begin(key)
        writer.write(os.urandom(4096))
        writer.abort()
        with pytest.raises(NotFound) as missing:
            await store.open(key)
        assert missing.value.reason == "BLOB_MISSING"

    asyncio.run(scenario())
    assert _objects(s3_endpoint, bucket) == {}


def test_sweep_removes_only_old_unreferenced_blobs_under_its_prefix(s3_endpoint: str, bucket: str) -> None:
    client = _client(s3_endpoint)
    kept, orphan, elsewhere = _key(), _key(), _key()
    for name in (f"sf/{kept}", f"sf/{orphan}", "sf/not-a-blob-key.txt", f"other/{elsewhere}"):
        client.put_object(Bucket=bucket, Key=name, Body=b"ciphertext")

    # Within the grace an orphan may be another replica's upload whose metadata is not yet committed.
    assert _store(s3_endpoint, bucket).sweep({kept}) == 0
    later = dt.datetime.now(dt.UTC) + SWEEP_GRACE + dt.timedelta(minutes=1)
    assert _store(s3_endpoint, bucket, clock=lambda: later).sweep({kept}) == 1
    assert set(_objects(s3_endpoint, bucket)) == {f"sf/{kept}", "sf/not-a-blob-key.txt", f"other/{elsewhere}"}


def test_an_unreachable_endpoint_or_missing_bucket_is_unavailable(s3_endpoint: str, bucket: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = _store(closed, bucket)
    with pytest.raises(Unavailable) as failed:
        asyncio.run(unreachable.open(_key()))
    assert failed.value.reason == "BLOB_STORE_UNAVAILABLE"

    no_bucket = _store(s3_endpoint, "no-such-bucket-here")
    writer = no_bucket.begin(_key())
    writer.write(b"ciphertext")
    with pytest.raises(Unavailable) as failed:
        asyncio.run(writer.commit())
    assert failed.value.reason == "BLOB_STORE_UNAVAILABLE"
    for store in (unreachable, no_bucket):  # at start-up: storage stops with the error
        with pytest.raises(Unavailable):
            store.sweep(set())


@pytest.mark.parametrize(("env", "message"), [
    ({}, "SECUREFILES_S3_BUCKET is required when SECUREFILES_BLOB_STORE is 's3'"),
    ({"SECUREFILES_S3_BUCKET": "b", "SECUREFILES_S3_ENDPOINT_URL": "minio:9000"},
     "SECUREFILES_S3_ENDPOINT_URL must be an http(s) URL"),
])
def test_s3_settings_that_cannot_work_are_refused_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        StorageSettings.from_env({"SECUREFILES_BLOB_STORE": "s3", **env})
    assert str(refused.value) == message


def test_the_system_keeps_only_ciphertext_in_the_bucket(s3_endpoint: str, bucket: str, fresh_system: LocalSystem,
                                                        tmp_path) -> None:
    fresh_system.blob_store = "s3"
    fresh_system.extra_env.update({**CREDENTIALS, "SECUREFILES_S3_BUCKET": bucket,
                                   "SECUREFILES_S3_ENDPOINT_URL": s3_endpoint, "SECUREFILES_S3_REGION": REGION,
                                   "SECUREFILES_S3_PREFIX": "securefiles", "SECUREFILES_LOG_LEVEL": "debug"})
    fresh_system.start()
    plaintext = b"-----BEGIN PRIVATE KEY-----\n" + os.urandom(200_000) + b"\nsigning key for releases\n"
    name = unique("signing") + ".key"
    with fresh_system.client() as admin:
        created = admin.upload_file(plaintext, name=name)
    key = fresh_system.blob_key(created.secure_file_id)

    stored = _objects(s3_endpoint, bucket)
    assert set(stored) == {f"securefiles/{key}"}
    ciphertext = stored[f"securefiles/{key}"]
    assert len(ciphertext) > len(plaintext)
    assert b"BEGIN PRIVATE KEY" not in ciphertext and plaintext[28:60] not in ciphertext
    assert not (fresh_system.state_dir / "data" / "blobs" / "blobs").exists() or not any(
        (fresh_system.state_dir / "data" / "blobs" / "blobs").iterdir())

    with fresh_system.client(token=job_token_for(fresh_system, name)) as job:
        assert job.download_secure_file(name, tmp_path).path.read_bytes() == plaintext

    with fresh_system.client() as admin:
        admin.delete_file(name)
    assert _objects(s3_endpoint, bucket) == {}

    logs = b"".join(path.read_bytes() for path in (fresh_system.state_dir / "logs").glob("*.log"))
    assert b'"level":"debug","service":"storage"' in logs  # storage wrote debug logs
    for secret in CREDENTIALS.values():
        assert secret.encode() not in logs
