"""Completed runs are forgotten once old (with their check suites, approvals and decisions), so
that the runs a project ever had do not grow its tables forever; running runs, recent ones and
each project's newest run stay, and run numbers are never reused."""

from __future__ import annotations

import datetime as dt

import pytest

from securefiles.authz.adapters.sql_run_retention import SqlCompletedRunStore
from securefiles.authz.domain.checks import CheckType
from securefiles.authz.domain.run_retention import MIN_KEEP, RunRetention
from securefiles.common.errors import Unauthenticated
from tests.unit.test_checks import ADMIN, FILE, add, authz, clock, decide, decision, start  # noqa: F401


def _retention(authz, clock, days: int = 90) -> RunRetention:  # noqa: F811
    return RunRetention(SqlCompletedRunStore(authz._repo._engine), dt.timedelta(days=days), clock)


def _count(authz, table: str) -> int:  # noqa: F811
    with authz._repo._engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


def test_old_completed_runs_go_with_their_suites_and_approvals(authz, clock) -> None:  # noqa: F811
    add(authz, CheckType.APPROVAL, approvers=["user:bob"], min_approvals=1)
    old = [start(authz) for _ in range(3)]
    for job in old:
        assert decision(authz, job) == "PENDING"
        decide(authz, "user:bob", job)
        authz.pipelines.complete_run(ADMIN, authz.active_run_of(job).name)
    clock.advance(days=100)
    recent = start(authz)
    decision(authz, recent)
    authz.pipelines.complete_run(ADMIN, authz.active_run_of(recent).name)
    running = start(authz)
    decision(authz, running)
    before = {table: _count(authz, table) for table in ("runs", "check_suites", "approvals", "approval_decisions")}
    assert before == {"runs": 5, "check_suites": 5, "approvals": 5, "approval_decisions": 3}

    recorded: list[str] = []
    retention = _retention(authz, clock)
    assert retention.forget_old_runs(retention.cutoff(), lambda: recorded.append("entry")) == 3
    assert recorded == ["entry"]  # the audit entry went first, once
    assert {table: _count(authz, table) for table in before} == {
        "runs": 2, "check_suites": 2, "approvals": 2, "approval_decisions": 0}
    assert decision(authz, running) == "PENDING"  # the running run is untouched
    with pytest.raises(Unauthenticated):
        authz.active_run_of(old[0])  # a forgotten run's token (long expired anyway) gets nothing
    assert retention.forget_old_runs(retention.cutoff(), lambda: recorded.append("entry")) == 0
    assert recorded == ["entry"]  # nothing to forget: no entry either


def test_a_projects_newest_run_stays_so_run_numbers_are_never_reused(authz, clock) -> None:  # noqa: F811
    jobs = [start(authz) for _ in range(2)]
    for job in jobs:
        authz.pipelines.complete_run(ADMIN, authz.active_run_of(job).name)
    clock.advance(days=365)
    retention = _retention(authz, clock)
    assert retention.forget_old_runs(retention.cutoff(), lambda: None) == 1
    assert _count(authz, "runs") == 1
    assert start(authz).claims["run"] == "3"


def test_runs_are_kept_longer_than_any_job_token_lives(authz, clock) -> None:  # noqa: F811
    assert MIN_KEEP > dt.timedelta(days=31)
    with pytest.raises(ValueError):
        _retention(authz, clock, days=31)
