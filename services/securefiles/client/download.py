"""Download one secure file to disk safely: private partial file, fsync, sha256, rename.

A failed, interrupted or tampered download leaves nothing behind, and an error message
is never written into the file.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from securefiles.client.transport import Transport
from securefiles.common.errors import DataLoss, FailedPrecondition, InvalidArgument, SecureFilesError
from securefiles.common.files import fsync_directory
from securefiles.common.reserved_names import AGENT_PREFIX, is_reserved_name
from securefiles.common.writeback import start_writeback
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED", "INTERNAL"})

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class DownloadedFile:
    """Where a secure file landed and what it is."""

    name: str
    path: Path
    size: int
    sha256: str
    secure_file: storage_pb2.SecureFile
    device: int = 0  # identity of the file written (st_dev, st_ino): cleanup removes only that file
    inode: int = 0


def prepare_destination(dest: Path) -> Path:
    """Create the destination directory (0700 when we create it)."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not dest.is_dir():
        raise InvalidArgument(f"{dest} is not a directory", reason="INVALID_DESTINATION")
    return dest


def check_file_name(name: str) -> None:
    """A name from the server becomes a file in the job's directory only if it is one plain name,
    without control characters (a line break would split the log lines that carry it), and not
    one of the agent's own (`.securefiles-…`)."""
    if not name or "/" in name or name in (".", "..") or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise DataLoss("the server sent an unusable file name", reason="INVALID_HEADER")
    if is_reserved_name(name):
        raise DataLoss(f"the server sent a file name reserved for the agent's own files ({AGENT_PREFIX}…)",
                       reason="RESERVED_NAME")


class _PartialFile:
    """One file of a download as it streams in: a private partial file, hashed as written, renamed
    into place once complete and verified (`finish`), or removed (`abort`)."""

    def __init__(self, dest: Path, header: storage_pb2.DownloadHeader) -> None:
        self._dest = dest
        self._header = header
        self.name = header.secure_file.display_name
        check_file_name(self.name)
        self._partial = dest / f"{AGENT_PREFIX}{uuid.uuid4().hex}.partial"
        self._fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._digest = hashlib.sha256()
        self.received = 0
        self.size = header.size_bytes

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self._header.size_bytes:
            raise DataLoss("the server sent more bytes than announced", reason="SIZE_MISMATCH")
        self._digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view):]
        # Writeback begins while the rest streams in; the fsync in `finish` then has little left.
        start_writeback(self._fd, self.received - len(chunk), len(chunk))

    def finish(self) -> DownloadedFile:
        header = self._header
        if self.received != header.size_bytes:
            raise DataLoss(f"received {self.received} of {header.size_bytes} bytes", reason="SIZE_MISMATCH")
        if self._digest.hexdigest() != header.sha256:
            raise DataLoss("downloaded content does not match its sha256", reason="CHECKSUM_MISMATCH")
        os.fsync(self._fd)
        written = os.fstat(self._fd)
        os.close(self._fd)
        self._fd = -1
        final = self._dest / self.name
        os.replace(self._partial, final)
        fsync_directory(self._dest)
        return DownloadedFile(self.name, final, self.received, header.sha256, header.secure_file, written.st_dev,
                              written.st_ino)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._partial.unlink(missing_ok=True)


def download_once(
    transport: Transport,
    request: storage_pb2.DownloadSecureFileRequest,
    dest: Path,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> DownloadedFile:
    """One attempt; raises a typed error and leaves no file on any failure."""
    stub = storage_pb2_grpc.SecureFileServiceStub(transport.channel(transport.config.storage))
    stream = transport.stream(stub.DownloadSecureFile, request, timeout)
    partial: _PartialFile | None = None
    try:
        first = next(stream, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise DataLoss("the server sent no download header", reason="MISSING_HEADER")
        partial = _PartialFile(dest, first.header)
        for message in stream:
            partial.write(message.chunk)
            if progress is not None:
                progress(partial.received, first.header.size_bytes)
        return partial.finish()
    except OSError as error:
        raise FailedPrecondition(f"cannot write to {dest}: {error.strerror}", reason="LOCAL_WRITE_FAILED") from None
    finally:
        if partial is not None:
            partial.abort()
        stream.close()


def download_many_once(
    transport: Transport,
    request: storage_pb2.DownloadSecureFilesRequest,
    dest: Path,
    timeout: float | None = None,
    progress: Callable[[str], Progress | None] | None = None,
) -> list[DownloadedFile]:
    """One attempt at several files in one stream (`DownloadSecureFiles`); all of them, or (on any
    failure) none: what this attempt already wrote is removed."""
    stub = storage_pb2_grpc.SecureFileServiceStub(transport.channel(transport.config.storage))
    stream = transport.stream(stub.DownloadSecureFiles, request, timeout)
    done: list[DownloadedFile] = []
    partial: _PartialFile | None = None
    shown: Progress | None = None
    try:
        for message in stream:
            if message.WhichOneof("payload") == "header":
                if partial is not None:
                    done.append(partial.finish())
                partial = _PartialFile(dest, message.header)
                if any(d.name == partial.name for d in done):
                    raise DataLoss("the server sent one file twice", reason="DUPLICATE_FILE")
                shown = progress(partial.name) if progress is not None else None
                continue
            if partial is None:
                raise DataLoss("the server sent no download header", reason="MISSING_HEADER")
            partial.write(message.chunk)
            if shown is not None:
                shown(partial.received, partial.size)
        if partial is not None:
            done.append(partial.finish())
            partial = None
        wanted = len(set(request.names)) + len(set(request.display_names))
        if len(done) != wanted:
            raise DataLoss(f"the server sent {len(done)} of {wanted} files", reason="MISSING_FILES")
        return done
    except BaseException as error:
        for downloaded in done:
            downloaded.path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise FailedPrecondition(f"cannot write to {dest}: {error.strerror}",
                                     reason="LOCAL_WRITE_FAILED") from None
        raise
    finally:
        if partial is not None:
            partial.abort()
        stream.close()


def backoff_delays(retries: int, base: float = 0.25, cap: float = 10.0) -> list[float]:
    """Exponential backoff with full jitter, one delay per retry."""
    return [random.uniform(0, min(cap, base * 2**attempt)) for attempt in range(retries)]


def with_retries(attempt: Callable[[], T], retry_count: int = 8, sleep: Callable[[float], None] = time.sleep) -> T:
    """Retry transient failures only; denials, bad input and tampering fail at once."""
    delays = backoff_delays(retry_count)
    for tried in range(retry_count + 1):
        try:
            return attempt()
        except SecureFilesError as error:
            if error.code not in TRANSIENT_CODES or tried == retry_count:
                raise
            sleep(delays[tried])
    raise AssertionError("unreachable")


def download_with_retries(
    transport: Transport,
    request: storage_pb2.DownloadSecureFileRequest,
    dest: Path,
    retry_count: int = 8,
    timeout: float | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadedFile:
    """One file; transient failures are retried."""
    return with_retries(lambda: download_once(transport, request, dest, timeout, progress), retry_count, sleep)
