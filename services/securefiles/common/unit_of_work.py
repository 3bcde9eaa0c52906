"""A change and the audit entry that describes it, in one transaction: both commit or neither does.

    with units():                     # in a database thread
        repo.update(...)              # the repositories' transactions join the unit's
    async with units.begin() as change:   # on the event loop; each step on the database threads
        change.audit(resource, size=...)
        await repo.insert(...)

When the unit commits, the current call's ALLOW entry (if it owes one and has not written it yet)
is chained into the same transaction, which holds the chain's head row until it commits, so
entries written here and those the group commit writes interleave in one chain. A call that
makes several units writes its entry with the first. Outside a call a unit is just a
transaction, unless it is a background job's (`units.for_job(principal, action)`): then the
entry its body names with `unit.audit(...)` commits with its change in the same way, and a body
that names none writes none. Denials, failures and reads stay the interceptor's.

    with units.for_job("service:authz", "ForgetCompletedRuns")() as unit:   # a database thread
        removed = repo.forget(...)
        if removed:
            unit.audit("runs", runs=removed)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine

from securefiles.common.audit import AuditLog
from securefiles.common.call_context import (
    AllowOnce,
    EntryFields,
    audit_note,
    audit_unavailable,
    entries_of_call,
    owed_allow,
)
from securefiles.common.db import OpenUnit, database_errors, in_unit, joining, leave, open_unit
from securefiles.common.db_threads import DatabaseThreads

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """Who and what a background job's entries name (no call does), and facts every one carries."""

    principal: str
    action: str
    details: tuple[tuple[str, str], ...] = ()


class _Transaction:
    """The transaction of one unit, and how it ends: with the call's entry, or rolled back."""

    def __init__(self, engine: Engine, audit: AuditLog | None) -> None:
        self.unit: OpenUnit = open_unit(engine)
        self.conn: Connection = self.unit.conn
        self._audit = audit
        self.job_entry: EntryFields | None = None  # a background job's entry, named by its body

    def commit(self) -> None:
        """Chain the call's owed ALLOW entry into this transaction, then commit both."""
        with self.unit.lock:
            try:
                allow, counted = self._write_entry()
                with database_errors():
                    self.conn.commit()
            finally:
                self.conn.close()
        if allow is not None:
            allow.written_with_change()
            counted()

    def note_job(self, job: Job, resource: str | None, details: dict[str, object]) -> None:
        """Name (or add to) the background job's entry, written when the unit commits."""
        before = self.job_entry or EntryFields(job.principal, job.action, "", dict(job.details), "")
        self.job_entry = EntryFields(job.principal, job.action, before.resource if resource is None else resource,
                                     {**before.details, **{k: str(v) for k, v in details.items()}}, "")

    def _write_entry(self) -> tuple[AllowOnce | None, Callable[[], None]]:
        if self._audit is None:
            return None, _nothing
        allow = owed_allow()
        entries = entries_of_call(allowed=True) if allow is not None else []
        if self.job_entry is not None:
            entries.append(self.job_entry)
        if not entries:
            return None, _nothing
        try:  # refused: the whole transaction rolls back (no entry, no change)
            counted = self._audit.append_in(self.conn, entries)
        except Exception:
            raise audit_unavailable() from None
        return allow, counted

    def rollback(self) -> None:
        with self.unit.lock:
            try:
                self.conn.rollback()
            finally:
                self.conn.close()


class UnitOfWork:
    """`with unit: ...` in a database thread: the body's writes and the call's entry, one commit.
    Inside another unit on the same engine it is part of that one (which commits for both)."""

    def __init__(self, engine: Engine, audit: AuditLog | None, job: Job | None = None) -> None:
        self._engine, self._audit, self._job = engine, audit, job
        self._tx: _Transaction | None = None
        self._token: Any = None

    def audit(self, resource: str | None = None, **details: object) -> None:
        """Name what the change's entry concerns (and facts about it)."""
        if self._job is None:
            audit_note(resource, **details)
            return
        assert self._tx is not None, "a background job's unit is its own, not part of another"
        self._tx.note_job(self._job, resource, details)

    def __enter__(self) -> UnitOfWork:
        if in_unit(self._engine):
            return self
        self._tx = _Transaction(self._engine, self._audit)
        self._token = joining(self._tx.unit)
        return self

    def __exit__(self, kind: type[BaseException] | None, _error: BaseException | None,
                 _tb: TracebackType | None) -> None:
        if self._tx is None:
            return
        leave(self._token)
        if kind is None:
            self._tx.commit()
        else:
            self._tx.rollback()


class AsyncUnitOfWork:
    """`async with unit: ...` on the event loop: it begins and ends on the database threads, and
    every database call awaited in between (`DatabaseThreads.run` copies the context) joins it.
    Keep its body to those calls: a task started inside would share the connection."""

    def __init__(self, engine: Engine, audit: AuditLog | None, threads: DatabaseThreads) -> None:
        self._engine, self._audit, self._threads = engine, audit, threads
        self._tx: _Transaction | None = None
        self._token: Any = None

    def audit(self, resource: str | None = None, **details: object) -> None:
        """Name what the change's entry concerns (and facts about it)."""
        audit_note(resource, **details)

    async def __aenter__(self) -> AsyncUnitOfWork:
        self._tx = await self._threads.run(_Transaction, self._engine, self._audit)
        self._token = joining(self._tx.unit)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, _error: BaseException | None,
                        _tb: TracebackType | None) -> None:
        assert self._tx is not None
        leave(self._token)
        await self._threads.run(self._tx.commit if kind is None else self._tx.rollback)


class UnitsOfWork:
    """One service's units of work on its database and audit log."""

    def __init__(self, engine: Engine, audit: AuditLog | None, threads: DatabaseThreads | None = None) -> None:
        self._engine, self._audit, self._threads = engine, audit, threads

    def __call__(self) -> UnitOfWork:
        """A unit for code already on a database thread."""
        return UnitOfWork(self._engine, self._audit)

    def for_job(self, principal: str, action: str, **details: object) -> Callable[[], UnitOfWork]:
        """Units for a background job in a database thread: the entry each one's body names
        (`unit.audit(resource, ...)`) is `principal` doing `action`, with `details` besides."""
        job = Job(principal, action, tuple((k, str(v)) for k, v in details.items()))
        return functools.partial(UnitOfWork, self._engine, self._audit, job)

    def begin(self) -> AsyncUnitOfWork:
        """A unit for the event loop."""
        assert self._threads is not None, "units on the event loop need the database threads"
        return AsyncUnitOfWork(self._engine, self._audit, self._threads)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a database thread, as one unit of work."""
        assert self._threads is not None, "units on the event loop need the database threads"
        return await self._threads.run(self._in_unit, fn, *args, **kwargs)

    async def run_noted(self, note: Callable[[T], object], fn: Callable[P, T], /, *args: P.args,
                        **kwargs: P.kwargs) -> T:
        """`run`, with `note(result)` telling the entry about what the change made (a number the
        database gave it) before the unit commits."""
        assert self._threads is not None, "units on the event loop need the database threads"
        return await self._threads.run(self._noted_in_unit, note, fn, *args, **kwargs)

    def _in_unit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self():
            return fn(*args, **kwargs)

    def _noted_in_unit(self, note: Callable[[T], object], fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self():
            result = fn(*args, **kwargs)
            note(result)
            return result


def _nothing() -> None:
    return None
