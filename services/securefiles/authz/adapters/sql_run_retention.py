"""Forgetting old completed runs in SQL: the run, its check suites, its approvals and their decisions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, Select, and_, delete, exists, select, tuple_
from sqlalchemy.orm import aliased

from securefiles.authz.adapters.sql_checks import approval_decisions, approvals, check_suites
from securefiles.authz.adapters.sql_repository import runs
from securefiles.authz.domain.model import RunState
from securefiles.common.db import read_transaction, write_transaction

_later = aliased(runs)


def _candidates(completed_before: dt.datetime, limit: int) -> Select[tuple[str, int]]:
    # Index ix_runs_state_completed finds them; a project's newest run stays (its number is the one
    # the next run counts from).
    return select(runs.c.project, runs.c.run_id).where(
        runs.c.state == RunState.COMPLETED.value, runs.c.completed_at < completed_before,
        exists().where(and_(_later.c.project == runs.c.project, _later.c.run_id > runs.c.run_id)),
    ).limit(limit)


class SqlCompletedRunStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def has_completed_runs(self, completed_before: dt.datetime) -> bool:
        with read_transaction(self._engine) as conn:
            return conn.execute(_candidates(completed_before, 1)).first() is not None

    def forget_completed_runs(self, completed_before: dt.datetime, limit: int) -> int:
        with write_transaction(self._engine) as conn:
            victims = [tuple(row) for row in conn.execute(_candidates(completed_before, limit))]
            for start in range(0, len(victims), 200):
                chunk = victims[start:start + 200]
                doomed = select(approvals.c.project, approvals.c.approval_id).where(
                    tuple_(approvals.c.project, approvals.c.run_id).in_(chunk))
                conn.execute(delete(approval_decisions).where(
                    tuple_(approval_decisions.c.project, approval_decisions.c.approval_id).in_(doomed)))
                conn.execute(delete(approvals).where(tuple_(approvals.c.project, approvals.c.run_id).in_(chunk)))
                conn.execute(delete(check_suites).where(
                    tuple_(check_suites.c.project, check_suites.c.run_id).in_(chunk)))
                conn.execute(delete(runs).where(tuple_(runs.c.project, runs.c.run_id).in_(chunk)))
        return len(victims)
