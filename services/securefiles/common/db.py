"""SQL engines for the services: SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with
`BEGIN IMMEDIATE` so that concurrent writers (several processes on one file) queue
instead of failing on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from securefiles.common.errors import InvalidArgument, Unavailable

log = logging.getLogger("securefiles.db")

_IMMEDIATE = "securefiles_immediate"
# The transaction of the unit of work under way in this context (`common/unit_of_work.py`), which
# the repositories' transactions on the same engine join: one commit for all, or none.
_unit: contextvars.ContextVar[OpenUnit | None] = contextvars.ContextVar("securefiles_unit_of_work", default=None)


@dataclass(frozen=True)
class OpenUnit:
    """A unit of work's transaction. Its connection is used by one thread at a time (`lock`): a
    call cancelled while a database thread still works in the unit rolls back after that work."""

    engine: Engine
    conn: Connection
    lock: threading.RLock = field(default_factory=threading.RLock)


@contextmanager
def database_errors() -> Iterator[None]:
    """Database errors that are about the request or the moment, not a bug, in domain words."""
    try:
        yield
    except DataError as error:
        # The database refused a value (out of range, NUL in text) that validation let through.
        log.warning("database rejected a value", extra={"error": type(error.orig).__name__})
        raise InvalidArgument("a value in the request is out of range or malformed", reason="INVALID_VALUE") from None
    except OperationalError as error:
        # A lock held past the busy timeout, or a lost connection: transient; the transaction
        # rolled back, nothing is half-written. Callers may retry.
        log.warning("database unavailable", extra={"error": type(error.orig).__name__})
        raise Unavailable("the database is busy or unreachable; retry", reason="DATABASE_UNAVAILABLE") from None


def open_unit(engine: Engine) -> OpenUnit:
    """Begin a unit of work's transaction (taking the write lock up front on SQLite)."""
    with database_errors():
        conn = engine.connect().execution_options(**{_IMMEDIATE: True})
        try:
            conn.begin()
        except BaseException:
            conn.close()
            raise
    return OpenUnit(engine, conn)


def joining(unit: OpenUnit) -> contextvars.Token[OpenUnit | None]:
    """Have this context's transactions on the unit's engine join it."""
    return _unit.set(unit)


def leave(token: contextvars.Token[OpenUnit | None]) -> None:
    _unit.reset(token)


def in_unit(engine: Engine) -> bool:
    """Whether a unit of work on `engine` is under way in this context."""
    return _joined(engine) is not None


def _joined(engine: Engine) -> OpenUnit | None:
    unit = _unit.get()
    return unit if unit is not None and unit.engine is engine else None


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
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that takes the write lock up front (SQLite) and commits on success; inside a
    unit of work on the same engine, that unit's transaction (which commits once the unit does)."""
    joined = _joined(engine)
    if joined is not None:
        # A savepoint: one that fails (and is caught) undoes only its own writes.
        with joined.lock, database_errors(), joined.conn.begin_nested():
            yield joined.conn
        return
    with database_errors(), engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, conn.begin():
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read snapshot (inside a unit of work: its transaction, which sees its writes)."""
    joined = _joined(engine)
    if joined is not None:
        with joined.lock, database_errors():
            yield joined.conn
        return
    with database_errors(), engine.connect() as conn, conn.begin():
        yield conn


async def ping(engine: Engine) -> None:
    """Readiness: one round trip to the database (off the event loop); raises when unreachable."""
    def select_one() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await asyncio.to_thread(select_one)
