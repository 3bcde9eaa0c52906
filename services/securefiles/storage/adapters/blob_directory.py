"""Ciphertext blobs in a local directory: written to a partial file, fsynced, renamed.

Layout: <root>/blobs/<aa>/<file id>/v<n> and <root>/partial/<random>.partial
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import uuid
from pathlib import Path

from securefiles.common.errors import InvalidArgument, NotFound, ResourceExhausted
from securefiles.common.files import fsync_directory
from securefiles.common.writeback import start_writeback

# `{file id}/v{version}`, and since every write got its own key, `-{12 hex digits}` after it.
_KEY = re.compile(r"^[0-9a-f-]{36}/v[0-9]{1,10}(-[0-9a-f]{12})?$")


def is_blob_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def check_blob_key(key: str) -> str:
    if not is_blob_key(key):
        raise InvalidArgument("invalid blob key", reason="INVALID_BLOB_KEY")
    return key


def _disk_error(error: OSError) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted("the blob store is out of space", reason="STORAGE_FULL")
    return error


class DirectoryBlobWriter:
    def __init__(self, partial: Path, final: Path) -> None:
        self._partial = partial
        self._final = final
        self._fd: int | None = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._written = 0

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as error:
            raise _disk_error(error) from None
        # Writeback starts while the rest of the upload streams in, so the fdatasync in
        # `commit` finds little left to write (figures: tests/bench/RESULTS.md).
        start_writeback(self._fd, self._written, len(data))
        self._written += len(data)

    async def commit(self) -> None:
        # fsync waits for the disk: in a thread, so the event loop serves other calls meanwhile.
        await asyncio.to_thread(self._commit)

    def _commit(self) -> None:
        assert self._fd is not None
        try:
            os.fdatasync(self._fd)  # data and size; the rename is synced with the directory
            os.close(self._fd)
            self._fd = None
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._partial, self._final)
            fsync_directory(self._final.parent)
        except OSError as error:
            raise _disk_error(error) from None

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._partial.unlink(missing_ok=True)


class DirectoryBlobReader:
    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound("the file's content is missing", reason="BLOB_MISSING") from None
        self.size = os.fstat(self._fd).st_size

    async def read_at(self, offset: int, length: int) -> bytes:
        # A local file, mostly in the page cache: not database work, read inline (a slow disk
        # would stall the loop here; the blob store in the database reads in a thread).
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DirectoryBlobStore:
    """BlobStore on a local directory."""

    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        for directory in (self._blobs, self._partial):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)

    def _path(self, key: str) -> Path:
        file_id, version = check_blob_key(key).split("/")
        return self._blobs / file_id[:2] / file_id / version

    def begin(self, key: str) -> DirectoryBlobWriter:
        return DirectoryBlobWriter(self._partial / f"{uuid.uuid4().hex}.partial", self._path(key))

    async def open(self, key: str) -> DirectoryBlobReader:
        return DirectoryBlobReader(self._path(key))

    async def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def sweep(self, keep: set[str]) -> int:
        removed = 0
        for partial in self._partial.glob("*.partial"):
            partial.unlink(missing_ok=True)
            removed += 1
        for path in self._blobs.glob("*/*/v*"):
            key = f"{path.parent.name}/{path.name}"
            if key not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
