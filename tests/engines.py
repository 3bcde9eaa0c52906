"""A database for a test that runs on both SQLite and PostgreSQL: a file in the test's directory,
or a fresh PostgreSQL database (dropped afterwards) when SECUREFILES_TEST_DATABASE_URL names a server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, create_engine, text

from securefiles.common.db import make_engine


@contextmanager
def database_engine(kind: str, directory: Path, prefix: str, *tables: MetaData) -> Iterator[Engine]:
    """`kind` "sqlite" or "postgresql" (skipped without a server); the tables of `tables` created."""
    if kind == "sqlite":
        made = make_engine(f"sqlite:///{directory / f'{prefix}.db'}", *tables, busy_timeout=30)
        try:
            yield made
        finally:
            made.dispose()
        return
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("SECUREFILES_TEST_DATABASE_URL names no PostgreSQL server")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    made = make_engine(f"{server.rsplit('/', 1)[0]}/{name}", *tables, busy_timeout=30)
    try:
        yield made
    finally:
        made.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
