"""Database errors are translated where the adapters meet the database (`common/db.py`), not in
the interceptor: a lock held past the busy timeout is DATABASE_UNAVAILABLE (transient, nothing
half-written), a value the database refuses is INVALID_VALUE."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from securefiles.common.db import make_engine, read_transaction, write_transaction
from securefiles.common.errors import InvalidArgument, Unavailable

metadata = MetaData()
rows = Table("db_error_rows", metadata, Column("id", Integer, primary_key=True), Column("code", String(4)))


def test_a_lock_held_past_the_busy_timeout_is_database_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", metadata, busy_timeout=0.2)
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable) as refused, write_transaction(engine) as conn:
            conn.execute(insert(rows).values(id=1, code="a"))
        assert refused.value.reason == "DATABASE_UNAVAILABLE"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with read_transaction(engine) as conn:
        assert conn.execute(select(rows)).all() == []


def test_a_value_the_database_refuses_is_invalid_value() -> None:
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("SQLite refuses no value here; PostgreSQL (SECUREFILES_TEST_DATABASE_URL) does")
    engine = make_engine(server)
    try:
        with pytest.raises(InvalidArgument) as refused, write_transaction(engine) as conn:
            conn.exec_driver_sql("CREATE TEMPORARY TABLE short_codes (code VARCHAR(4))")
            conn.exec_driver_sql("INSERT INTO short_codes VALUES ('far too long')")
        assert refused.value.reason == "INVALID_VALUE"
    finally:
        engine.dispose()
