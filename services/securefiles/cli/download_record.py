"""The agent's record of what it downloaded into a directory, so that `agent cleanup` removes
exactly that and nothing else.

The record lives in the download directory under a reserved name (`.securefiles-downloads.json`:
no secure file may be called that, see `common/reserved_names.py`). The directory is shared with
the job, so nothing here follows a symlink or trusts a file it did not make: every access goes
through a descriptor of the directory with O_NOFOLLOW; the record is written to a new O_EXCL
file and renamed over the old one; a record that is not a regular file of ours is ignored; and
each entry keeps the downloaded file's device and inode, so cleanup removes a name only while it
is still the very file the agent wrote.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from securefiles.common.reserved_names import AGENT_PREFIX, is_reserved_name

RECORD_NAME = f"{AGENT_PREFIX}downloads.json"
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Downloaded:
    """One file the agent wrote: its name in the directory and its identity on disk."""

    name: str
    device: int
    inode: int


@dataclass(frozen=True)
class Cleanup:
    removed: int
    kept: int  # recorded names that are no longer the file the agent wrote (replaced, moved, a symlink)
    ignored_record: bool  # the record was not a regular file of ours: nothing in it was trusted


@contextmanager
def _directory(dest: Path) -> Iterator[int]:
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def _read(dir_fd: int) -> tuple[list[Downloaded], bool]:
    """The entries of the record, and whether a record was there but not trusted."""
    try:
        # O_NONBLOCK: a FIFO planted under the record's name must not hang the agent.
        fd = os.open(RECORD_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return [], False
    except OSError:  # ELOOP: a symlink; anything else we cannot open is not ours either
        return [], True
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_size > MAX_RECORD_BYTES:
            return [], True
        raw = os.read(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    try:
        rows = json.loads(raw)
    except ValueError:
        return [], True
    if not isinstance(rows, list):
        return [], True
    entries = [Downloaded(row["name"], row["device"], row["inode"]) for row in rows
               if isinstance(row, dict) and isinstance(row.get("name"), str)
               and isinstance(row.get("device"), int) and isinstance(row.get("inode"), int)]
    return entries, False


def record(dest: Path, downloaded: Iterable[Downloaded]) -> None:
    """Add `downloaded` to the directory's record (a file downloaded again replaces its entry)."""
    with _directory(dest) as dir_fd:
        known, _ = _read(dir_fd)
        merged = {entry.name: entry for entry in known}
        for entry in downloaded:
            merged[entry.name] = entry
        body = json.dumps([{"name": e.name, "device": e.device, "inode": e.inode} for e in merged.values()])
        temporary = f"{RECORD_NAME}.{uuid.uuid4().hex}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body.encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temporary, dir_fd=dir_fd)
            raise
        os.close(fd)
        # rename replaces whatever entry has the record's name (a symlink included) without following it
        os.replace(temporary, RECORD_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)


def remove_downloaded(dest: Path) -> Cleanup:
    """Delete each recorded file that is still the one the agent wrote, then the record."""
    with _directory(dest) as dir_fd:
        entries, ignored = _read(dir_fd)
        removed = kept = 0
        for entry in entries:
            if "/" in entry.name or entry.name in ("", ".", "..") or is_reserved_name(entry.name):
                kept += 1
                continue
            try:
                info = os.lstat(entry.name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (entry.device, entry.inode):
                kept += 1
                continue
            os.unlink(entry.name, dir_fd=dir_fd)
            removed += 1
        if not ignored:
            try:
                os.unlink(RECORD_NAME, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        os.fsync(dir_fd)
    return Cleanup(removed, kept, ignored)
