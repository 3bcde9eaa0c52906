"""Repeated identical failures become one audit entry with a count per interval.

A flood of forged tokens must not write one row per request: the first failure of a kind
(method, reason, client) in an interval is written at once; the repeats are counted and
written as one entry (`repeated=N`) by the first failure after the interval ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

_MAX_KINDS = 10_000


class RepeatedFailures:
    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._kinds: dict[Hashable, tuple[float, int]] = {}  # kind -> (interval start, repeats not written)

    def count(self, kind: Hashable) -> int:
        """How many failures of this kind the entry to write now stands for (0: write none)."""
        now = self._clock()
        started, repeats = self._kinds.get(kind, (now - self._interval, 0))
        if now - started < self._interval:
            self._kinds[kind] = (started, repeats + 1)
            return 0
        if len(self._kinds) >= _MAX_KINDS:
            self._forget_quiet(now)
        self._kinds[kind] = (now, 0)
        return repeats + 1

    def _forget_quiet(self, now: float) -> None:
        """Bounded memory: kinds whose interval ended are dropped (their repeats are lost, and
        the access log still has every request)."""
        for kind in [k for k, (started, _) in self._kinds.items() if now - started >= self._interval]:
            del self._kinds[kind]
        while len(self._kinds) >= _MAX_KINDS:
            del self._kinds[next(iter(self._kinds))]
