"""Ciphertext blobs in an S3-compatible bucket (`SECUREFILES_BLOB_STORE=s3`), so that storage
replicas on different hosts share them without holding them in the database.

One object per blob, `<prefix><file id>/v<n>-<hex>`, written with a single PutObject: an
object appears whole or not at all. Reads are ranged GETs. Credentials come from boto3's
standard chain (environment, shared config, instance or pod role); they are never logged.

boto3 blocks: every call runs in `asyncio.to_thread` (the default executor), not in the
service's database threads, so a slow or unreachable S3 endpoint never holds the threads SQL
statements (health checks and audit entries among them) wait for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from securefiles.common.clock import utcnow
from securefiles.common.errors import NotFound, Unavailable
from securefiles.storage.adapters.blob_directory import check_blob_key, is_blob_key
from securefiles.storage.adapters.sql_blobs import SWEEP_GRACE

log = logging.getLogger("securefiles.storage.s3")

T = TypeVar("T")

_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str = ""


def _missing() -> NotFound:
    return NotFound("the file's content is missing", reason="BLOB_MISSING")


@contextmanager
def _translated() -> Iterator[None]:
    """S3 requests inside: a missing object is NotFound, any other failure Unavailable (S3 down,
    throttling, a refused credential, a missing bucket: nothing the caller can fix but retry)."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise _missing() from None
        log.warning("blob store request failed", extra={"error": code or type(error).__name__})
        raise Unavailable("the blob store refused or failed the request; retry",
                          reason="BLOB_STORE_UNAVAILABLE") from None
    except BotoCoreError as error:
        log.warning("blob store unreachable", extra={"error": type(error).__name__})
        raise Unavailable("the blob store is unreachable; retry", reason="BLOB_STORE_UNAVAILABLE") from None


def _call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    with _translated():
        return fn(**kwargs)


def _client(settings: S3Settings) -> Any:
    """A client of its own session (boto3 clients are thread-safe; the default session is not)."""
    config = Config(  # type: ignore[no-untyped-call]  # boto3 and botocore ship no types
        connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
    session = boto3.session.Session()  # type: ignore[no-untyped-call]
    return session.client(  # type: ignore[no-untyped-call]
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config)


class S3BlobWriter:
    """Buffers the blob's segments (files are at most a few MiB) and puts them in one request."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    async def commit(self) -> None:
        body = b"".join(self._parts)
        await asyncio.to_thread(_call, self._store.client.put_object, Bucket=self._store.bucket,
                                Key=self._store.object_key(self._key), Body=body,
                                ContentType="application/octet-stream")
        self._parts = []

    def abort(self) -> None:
        self._parts = []


class S3BlobReader:
    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self.size = size

    def _get(self, offset: int, length: int) -> bytes:
        with _translated():  # the body streams after the response: a broken connection shows here
            response = self._store.client.get_object(
                Bucket=self._store.bucket, Key=self._store.object_key(self._key),
                Range=f"bytes={offset}-{offset + length - 1}")
            return bytes(response["Body"].read())

    async def read_at(self, offset: int, length: int) -> bytes:
        length = min(length, self.size - offset)
        if length <= 0:
            return b""
        return await asyncio.to_thread(self._get, offset, length)

    def close(self) -> None:
        pass


class S3BlobStore:
    """BlobStore on an S3-compatible bucket, under an optional key prefix."""

    def __init__(self, settings: S3Settings, clock: Callable[[], dt.datetime] = utcnow,
                 client: Any | None = None) -> None:
        # boto3's debug logs print signed request headers (the access key id among them): they stay
        # off whatever the service's log level.
        for noisy in ("boto3", "botocore", "s3transfer", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.INFO)
        self.bucket = settings.bucket
        prefix = settings.prefix.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._clock = clock
        self.client: Any = client or _client(settings)

    def object_key(self, key: str) -> str:
        return self._prefix + check_blob_key(key)

    def begin(self, key: str) -> S3BlobWriter:
        check_blob_key(key)
        return S3BlobWriter(self, key)

    def _open(self, key: str) -> S3BlobReader:
        head = _call(self.client.head_object, Bucket=self.bucket, Key=self.object_key(key))
        return S3BlobReader(self, key, int(head["ContentLength"]))

    async def open(self, key: str) -> S3BlobReader:
        return await asyncio.to_thread(self._open, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(_call, self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key))

    def sweep(self, keep: set[str]) -> int:
        """Delete blobs under the prefix that no file version references and that are older than
        SWEEP_GRACE (another replica's upload may have put its object and not yet its metadata).
        Objects whose names are not blob keys are not ours and stay."""
        cutoff = self._clock() - SWEEP_GRACE
        orphans: list[str] = []
        with _translated():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._prefix)
            for page in pages:
                for entry in page.get("Contents", []):
                    key = str(entry["Key"])[len(self._prefix):]
                    if is_blob_key(key) and key not in keep and entry["LastModified"] < cutoff:
                        orphans.append(key)
        for key in orphans:
            _call(self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key))
        return len(orphans)
