"""Storing one version of a file's content: a fresh data key, the segmented ciphertext blob,
and the typed metadata parsed from the plaintext in memory (never written anywhere)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable

from securefiles.common.errors import InvalidArgument
from securefiles.storage.domain.file_metadata import FileMetadata, parse_file_metadata
from securefiles.storage.domain.metadata_caps import cap_metadata, json_size
from securefiles.storage.domain.model import FileVersion, content_aad, encryption_context
from securefiles.storage.domain.ports import (
    BlobStore,
    BlobWriter,
    DataKeys,
    MetadataParser,
    NoEvents,
    OperationalEvents,
)
from securefiles.storage.domain.segment_cipher import SegmentEncryptor

log = logging.getLogger("securefiles.storage")

PARSE_TIMEOUT_SECONDS = 5.0
# Certificates, profiles, keystores and keys are small; larger content is not kept for parsing.
PARSE_LIMIT_BYTES = 4 * 1024 * 1024


TIMED_OUT = FileMetadata({"type": "unknown", "parse_error": "parsing timed out"}, None)
PARSER_BUSY = FileMetadata(
    {"type": "unknown", "parse_skipped": "the metadata parser was busy; stored without metadata"}, None)


class ThreadParser:
    """Parses in a worker thread of this process: for tests and tools. The service parses in
    separate processes (adapters/parser_pool.py): a thread cannot be stopped at its deadline, and
    it shares the interpreter lock with every request."""

    def __init__(self, events: OperationalEvents | None = None) -> None:
        self._events = events or NoEvents()

    async def parse(self, name: str, plaintext: bytes, password: bytes | None) -> FileMetadata:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(parse_file_metadata, name, plaintext, password), PARSE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("metadata parsing timed out", extra={"file_name_length": len(name)})
            self._events.metadata_parse_timed_out()
            return TIMED_OUT


class ContentStore:
    """Writes content versions; the caller makes them visible (or discards them)."""

    def __init__(self, blobs: BlobStore, keys: DataKeys, max_file_bytes: int,
                 parser: MetadataParser | None = None) -> None:
        self._blobs = blobs
        self._keys = keys
        self.max_file_bytes = max_file_bytes
        self._parser = parser or ThreadParser()

    def check_declared_size(self, expected_size: int) -> None:
        if expected_size < 0 or expected_size > self.max_file_bytes:
            raise InvalidArgument(f"files may be at most {self.max_file_bytes} bytes", reason="FILE_TOO_LARGE",
                                  metadata={"max_bytes": str(self.max_file_bytes)})

    async def store(
        self, *, project: str, file_id: str, version: int, region: str, display_name: str,
        chunks: AsyncIterator[bytes], expected_size: int, parse_password: bytes | None, created_by: str,
        now: dt.datetime, verify: Callable[[int, str], None] | None = None,
        new_key: tuple[bytes, bytes, str] | None = None,
    ) -> FileVersion:
        """Encrypt `chunks` under a new data key (`new_key`, if already fetched) into a committed
        blob; on failure nothing remains."""
        self.check_declared_size(expected_size)
        data_key, wrapped, key_version = new_key or await self.new_data_key(project, file_id, version, region)
        # Every write its own key: two writers of one version never write (or clean up) each other's blob.
        blob_key = f"{file_id}/v{version}-{secrets.token_hex(6)}"
        plaintext: list[bytes] = []  # chunks held for the metadata parser only; dropped below
        try:
            size, sha256, writer = await self._write_blob(
                blob_key, data_key, content_aad(project, file_id, version), chunks, expected_size, plaintext)
        finally:
            del data_key
        if verify is not None:
            try:
                verify(size, sha256)
            except BaseException:
                writer.abort()
                plaintext.clear()
                raise
        # Make the blob durable (fsync) while the plaintext is parsed: both off the event loop.
        committed = asyncio.create_task(writer.commit())
        try:
            if size <= PARSE_LIMIT_BYTES:
                parsed = await self._parser.parse(display_name, b"".join(plaintext), parse_password)
            else:
                parsed = FileMetadata({"type": "unknown", "parse_skipped": "larger than 4 MiB"}, None)
            await committed
        except BaseException:
            await asyncio.gather(committed, return_exceptions=True)
            writer.abort()
            await self._blobs.delete(blob_key)
            raise
        finally:
            plaintext.clear()
        metadata = cap_metadata(parsed.metadata)
        return FileVersion(
            version=version, size=size, sha256=sha256, blob_key=blob_key, wrapped_key=wrapped, key_region=region,
            key_version=int(key_version.rsplit("/", 1)[1]), created_at=now, created_by=created_by,
            metadata=metadata, expires_at=parsed.expires_at, metadata_bytes=json_size(metadata),
        )

    async def new_data_key(self, project: str, file_id: str, version: int, region: str) -> tuple[bytes, bytes, str]:
        """(plaintext, wrapped, key version) bound to this file version."""
        return await self._keys.generate(region, encryption_context(project, file_id, version))

    async def discard(self, version: FileVersion) -> None:
        await self._blobs.delete(version.blob_key)

    async def _write_blob(
        self, blob_key: str, data_key: bytes, aad: bytes, chunks: AsyncIterator[bytes], expected_size: int,
        plaintext: list[bytes],
    ) -> tuple[int, str, BlobWriter]:
        """Receive and encrypt everything; the returned writer still has to commit."""
        encryptor = SegmentEncryptor(data_key, aad)
        digest = hashlib.sha256()
        size = 0
        writer = self._blobs.begin(blob_key)
        try:
            writer.write(encryptor.header.encode())
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_file_bytes:
                    raise InvalidArgument(f"files may be at most {self.max_file_bytes} bytes",
                                          reason="FILE_TOO_LARGE", metadata={"max_bytes": str(self.max_file_bytes)})
                if size <= PARSE_LIMIT_BYTES:
                    plaintext.append(chunk)
                digest.update(chunk)
                for segment in encryptor.update(chunk):
                    writer.write(segment)
            writer.write(encryptor.finalize())
            if expected_size and size != expected_size:
                raise InvalidArgument(f"received {size} bytes but {expected_size} were declared",
                                      reason="SIZE_MISMATCH")
        except BaseException:
            writer.abort()
            plaintext.clear()
            raise
        return size, digest.hexdigest(), writer
