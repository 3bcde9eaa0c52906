"""Start writing dirty pages to disk early, so that the fsync at the end has little left.

`sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)` (Linux) queues the pages of a
range for writeback and returns at once. It guarantees nothing by itself: durability is
still the job of the `fdatasync` before a blob is renamed into place. Where the call is
missing (not Linux, not glibc), `start_writeback` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_sync_file_range = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing `length` bytes at `offset` of `fd` (a hint; errors
    surface at the fsync)."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
