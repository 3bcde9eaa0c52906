"""Ciphertext blobs in the SQL database (`SECUREFILES_BLOB_STORE=db`), so that storage
replicas on different hosts share them. One row per ciphertext segment (the header is
row 0); on PostgreSQL the column is `bytea` with STORAGE EXTERNAL (ciphertext does not
compress). A blob becomes visible in one transaction, or not at all.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.exc import DataError, OperationalError

from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.db_threads import DatabaseThreads, in_database_thread
from securefiles.common.errors import NotFound

metadata = MetaData()

blob_segments = Table(
    "blob_segments", metadata,
    Column("blob_key", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Another replica's upload may have committed its blob and not yet its metadata.
SWEEP_GRACE = dt.timedelta(minutes=10)


class SqlBlobWriter:
    def __init__(self, engine: Engine, key: str, threads: DatabaseThreads) -> None:
        self._engine = engine
        self._key = key
        self._threads = threads
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    @in_database_thread
    def commit(self) -> None:
        now = dt.datetime.now(dt.UTC)
        with write_transaction(self._engine) as conn:
            conn.execute(delete(blob_segments).where(blob_segments.c.blob_key == self._key))
            rows = [(self._key, seq, part, now) for seq, part in enumerate(self._parts)]
            if conn.dialect.name == "postgresql":
                _postgres_insert(conn, rows)
            else:
                conn.execute(blob_segments.insert(), [
                    {"blob_key": key, "seq": seq, "data": data, "created_at": at} for key, seq, data, at in rows])
        self._parts = []

    def abort(self) -> None:
        self._parts = []


class SqlBlobReader:
    def __init__(self, engine: Engine, key: str, threads: DatabaseThreads) -> None:
        """Reads the blob's segment table (blocking: `SqlBlobStore.open` runs it in a database thread)."""
        self._engine = engine
        self._key = key
        self._threads = threads
        with read_transaction(engine) as conn:
            rows = conn.execute(
                select(blob_segments.c.seq, func.length(blob_segments.c.data))
                .where(blob_segments.c.blob_key == key).order_by(blob_segments.c.seq)
            ).all()
        if not rows:
            raise NotFound("the file's content is missing", reason="BLOB_MISSING")
        self._seqs = [seq for seq, _ in rows]
        self._offsets: list[int] = []
        offset = 0
        for _, length in rows:
            self._offsets.append(offset)
            offset += int(length)
        self.size = offset

    def _rows(self, first: int, last: int) -> bytes:
        low, high = self._seqs[first], self._seqs[last]
        with read_transaction(self._engine) as conn:
            parts: Sequence[bytes]
            if conn.dialect.name == "postgresql":
                parts = _postgres_segments(conn, self._key, low, high)
            else:
                parts = conn.execute(
                    select(blob_segments.c.data).where(
                        blob_segments.c.blob_key == self._key, blob_segments.c.seq >= low, blob_segments.c.seq <= high,
                    ).order_by(blob_segments.c.seq)
                ).scalars().all()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @in_database_thread
    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        first = bisect.bisect_right(self._offsets, offset) - 1
        last = bisect.bisect_right(self._offsets, offset + length - 1) - 1
        data = self._rows(first, last)
        start = offset - self._offsets[first]
        return data[start : start + length]

    def close(self) -> None:
        pass


@contextmanager
def _psycopg_cursor(conn: Connection, binary: bool = False) -> Iterator[Any]:
    """psycopg's own cursor inside the connection's transaction (SQLAlchemy cannot ask for binary
    `bytea`); its errors surface as SQLAlchemy's, so they are handled like every other statement's."""
    import psycopg

    try:
        driver = conn.connection.driver_connection
        assert driver is not None  # a connection inside a transaction
        with driver.cursor(binary=binary) as cursor:
            yield cursor
    except psycopg.OperationalError as error:
        raise OperationalError(None, None, error) from error
    except psycopg.DataError as error:
        raise DataError(None, None, error) from error


def _postgres_segments(conn: Connection, key: str, low: int, high: int) -> list[bytes]:
    """Segments `low..high` of a blob, fetched in binary format: in the text format psycopg
    receives `bytea` hex-encoded, several times slower (figures: tests/bench/RESULTS.md)."""
    with _psycopg_cursor(conn, binary=True) as cursor:
        cursor.execute("SELECT data FROM blob_segments WHERE blob_key = %s AND seq >= %s AND seq <= %s "
                       "ORDER BY seq", (key, low, high))
        return [bytes(row[0]) for row in cursor]


def _postgres_insert(conn: Connection, rows: list[tuple[str, int, bytes, dt.datetime]]) -> None:
    """Segments sent in binary format (`%b`), not hex-encoded text."""
    with _psycopg_cursor(conn) as cursor:
        cursor.executemany("INSERT INTO blob_segments (blob_key, seq, data, created_at) VALUES (%s, %s, %b, %s)",
                           rows)


class SqlBlobStore:
    """BlobStore on the service database (its statements run in the service's database threads)."""

    def __init__(self, engine: Engine, threads: DatabaseThreads) -> None:
        self._engine = engine
        self._threads = threads

    def begin(self, key: str) -> SqlBlobWriter:
        return SqlBlobWriter(self._engine, key, self._threads)

    @in_database_thread
    def open(self, key: str) -> SqlBlobReader:
        return SqlBlobReader(self._engine, key, self._threads)

    @in_database_thread
    def delete(self, key: str) -> None:
        self._delete(key)

    def _delete(self, key: str) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(blob_segments).where(blob_segments.c.blob_key == key))

    def sweep(self, keep: set[str]) -> int:
        cutoff = dt.datetime.now(dt.UTC) - SWEEP_GRACE
        with read_transaction(self._engine) as conn:
            candidates = conn.execute(
                select(blob_segments.c.blob_key).group_by(blob_segments.c.blob_key)
                .having(func.max(blob_segments.c.created_at) < cutoff)
            ).scalars().all()
        orphans = [key for key in candidates if key not in keep]
        for key in orphans:
            self._delete(key)
        return len(orphans)
