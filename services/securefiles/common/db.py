"""SQL engines for the services: SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with
`BEGIN IMMEDIATE` so that concurrent writers (several processes on one file) queue
instead of failing on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import DBAPIError

_IMMEDIATE = "securefiles_immediate"
_before_first_write: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "securefiles_before_first_write", default=None)


def call_before_first_write(hook: Callable[[], None] | None) -> None:
    """Have the current task call `hook` once, right before its first write transaction begins.
    The interceptor passes the audit's "record now": no entry, no change (a hook that raises
    leaves the write undone)."""
    _before_first_write.set(hook)


def make_engine(url: str, *metadatas: MetaData, busy_timeout: float = 15.0) -> Engine:
    """Create an engine (and the tables of each `metadata`). A statement waits at most
    `busy_timeout` seconds for a lock held by someone else, then fails cleanly."""
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"hide_parameters": True, "future": True}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"options": f"-c lock_timeout={int(busy_timeout * 1000)}"}
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout)
    for metadata in metadatas:
        with write_transaction(engine) as conn:
            metadata.create_all(conn)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (and keeps the database
        # consistent on power loss) without an fsync per commit; checkpoints sync.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        # Overwrite deleted content (destroyed key material, crypto-shredded keys).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE, False) else "BEGIN"
        # Straight to the driver: every transaction of every call begins here, and SQLAlchemy's
        # statement machinery costs more than the BEGIN. Its errors are still SQLAlchemy's (a lock
        # held past the busy timeout is an OperationalError: DATABASE_UNAVAILABLE).
        try:
            conn.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.Error as error:
            raise DBAPIError.instance(statement, None, error, sqlite3.Error) from None


@contextmanager
def write_transaction(engine: Engine, *, is_audit_entry: bool = False) -> Iterator[Connection]:
    """A transaction that takes the write lock up front (SQLite) and commits on success.
    `is_audit_entry`: the audit log's own append, which is never a change that needs an entry
    first (else a DENY entry would set off the ALLOW hook, and the ALLOW entry itself twice)."""
    hook = None if is_audit_entry else _before_first_write.get()
    if hook is not None:
        _before_first_write.set(None)  # once; and not for the audit entry's own transaction
        try:
            hook()
        except BaseException:
            _before_first_write.set(hook)  # not written: a later write must not go ahead without it
            raise
    with engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, conn.begin():
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read snapshot."""
    with engine.connect() as conn, conn.begin():
        yield conn


async def ping(engine: Engine) -> None:
    """Readiness: one round trip to the database (off the event loop); raises when unreachable."""
    def select_one() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await asyncio.to_thread(select_one)
