"""Processes that hold plaintext or unwrapped keys write no core file: a crash must not put either
on disk (storage holds file contents, kms unwrapped keys, the parser workers parsed plaintext)."""

from __future__ import annotations

import resource


def refuse_core_dumps() -> None:
    """Hard limit 0: neither this process nor anything it starts can raise it again."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
