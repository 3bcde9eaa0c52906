"""A change and the call's ALLOW entry in one transaction (`common/unit_of_work.py`): both commit
or neither does, and entries written so interleave with the group-committed ones in one chain.
On SQLite, and on PostgreSQL when SECUREFILES_TEST_DATABASE_URL names one."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from securefiles.common.audit import ALLOW, AuditLog, audit_events
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.call_context import AllowOnce, begin_call, owe_allow, principal_var
from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import Unavailable
from securefiles.common.principal import Principal
from securefiles.common.unit_of_work import UnitsOfWork
from tests.engines import database_engine

rows_metadata = MetaData()
rows = Table("uow_rows", rows_metadata, Column("id", Integer, primary_key=True), Column("name", String(64)))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_engine(request.param, tmp_path, "uow", audit_metadata, rows_metadata) as made:
        yield made


def _in_call(audit: AuditLog, body: Callable[[], Any], action: str = "CreatePipeline") -> tuple[Any, AllowOnce]:
    """Run `body` as an audited call would run (the interceptor's part: who, what, the owed ALLOW)."""
    def call() -> tuple[Any, AllowOnce]:
        begin_call(action, "projects/p")
        principal_var.set(Principal("user", "user:alice"))
        allow = AllowOnce(lambda: audit.submit("user:alice", action, "projects/p", ALLOW))
        owe_allow(allow)
        return body(), allow

    return contextvars.copy_context().run(call)


def _names(engine: Engine) -> list[str]:
    with read_transaction(engine) as conn:
        return [r.name for r in conn.execute(select(rows).order_by(rows.c.id))]


def _actions(engine: Engine) -> list[tuple[str, str]]:
    with read_transaction(engine) as conn:
        return [(r.action, r.resource) for r in conn.execute(select(audit_events).order_by(audit_events.c.sequence))]


def _refuse_audit_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION uow_audit_off() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$"))
            conn.execute(text("CREATE TRIGGER uow_audit_off BEFORE INSERT ON audit_events "
                              "FOR EACH ROW EXECUTE FUNCTION uow_audit_off()"))
        else:
            conn.execute(text("CREATE TRIGGER uow_audit_off BEFORE INSERT ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"))


def test_the_change_and_its_entry_commit_together(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)

    def create() -> None:
        with units() as unit:
            with write_transaction(engine) as conn:  # a repository's transaction joins the unit's
                conn.execute(insert(rows).values(id=1, name="ios-release"))
            unit.audit("projects/p/pipelines/1", display_name="ios-release")  # what the database numbered

    _result, allow = _in_call(audit, create)
    assert _names(engine) == ["ios-release"]
    assert _actions(engine) == [("CreatePipeline", "projects/p/pipelines/1")]
    assert allow.is_written()  # the interceptor writes no second ALLOW
    assert audit.transactions == 0  # not through the group commit: in the change's own transaction
    assert audit.verify().intact


def test_a_change_whose_entry_cannot_be_written_changes_nothing(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)
    _refuse_audit_inserts(engine)

    def create() -> None:
        with units(), write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=1, name="ios-release"))

    with pytest.raises(Unavailable) as refused:
        _in_call(audit, create)
    assert refused.value.reason == "AUDIT_UNAVAILABLE"
    assert _names(engine) == [] and _actions(engine) == []


def test_a_failed_change_leaves_no_allow_entry(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)

    def half_a_change() -> None:
        with units(), write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=1, name="first write"))
            raise RuntimeError("the second write fails")

    with pytest.raises(RuntimeError):
        _in_call(audit, half_a_change)
    assert _names(engine) == [] and _actions(engine) == []


def test_a_write_that_fails_and_is_caught_inside_the_unit_undoes_only_itself(engine: Engine) -> None:
    """Repositories retry on a conflict (a number taken meanwhile): inside a unit, the failed try
    rolls back to its savepoint and the unit goes on (PostgreSQL would refuse every later
    statement of an aborted transaction)."""
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)

    def retried() -> None:
        with units():
            with write_transaction(engine) as conn:
                conn.execute(insert(rows).values(id=1, name="a"))
            with pytest.raises(IntegrityError), write_transaction(engine) as conn:
                conn.execute(insert(rows).values(id=1, name="taken"))
            with write_transaction(engine) as conn:
                conn.execute(insert(rows).values(id=2, name="b"))

    _in_call(audit, retried)
    assert _names(engine) == ["a", "b"]
    assert [a for a, _ in _actions(engine)] == ["CreatePipeline"]


def test_a_call_with_several_units_writes_its_entry_with_the_first(engine: Engine) -> None:
    audit = AuditLog(engine, "storage", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)

    def batches() -> None:
        for number in (1, 2, 3):
            with units(), write_transaction(engine) as conn:
                conn.execute(insert(rows).values(id=number, name=f"batch {number}"))

    _in_call(audit, batches, action="RewrapDataKeys")
    assert len(_names(engine)) == 3 and [a for a, _ in _actions(engine)] == ["RewrapDataKeys"]


def test_outside_a_call_a_unit_is_just_a_transaction(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    with UnitsOfWork(engine, audit)(), write_transaction(engine) as conn:
        conn.execute(insert(rows).values(id=1, name="start-up"))
    assert _names(engine) == ["start-up"] and _actions(engine) == []


def test_a_background_jobs_unit_commits_the_entry_its_body_names_with_the_change(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    job = UnitsOfWork(engine, audit).for_job("service:authz", "ForgetCompletedRuns", kind="sweep")
    with job() as unit, write_transaction(engine) as conn:
        conn.execute(insert(rows).values(id=1, name="swept"))
        unit.audit("runs", runs=1)
    with job(), write_transaction(engine) as conn:  # names no entry: writes none
        conn.execute(insert(rows).values(id=2, name="quiet"))
    with read_transaction(engine) as conn:
        entries = [(e.principal, e.action, e.resource, e.details) for e in conn.execute(select(audit_events))]
    assert _names(engine) == ["swept", "quiet"]
    assert [(p, a, r, json.loads(d)) for p, a, r, d in entries] == [
        ("service:authz", "ForgetCompletedRuns", "runs", {"kind": "sweep", "runs": "1"})]
    assert audit.verify().intact


def test_a_background_jobs_change_whose_entry_cannot_be_written_changes_nothing(engine: Engine) -> None:
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    _refuse_audit_inserts(engine)
    with pytest.raises(Unavailable) as refused:
        with UnitsOfWork(engine, audit).for_job("service:authz", "ForgetCompletedRuns")() as unit, \
                write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=1, name="swept"))
            unit.audit("runs")
    assert refused.value.reason == "AUDIT_UNAVAILABLE"
    assert _names(engine) == [] and _actions(engine) == []


def test_an_async_unit_joins_the_database_calls_awaited_inside_it(engine: Engine) -> None:
    audit = AuditLog(engine, "storage", key=b"k" * 32)
    threads = DatabaseThreads(2)
    units = UnitsOfWork(engine, audit, threads)

    def insert_row(number: int) -> None:
        with write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=number, name=f"row {number}"))

    async def upload(fail: bool) -> None:
        async with units.begin() as change:
            change.audit("projects/p/secureFiles/1", size=6)
            await threads.run(insert_row, 1)
            await threads.run(insert_row, 2)
            if fail:
                raise RuntimeError("the client went away")

    try:
        with pytest.raises(RuntimeError):
            _in_call(audit, lambda: asyncio.run(upload(fail=True)), action="UploadSecureFile")
        assert _names(engine) == [] and _actions(engine) == []
        _in_call(audit, lambda: asyncio.run(upload(fail=False)), action="UploadSecureFile")
        assert _names(engine) == ["row 1", "row 2"]
        assert _actions(engine) == [("UploadSecureFile", "projects/p/secureFiles/1")]
    finally:
        threads.close()


def test_entries_in_changes_and_group_commits_make_one_intact_chain(engine: Engine) -> None:
    """Changes (each locking the chain's head in its own transaction) and decisions (group
    committed by the writer thread) at once, from 8 threads: every entry once, numbered without a
    gap, the chain verifies."""
    audit = AuditLog(engine, "authz", key=b"k" * 32)
    units = UnitsOfWork(engine, audit)

    def change(number: int) -> None:
        def body() -> None:
            with units(), write_transaction(engine) as conn:
                conn.execute(insert(rows).values(id=number, name=f"change {number}"))
        _in_call(audit, body)

    def decision(number: int) -> Future[Any]:
        return audit.submit("service:storage", "AuthorizeUse", f"decision {number}", ALLOW)

    with ThreadPoolExecutor(8) as pool:
        changes = [pool.submit(change, n) for n in range(1, 41)]
        decisions = [pool.submit(decision, n) for n in range(1, 41)]
        for done in changes:
            done.result(timeout=60)
        for submitted in decisions:
            submitted.result(timeout=60).result(timeout=60)
    entries = _actions(engine)
    assert len(entries) == 80 and len(_names(engine)) == 40
    assert sorted(r for a, r in entries if a == "AuthorizeUse") == sorted(f"decision {n}" for n in range(1, 41))
    verification = audit.verify()
    assert verification.intact and verification.checked == 80
