"""Per-caller abuse limits: concurrent streams and a request rate (token bucket).

Services calling each other are trusted and not limited here (storage speaks to authz on
behalf of many callers); people and jobs are. A refusal is RESOURCE_EXHAUSTED with a
RetryInfo saying when to come back, so one caller's flood cannot starve another's downloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from securefiles.common.errors import ResourceExhausted
from securefiles.common.principal import Principal

Release = Callable[[], None]
_MAX_TRACKED = 100_000


@dataclass(frozen=True)
class LimitSettings:
    max_streams_per_caller: int = 16
    requests_per_second: float = 200.0
    burst: int = 400


class _Bucket:
    __slots__ = ("streams", "tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now
        self.streams = 0


class CallerLimits:
    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, caller: str, now: float) -> _Bucket:
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= _MAX_TRACKED:
                # Forget idle callers rather than grow without bound.
                idle = [k for k, b in self._buckets.items() if b.streams == 0]
                for key in idle[: len(idle) // 2 or 1]:
                    del self._buckets[key]
            bucket = self._buckets[caller] = _Bucket(float(self._settings.burst), now)
        return bucket

    def admit(self, principal: Principal | None, streaming: bool) -> Release:
        """Take one request (and one stream slot); return the function that gives the slot back."""
        if principal is None or principal.kind == "service":
            return _noop
        s = self._settings
        now = self._clock()
        bucket = self._bucket(principal.name, now)
        bucket.tokens = min(float(s.burst), bucket.tokens + (now - bucket.updated) * s.requests_per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / s.requests_per_second
            raise ResourceExhausted("too many requests; slow down", reason="RATE_LIMITED",
                                    metadata={"retry_after_ms": str(int(wait * 1000) + 1)}, retry_after=wait)
        if streaming and bucket.streams >= s.max_streams_per_caller:
            raise ResourceExhausted(
                f"at most {s.max_streams_per_caller} concurrent streams per caller", reason="TOO_MANY_STREAMS",
                metadata={"retry_after_ms": "1000"}, retry_after=1.0)
        bucket.tokens -= 1.0
        if not streaming:
            return _noop
        bucket.streams += 1

        def release() -> None:
            bucket.streams -= 1

        return release


def _noop() -> None:
    return None
