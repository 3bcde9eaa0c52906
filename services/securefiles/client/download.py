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

from securefiles.client.transport import Transport
from securefiles.common.errors import DataLoss, FailedPrecondition, InvalidArgument, SecureFilesError
from securefiles.common.files import fsync_directory
from securefiles.common.reserved_names import AGENT_PREFIX, is_reserved_name
from securefiles.common.writeback import start_writeback
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED", "INTERNAL"})

Progress = Callable[[int, int], None]


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


def download_once(
    transport: Transport,
    resource: str,
    dest: Path,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> DownloadedFile:
    """One attempt; raises a typed error and leaves no file on any failure."""
    stub = storage_pb2_grpc.SecureFileServiceStub(transport.channel(transport.config.storage))
    stream = transport.stream(stub.DownloadSecureFile, storage_pb2.DownloadSecureFileRequest(name=resource), timeout)
    partial = dest / f"{AGENT_PREFIX}{uuid.uuid4().hex}.partial"
    fd = -1
    try:
        first = next(stream, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise DataLoss("the server sent no download header", reason="MISSING_HEADER")
        header = first.header
        name = header.secure_file.display_name
        check_file_name(name)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digest = hashlib.sha256()
        received = 0
        for message in stream:
            chunk = message.chunk
            received += len(chunk)
            if received > header.size_bytes:
                raise DataLoss("the server sent more bytes than announced", reason="SIZE_MISMATCH")
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            # Writeback begins while the rest streams in; the fsync below then has little left.
            start_writeback(fd, received - len(chunk), len(chunk))
            if progress is not None:
                progress(received, header.size_bytes)
        if received != header.size_bytes:
            raise DataLoss(f"received {received} of {header.size_bytes} bytes", reason="SIZE_MISMATCH")
        if digest.hexdigest() != header.sha256:
            raise DataLoss("downloaded content does not match its sha256", reason="CHECKSUM_MISMATCH")
        os.fsync(fd)
        written = os.fstat(fd)
        os.close(fd)
        fd = -1
        final = dest / name
        os.replace(partial, final)
        fsync_directory(dest)
        return DownloadedFile(name, final, received, header.sha256, header.secure_file, written.st_dev,
                              written.st_ino)
    except OSError as error:
        raise FailedPrecondition(f"cannot write to {dest}: {error.strerror}", reason="LOCAL_WRITE_FAILED") from None
    finally:
        if fd >= 0:
            os.close(fd)
        partial.unlink(missing_ok=True)
        stream.close()


def backoff_delays(retries: int, base: float = 0.25, cap: float = 10.0) -> list[float]:
    """Exponential backoff with full jitter, one delay per retry."""
    return [random.uniform(0, min(cap, base * 2**attempt)) for attempt in range(retries)]


def download_with_retries(
    transport: Transport,
    resource: str,
    dest: Path,
    retry_count: int = 8,
    timeout: float | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadedFile:
    """Retry transient failures only; denials, bad input and tampering fail at once."""
    delays = backoff_delays(retry_count)
    for attempt in range(retry_count + 1):
        try:
            return download_once(transport, resource, dest, timeout, progress)
        except SecureFilesError as error:
            if error.code not in TRANSIENT_CODES or attempt == retry_count:
                raise
            sleep(delays[attempt])
    raise AssertionError("unreachable")
