"""The caller's deadline, and the share of it kept back from the calls we make while serving."""

from __future__ import annotations

import contextvars
import time
from typing import Any

import grpc

deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)

# Of the time our caller gave us, this share (within bounds) is kept back from calls to other
# services: when one of them stalls, we still answer with its name (e.g. KMS_UNAVAILABLE)
# before our caller's own deadline cuts the call off without saying why.
RESERVE_SHARE, MIN_RESERVE, MAX_RESERVE = 0.1, 0.05, 1.0


def bind_deadline(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Remember when the call being served must be answered by (None: no deadline)."""
    remaining = context.time_remaining()
    deadline_var.set(time.monotonic() + remaining if remaining is not None else None)


def outbound_timeout(default: float) -> float:
    """Deadline for a call made while serving: a little before our caller's."""
    deadline = deadline_var.get()
    if deadline is None:
        return default
    remaining = deadline - time.monotonic()
    reserve = min(MAX_RESERVE, max(MIN_RESERVE, remaining * RESERVE_SHARE))
    return max(0.001, min(default, remaining - reserve))
