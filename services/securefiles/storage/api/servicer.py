"""gRPC face of storage: stream framing, validation of message shapes, conversion."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import empty_pb2

from securefiles.common.call_context import audit_items, audit_note, current_principal
from securefiles.common.errors import DeadlineExceeded, InvalidArgument
from securefiles.common.paging import keyset_page, sort_key
from securefiles.common.principal import Principal
from securefiles.common.proto_time import to_timestamp
from securefiles.common.resource_names import file_version_name, parse_region
from securefiles.common.update_mask import read_mask
from securefiles.storage.api.typed_metadata import set_typed_metadata
from securefiles.storage.domain.file_refs import by_display_name, by_name, one_file
from securefiles.storage.domain.model import FileVersion, LibrarySettings, SecureFile
from securefiles.storage.domain.ports import FileRepository
from securefiles.storage.domain.rewrap import DataKeyRewrapper, version_counts
from securefiles.storage.domain.service import CHUNK_BYTES, SecureFiles, UploadRequest
from securefiles.storage.domain.versioning import Versioning
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger("securefiles.storage")


def secure_file_message(f: SecureFile) -> storage_pb2.SecureFile:
    message = storage_pb2.SecureFile(
        name=f.name, secure_file_id=f.file_id, display_name=f.display_name, size_bytes=f.current.size,
        sha256=f.current.sha256, properties=f.properties, create_time=to_timestamp(f.created_at),
        update_time=to_timestamp(f.updated_at), created_by=f.created_by, version=f.current.version,
        key_version=f.current.key_version_name, expire_time=to_timestamp(f.current.expires_at), etag=f.etag,
    )
    set_typed_metadata(message, f.current.metadata)
    return message


def version_message(v: FileVersion, of: SecureFile) -> storage_pb2.SecureFileVersion:
    message = storage_pb2.SecureFileVersion(
        name=file_version_name(of.name, v.version), version=v.version, size_bytes=v.size, sha256=v.sha256,
        create_time=to_timestamp(v.created_at), created_by=v.created_by, key_version=v.key_version_name,
        current=v.version == of.current.version,
        expire_time=to_timestamp(v.expires_at),
    )
    set_typed_metadata(message, v.metadata)
    return message


async def _first_metadata(requests: AsyncIterator[Any], kind: str) -> tuple[Any, AsyncIterator[Any]]:
    iterator = aiter(requests)
    first = await anext(iterator, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        raise InvalidArgument(f"the first message must carry the {kind}", reason="MISSING_METADATA")
    return first.metadata, iterator


class UploadStream:
    """The chunks after the metadata, ending with the commit message that makes them a file."""

    def __init__(self, requests: AsyncIterator[Any], idle_seconds: float) -> None:
        self._requests = requests
        self._idle = idle_seconds
        self._commit: storage_pb2.UploadCommit | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                request = await asyncio.wait_for(anext(self._requests, None), self._idle)
            except TimeoutError:
                raise DeadlineExceeded(f"no data for {self._idle:.0f}s; upload abandoned",
                                       reason="STREAM_IDLE") from None
            if request is None:
                if self._commit is None:
                    # A client that crashed or cancelled ends the stream too: store nothing.
                    raise InvalidArgument("the upload ended without its commit message; nothing was stored",
                                          reason="INCOMPLETE_UPLOAD")
                return
            kind = request.WhichOneof("payload")
            if self._commit is not None:
                raise InvalidArgument("nothing may follow the commit message", reason="DATA_AFTER_COMMIT")
            if kind == "commit":
                self._commit = request.commit
                continue
            if kind == "metadata":
                raise InvalidArgument("metadata may only be sent once, first", reason="DUPLICATE_METADATA")
            if kind != "chunk":
                raise InvalidArgument("each message after the first must carry a chunk", reason="MISSING_CHUNK")
            if len(request.chunk) > CHUNK_BYTES:
                raise InvalidArgument(f"chunks may be at most {CHUNK_BYTES} bytes", reason="CHUNK_TOO_LARGE")
            yield request.chunk

    def verify(self, size: int, sha256: str) -> None:
        """What arrived is what the client says it sent."""
        assert self._commit is not None
        if self._commit.size_bytes != size:
            raise InvalidArgument(f"received {size} bytes but the commit says {self._commit.size_bytes}",
                                  reason="SIZE_MISMATCH")
        if self._commit.sha256 and self._commit.sha256.lower() != sha256:
            raise InvalidArgument("received content does not match the commit's sha256", reason="CHECKSUM_MISMATCH")


_CHUNK_TAG = bytes([(storage_pb2.DownloadSecureFileResponse.CHUNK_FIELD_NUMBER << 3) | 2])  # length-delimited


def chunk_frame(chunk: bytes) -> bytes:
    """`DownloadSecureFileResponse(chunk=chunk)` serialized, built with a single copy of `chunk`."""
    size, length = len(chunk), bytearray()
    while size > 0x7F:
        length.append((size & 0x7F) | 0x80)
        size >>= 7
    length.append(size)
    return b"".join((_CHUNK_TAG, length, chunk))


def _counts(counts: dict[str, int]) -> list[storage_pb2.KeyVersionCount]:
    return [storage_pb2.KeyVersionCount(key_version=k, data_keys=n) for k, n in counts.items()]


class SecureFileServicer(storage_pb2_grpc.SecureFileServiceServicer):
    def __init__(
        self, files: SecureFiles, versioning: Versioning, rewrapper: DataKeyRewrapper, repository: FileRepository,
        require_operator: Callable[[Principal], Awaitable[None]], stream_idle_seconds: float = 30.0,
    ) -> None:
        self._idle = stream_idle_seconds
        self._files = files
        self._versioning = versioning
        self._rewrapper = rewrapper
        self._repository = repository
        self._require_operator = require_operator

    @staticmethod
    def _region(key_ring: str) -> str | None:
        return parse_region(key_ring) if key_ring else None

    async def RewrapDataKeys(
        self, request: storage_pb2.RewrapDataKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.RewrapDataKeysResponse:
        await self._require_operator(current_principal())
        report = await self._rewrapper.rewrap(self._region(request.parent))
        log.info("data keys rewrapped", extra={"key_ring": request.parent or "regions/-",
                                               "rewrapped": report.rewrapped, "failed": report.failed})
        return storage_pb2.RewrapDataKeysResponse(
            before=_counts(report.before), after=_counts(report.after), rewrapped=report.rewrapped,
            failed=report.failed,
        )

    async def CountDataKeys(
        self, request: storage_pb2.CountDataKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.CountDataKeysResponse:
        await self._require_operator(current_principal())
        return storage_pb2.CountDataKeysResponse(
            counts=_counts(await version_counts(self._repository, self._region(request.parent)))
        )

    async def UploadSecureFile(
        self, request_iterator: AsyncIterator[storage_pb2.UploadSecureFileRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> storage_pb2.SecureFile:
        caller = current_principal()
        meta, iterator = await _first_metadata(request_iterator, "file's metadata")
        stream = UploadStream(iterator, self._idle)
        request = UploadRequest(
            parent=meta.parent, display_name=meta.secure_file.display_name,
            properties=dict(meta.secure_file.properties),
            expected_size=meta.expected_size_bytes, parse_password=meta.parse_password or None,
            verify=stream.verify,
        )
        audit_note(request.parent, display_name=request.display_name)
        created = await self._files.upload(caller, request, stream.chunks())
        audit_note(created.name, size=created.current.size, key_version=created.current.key_version_name)
        return secure_file_message(created)

    async def GetSecureFile(
        self, request: storage_pb2.GetSecureFileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.SecureFile:
        return secure_file_message(await self._files.get(current_principal(), request.name))

    async def ListSecureFiles(
        self, request: storage_pb2.ListSecureFilesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.ListSecureFilesResponse:
        files, token = await self._files.list(
            current_principal(), request.parent, request.page_size, request.page_token, request.filter)
        return storage_pb2.ListSecureFilesResponse(
            secure_files=[secure_file_message(f) for f in files], next_page_token=token
        )

    async def UpdateSecureFile(
        self, request: storage_pb2.UpdateSecureFileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.SecureFile:
        wanted = request.secure_file
        paths = list(request.update_mask.paths)
        if not paths:  # no mask: the fields that are set (AIP-134)
            paths = [path for path, given in (("display_name", wanted.display_name),
                                              ("properties", wanted.properties)) if given]
        mask = read_mask(paths, ("display_name", "properties"), maps=("properties",))
        changes = {key: wanted.properties.get(key) for key in mask.map_keys.get("properties", ())}
        updated = await self._files.update(
            current_principal(), wanted.name,
            wanted.display_name if "display_name" in mask.fields else None,
            dict(wanted.properties) if "properties" in mask.fields else None,
            wanted.etag, changes or None,
        )
        return secure_file_message(updated)

    async def DeleteSecureFile(
        self, request: storage_pb2.DeleteSecureFileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        await self._files.delete(current_principal(), request.name)
        return empty_pb2.Empty()

    async def DownloadSecureFile(
        self, request: storage_pb2.DownloadSecureFileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[storage_pb2.DownloadSecureFileResponse]:
        ref = one_file(request.name, request.parent, request.display_name)
        download = await self._files.download(current_principal(), ref)
        f = download.secure_file
        audit_note(f.name, display_name=f.display_name, version=f.current.version,
                   key_version=f.current.key_version_name, run=_run_of(current_principal()))
        if download.break_glass:
            audit_note(break_glass="true", access_request=download.break_glass)
        yield storage_pb2.DownloadSecureFileResponse(
            header=storage_pb2.DownloadHeader(
                secure_file=secure_file_message(f), size_bytes=f.current.size, sha256=f.current.sha256
            )
        )
        async for chunk in download.chunks:
            # In wire form at once: no message object and no second copy of the chunk.
            frame = chunk_frame(chunk)
            del chunk
            yield frame  # type: ignore[misc]  # bytes: the interceptor's serializer passes them through

    async def DownloadSecureFiles(
        self, request: storage_pb2.DownloadSecureFilesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[storage_pb2.DownloadSecureFileResponse]:
        caller = current_principal()
        if request.display_names and not request.parent:
            raise InvalidArgument("display_names are looked up in a parent: give it", reason="INVALID_RESOURCE_NAME")
        refs = [by_name(name) for name in request.names]
        refs += [by_display_name(request.parent, display_name) for display_name in request.display_names]
        downloads = await self._files.download_many(caller, refs)
        run = _run_of(caller)
        # One entry per file, as DownloadSecureFile writes, all before the first byte goes out.
        audit_items([(d.secure_file.name, {"display_name": d.secure_file.display_name,
                                           "version": d.secure_file.current.version,
                                           "key_version": d.secure_file.current.key_version_name, "run": run})
                     for d in downloads])
        for download in downloads:
            f = download.secure_file
            yield storage_pb2.DownloadSecureFileResponse(header=storage_pb2.DownloadHeader(
                secure_file=secure_file_message(f), size_bytes=f.current.size, sha256=f.current.sha256))
            async for chunk in download.chunks:
                frame = chunk_frame(chunk)
                del chunk
                yield frame  # type: ignore[misc]  # bytes: the interceptor's serializer passes them through

    async def ReplaceSecureFileContent(
        self, request_iterator: AsyncIterator[storage_pb2.ReplaceSecureFileContentRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> storage_pb2.SecureFile:
        caller = current_principal()
        meta, iterator = await _first_metadata(request_iterator, "replacement's metadata")
        audit_note(meta.name, reason=meta.reason)
        stream = UploadStream(iterator, self._idle)
        updated = await self._versioning.replace(
            caller, meta.name, meta.reason, stream.chunks(), meta.expected_size_bytes, meta.parse_password or None,
            stream.verify)
        audit_note(updated.name, reason=meta.reason, version=updated.current.version,
                   key_version=updated.current.key_version_name)
        return secure_file_message(updated)

    async def ListSecureFileVersions(
        self, request: storage_pb2.ListSecureFileVersionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.ListSecureFileVersionsResponse:
        found, versions = await self._versioning.versions(current_principal(), request.parent)
        # Bound to the file's id, not to the name asked for: a rename does not break the next page.
        page, token = keyset_page(versions, lambda v: sort_key(v.version), found.name, "", request.page_size,
                                  request.page_token, descending=True)
        return storage_pb2.ListSecureFileVersionsResponse(
            versions=[version_message(v, found) for v in page], next_page_token=token)

    async def GetSecureFileVersion(
        self, request: storage_pb2.GetSecureFileVersionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.SecureFileVersion:
        found, version = await self._versioning.version(current_principal(), request.name)
        return version_message(version, found)

    async def RollbackSecureFile(
        self, request: storage_pb2.RollbackSecureFileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> storage_pb2.SecureFile:
        updated = await self._versioning.rollback(current_principal(), request.name, request.version, request.reason)
        audit_note(updated.name, reason=request.reason, version=request.version)
        return secure_file_message(updated)

    async def GetLibrary(self, request: storage_pb2.GetLibraryRequest, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> storage_pb2.Library:
        return _library(await self._versioning.get_library(current_principal(), request.name))

    async def UpdateLibrary(self, request: storage_pb2.UpdateLibraryRequest, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> storage_pb2.Library:
        updatable = ("allow_replace", "keep_versions")
        paths = read_mask(request.update_mask.paths or updatable, updatable).fields
        library = request.library
        audit_note(library.name, **{path: getattr(library, path) for path in sorted(paths)})
        updated = await self._versioning.update_library(
            current_principal(), library.name,
            library.allow_replace if "allow_replace" in paths else None,
            library.keep_versions if "keep_versions" in paths else None,
            library.etag,
        )
        return _library(updated)


def _library(settings: LibrarySettings) -> storage_pb2.Library:
    return storage_pb2.Library(name=f"projects/{settings.project}/library", allow_replace=settings.allow_replace,
                               keep_versions=settings.keep_versions, etag=settings.etag)


def _run_of(principal: Principal) -> str:
    """The run a download is made for (an operator's break-glass download has none)."""
    return principal.job.run if principal.job is not None else ""
