"""How long completed runs are kept. A project starts a run per pipeline job; without an end the
runs table (and each run's check suites and approvals) grows with every job ever run.

A completed run is forgotten `keep` after it completed. `keep` is never shorter than a job token
can live (31 days, +1 for the clock), so no token of a forgotten run can still be valid; and the
newest run of each project stays, since run numbers are the next after the highest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
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


class AuditedChange(Protocol):
    def audit(self, resource: str | None = None, **details: object) -> None:
        """Name what the change's entry concerns (and facts about it)."""
        ...


class AuditedUnits(Protocol):
    """`with units() as change: ...; change.audit(...)`: the writes inside and the entry commit
    together, or neither does (`common/unit_of_work.py`'s units for a job in the service)."""

    def __call__(self) -> AbstractContextManager[AuditedChange]: ...


class RunRetention:
    def __init__(self, store: CompletedRunStore, keep: dt.timedelta, clock: Callable[[], dt.datetime],
                 units: AuditedUnits) -> None:
        if keep < MIN_KEEP:
            raise ValueError(f"completed runs must be kept at least {MIN_KEEP.days} days (job tokens live 31)")
        self._store = store
        self.keep = keep
        self._clock = clock
        self._units = units

    def cutoff(self) -> dt.datetime:
        return self._clock() - self.keep

    def forget_old_runs(self, cutoff: dt.datetime, max_batches: int = 100) -> int:
        """Forget runs completed before `cutoff`, a batch at a time; how many. Each batch that
        removes runs commits with its audit entry (how many, completed before when), or not at all."""
        if not self._store.has_completed_runs(cutoff):  # a read: no write lock taken for nothing
            return 0
        forgotten = 0
        for _ in range(max_batches):
            with self._units() as change:
                done = self._store.forget_completed_runs(cutoff, BATCH)
                if done:
                    change.audit("runs", completed_before=cutoff.isoformat(), runs=done)
            forgotten += done
            if done < BATCH:
                break
        return forgotten
