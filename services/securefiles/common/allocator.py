"""Large buffers stay in the process: glibc's allocator settings for the services.

Content moves in 1 MiB messages, and each becomes several fresh buffers on its way (gRPC's,
protobuf's, the cipher's, the frame sent). By default glibc serves blocks that large with `mmap`
and hands them back with `munmap`, so the kernel maps, faults in and zeroes every MiB again for
each buffer: most of storage's system time in a 10 MB upload. Above these thresholds that stops:
freed blocks are reused, and the heap keeps up to `TRIM_THRESHOLD_BYTES` of free memory at its top.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("securefiles.allocator")

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Above the largest buffer a file needs (a file is at most 10 MiB by default).
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Set the thresholds (glibc only; elsewhere nothing changes). Returns whether they were set."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    if not done:
        log.warning("allocator thresholds not accepted; large buffers are mapped and unmapped each time")
    return done
