"""One access-log line per call: method, code, reason, caller, duration (never payloads)."""

from __future__ import annotations

import logging
import time
from typing import Any

from securefiles.common.call_context import principal_var

log = logging.getLogger("securefiles.rpc")


def log_call(method: str, code: str, reason: str = "", started: float | None = None) -> None:
    principal = principal_var.get()
    extra: dict[str, Any] = {"method": method, "code": code}
    if reason:
        extra["reason"] = reason
    if principal is not None:
        extra["principal"] = principal.name
    if started is not None:
        extra["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    log.info("rpc", extra=extra)
