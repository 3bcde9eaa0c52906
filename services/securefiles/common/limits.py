"""Per-caller abuse limits: concurrent streams and a request rate (token bucket), and before
authentication a budget of failed authentications per client address and client certificate.

Services calling each other are trusted and not limited here (storage speaks to authz on
behalf of many callers); people and jobs are. A refusal is RESOURCE_EXHAUSTED with a
RetryInfo saying when to come back, so one caller's flood cannot starve another's downloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from securefiles.common.errors import ResourceExhausted
from securefiles.common.metrics import RATE_LIMIT_REJECTIONS
from securefiles.common.principal import Principal

Release = Callable[[], None]
_MAX_TRACKED = 100_000


@dataclass(frozen=True)
class LimitSettings:
    max_streams_per_caller: int = 16
    requests_per_second: float = 200.0
    burst: int = 400
    # Failed authentications per client address / certificate: past the burst, that client is
    # refused before its token is even looked at (a flood of forged tokens costs no signature
    # checks and no audit rows).
    auth_failures_per_second: float = 10.0
    auth_failure_burst: int = 100


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

    def _bucket(self, caller: str, now: float, burst: int | None = None) -> _Bucket:
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= _MAX_TRACKED:
                # Forget idle callers rather than grow without bound.
                idle = [k for k, b in self._buckets.items() if b.streams == 0]
                for key in idle[: len(idle) // 2 or 1]:
                    del self._buckets[key]
            bucket = self._buckets[caller] = _Bucket(float(self._settings.burst if burst is None else burst), now)
        return bucket

    def _refill(self, key: str, rate: float, burst: int, now: float) -> _Bucket:
        bucket = self._bucket(key, now, burst)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def before_authentication(self, clients: tuple[str, ...]) -> None:
        """RESOURCE_EXHAUSTED while any of `clients` (address, certificate) has used up its failed
        authentications."""
        s = self._settings
        now = self._clock()
        for client in clients:
            bucket = self._refill(client, s.auth_failures_per_second, s.auth_failure_burst, now)
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / s.auth_failures_per_second
                RATE_LIMIT_REJECTIONS.labels("AUTHENTICATION_THROTTLED").inc()
                raise ResourceExhausted("too many failed authentications from this client; slow down",
                                        reason="AUTHENTICATION_THROTTLED",
                                        metadata={"retry_after_ms": str(int(wait * 1000) + 1)}, retry_after=wait)

    def authentication_failed(self, clients: tuple[str, ...]) -> None:
        s = self._settings
        now = self._clock()
        for client in clients:
            bucket = self._refill(client, s.auth_failures_per_second, s.auth_failure_burst, now)
            bucket.tokens = max(bucket.tokens - 1.0, 0.0)

    def admit(self, principal: Principal | None, streaming: bool) -> Release:
        """Take one request (and one stream slot); return the function that gives the slot back."""
        if principal is None or principal.kind == "service":
            return _noop
        s = self._settings
        now = self._clock()
        bucket = self._bucket("principal:" + principal.name, now)
        bucket.tokens = min(float(s.burst), bucket.tokens + (now - bucket.updated) * s.requests_per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / s.requests_per_second
            RATE_LIMIT_REJECTIONS.labels("RATE_LIMITED").inc()
            raise ResourceExhausted("too many requests; slow down", reason="RATE_LIMITED",
                                    metadata={"retry_after_ms": str(int(wait * 1000) + 1)}, retry_after=wait)
        if streaming and bucket.streams >= s.max_streams_per_caller:
            RATE_LIMIT_REJECTIONS.labels("TOO_MANY_STREAMS").inc()
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
