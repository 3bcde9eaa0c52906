"""How long completed runs are kept. A project starts a run per pipeline job; without an end the
runs table (and each run's check suites and approvals) grows with every job ever run.

A completed run is forgotten `keep` after it completed. `keep` is never shorter than a job token
can live (31 days, +1 for the clock), so no token of a forgotten run can still be valid; and the
newest run of each project stays, since run numbers are the next after the highest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from securefiles.authz.domain.pipelines import JOB_TOKEN_MAX_TTL

MIN_KEEP = dt.timedelta(seconds=JOB_TOKEN_MAX_TTL) + dt.timedelta(days=1)
DEFAULT_KEEP_DAYS = 90
BATCH = 1000


class CompletedRunStore(Protocol):
    def has_completed_runs(self, completed_before: dt.datetime) -> bool:
        """Whether any run (but a project's newest) completed before `completed_before`."""
        ...

    def forget_completed_runs(self, completed_before: dt.datetime, limit: int) -> int:
        """Remove up to `limit` runs completed before `completed_before` (never a project's newest
        run) with their check suites, approvals and approval decisions; how many runs."""
        ...


class RunRetention:
    def __init__(self, store: CompletedRunStore, keep: dt.timedelta, clock: Callable[[], dt.datetime]) -> None:
        if keep < MIN_KEEP:
            raise ValueError(f"completed runs must be kept at least {MIN_KEEP.days} days (job tokens live 31)")
        self._store = store
        self.keep = keep
        self._clock = clock

    def cutoff(self) -> dt.datetime:
        return self._clock() - self.keep

    def forget_old_runs(self, cutoff: dt.datetime, before_first: Callable[[], None], max_batches: int = 100) -> int:
        """Forget runs completed before `cutoff`, a batch (one transaction) at a time; how many.
        `before_first` (the audit entry) runs once, before anything is removed, and only if
        something will be."""
        if not self._store.has_completed_runs(cutoff):
            return 0
        before_first()
        forgotten = 0
        for _ in range(max_batches):
            done = self._store.forget_completed_runs(cutoff, BATCH)
            forgotten += done
            if done < BATCH:
                break
        return forgotten
