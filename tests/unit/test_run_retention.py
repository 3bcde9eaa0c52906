"""Completed runs are forgotten once old (with their check suites, approvals and decisions), so
that the runs a project ever had do not grow its tables forever; running runs, recent ones and
each project's newest run stay, and run numbers are never reused."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from securefiles.authz.adapters.sql_run_retention import SqlCompletedRunStore
from securefiles.authz.domain.checks import CheckType
from securefiles.authz.domain.run_retention import MIN_KEEP, RunRetention
from securefiles.common.audit import AuditLog, audit_events
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.errors import Unauthenticated, Unavailable
from securefiles.common.unit_of_work import UnitsOfWork
from tests.unit.test_checks import ADMIN, FILE, add, authz, clock, decide, decision, start  # noqa: F401


def _retention(authz, clock, days: int = 90) -> RunRetention:  # noqa: F811
    engine = authz._repo._engine
    audit_metadata.create_all(engine)
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit).for_job("service:authz", "ForgetCompletedRuns")
    return RunRetention(SqlCompletedRunStore(engine), dt.timedelta(days=days), clock, units)


def _entries(authz) -> list[tuple[str, str, str, dict]]:  # noqa: F811
    with authz._repo._engine.connect() as conn:
        return [(e.principal, e.action, e.resource, json.loads(e.details))
                for e in conn.execute(select(audit_events).order_by(audit_events.c.sequence))]


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

    retention = _retention(authz, clock)
    cutoff = retention.cutoff()
    assert retention.forget_old_runs(cutoff) == 3
    assert _entries(authz) == [("service:authz", "ForgetCompletedRuns", "runs",
                                {"completed_before": cutoff.isoformat(), "runs": "3"})]  # with the change
    assert {table: _count(authz, table) for table in before} == {
        "runs": 2, "check_suites": 2, "approvals": 2, "approval_decisions": 0}
    assert decision(authz, running) == "PENDING"  # the running run is untouched
    with pytest.raises(Unauthenticated):
        authz.active_run_of(old[0])  # a forgotten run's token (long expired anyway) gets nothing
    assert retention.forget_old_runs(retention.cutoff()) == 0
    assert len(_entries(authz)) == 1  # nothing to forget: no entry either


def test_a_sweep_whose_entry_cannot_be_written_forgets_nothing(authz, clock) -> None:  # noqa: F811
    """No entry, no change: the removal and its entry commit in one transaction."""
    jobs = [start(authz) for _ in range(3)]
    for job in jobs:
        authz.pipelines.complete_run(ADMIN, authz.active_run_of(job).name)
    clock.advance(days=100)
    retention = _retention(authz, clock)
    with authz._repo._engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER audit_off BEFORE INSERT ON audit_events "
                          "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"))
    with pytest.raises(Unavailable) as refused:
        retention.forget_old_runs(retention.cutoff())
    assert refused.value.reason == "AUDIT_UNAVAILABLE"
    assert _count(authz, "runs") == 3 and _entries(authz) == []
    with authz._repo._engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_off"))
    assert retention.forget_old_runs(retention.cutoff()) == 2  # the next sweep does it, with its entry
    assert [action for _, action, _, _ in _entries(authz)] == ["ForgetCompletedRuns"]


def test_a_projects_newest_run_stays_so_run_numbers_are_never_reused(authz, clock) -> None:  # noqa: F811
    jobs = [start(authz) for _ in range(2)]
    for job in jobs:
        authz.pipelines.complete_run(ADMIN, authz.active_run_of(job).name)
    clock.advance(days=365)
    retention = _retention(authz, clock)
    assert retention.forget_old_runs(retention.cutoff()) == 1
    assert _count(authz, "runs") == 1
    assert start(authz).claims["run"] == "3"


def test_runs_are_kept_longer_than_any_job_token_lives(authz, clock) -> None:  # noqa: F811
    assert MIN_KEEP > dt.timedelta(days=31)
    with pytest.raises(ValueError):
        _retention(authz, clock, days=31)


def test_a_sweep_that_fails_leaves_no_entry(authz, clock) -> None:  # noqa: F811
    """Both or neither: an entry for runs that are still there would be a false record."""
    jobs = [start(authz) for _ in range(2)]
    for job in jobs:
        authz.pipelines.complete_run(ADMIN, authz.active_run_of(job).name)
    clock.advance(days=100)
    retention = _retention(authz, clock)
    with authz._repo._engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER runs_stay BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'no'); END"))
    with pytest.raises(IntegrityError):
        retention.forget_old_runs(retention.cutoff())
    assert _count(authz, "runs") == 2 and _entries(authz) == []
