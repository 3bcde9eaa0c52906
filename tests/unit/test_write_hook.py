"""`call_before_first_write`: the audit entry of an RPC goes in before its first write, or nothing does."""

from __future__ import annotations

import contextvars

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from securefiles.common.db import call_before_first_write, make_engine, read_transaction, write_transaction

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True))


def _in_own_context(body):
    return contextvars.copy_context().run(body)


def test_the_hook_runs_once_before_the_first_write_and_not_again(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", metadata)
    calls: list[int] = []

    def body() -> None:
        call_before_first_write(lambda: calls.append(len(calls)))
        with read_transaction(engine) as conn:
            conn.execute(select(rows)).all()
        assert calls == []  # reads do not trigger it
        with write_transaction(engine) as conn:
            assert calls == [0]
            conn.execute(insert(rows).values(id=1))
        with write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=2))
        assert calls == [0]

    _in_own_context(body)


def test_a_failing_hook_leaves_the_write_undone_and_is_asked_again(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", metadata)
    attempts: list[str] = []

    def hook() -> None:
        attempts.append("audit")
        if len(attempts) == 1:
            raise RuntimeError("audit log unavailable")

    def body() -> None:
        call_before_first_write(hook)
        with pytest.raises(RuntimeError), write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=1))
        with write_transaction(engine) as conn:  # whoever swallowed the error: no write without the entry
            conn.execute(insert(rows).values(id=2))

    _in_own_context(body)
    assert attempts == ["audit", "audit"]
    with read_transaction(engine) as conn:
        assert [r.id for r in conn.execute(select(rows))] == [2]


def test_the_audit_logs_own_append_does_not_set_off_the_hook(tmp_path) -> None:
    """A DENY entry written while the ALLOW hook is armed must not write an ALLOW entry first."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", metadata)
    calls: list[str] = []

    def body() -> None:
        call_before_first_write(lambda: calls.append("allow"))
        with write_transaction(engine, is_audit_entry=True) as conn:
            conn.execute(insert(rows).values(id=1))
        assert calls == []
        with write_transaction(engine) as conn:  # a real change still waits for its entry
            conn.execute(insert(rows).values(id=2))
        assert calls == ["allow"]

    _in_own_context(body)
