"""The services keep large buffers in their heap: a content buffer is not mapped, faulted in and
zeroed by the kernel afresh each time (most of storage's system time in a 10 MB upload before)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A fresh interpreter each: glibc's thresholds have not adapted to anything yet.
_PROBE = textwrap.dedent("""
    import resource, sys
    from securefiles.common.allocator import keep_large_buffers

    if sys.argv[1] == "tuned" and not keep_large_buffers():
        sys.exit(3)

    def one_message():
        buffers = [bytes(1024 * 1024) for _ in range(4)]  # a chunk, its copy, its ciphertext, its frame
        del buffers

    for _ in range(5):
        one_message()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        one_message()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=False)
    if done.returncode == 3:
        pytest.skip("not glibc: the allocator thresholds do not apply")
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_content_buffers_reuse_the_heap_once_the_thresholds_are_set() -> None:
    assert _page_faults("default") >= 1000  # the probe sees what it is meant to see
    assert _page_faults("tuned") <= 10
