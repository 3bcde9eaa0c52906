"""Each service's Alembic migrations build exactly the schema its code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from securefiles.authz.adapters import (  # noqa: F401 - registers their tables
    sql_break_glass,
    sql_checks,
    sql_token_registry,
    sql_trusts,
)
from securefiles.authz.adapters.sql_repository import metadata as authz_metadata
from securefiles.cli.up import ensure_postgres_database
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.migrations import upgrade
from securefiles.kms.adapters.sql_key_store import metadata as kms_metadata
from securefiles.storage.adapters.sql_blobs import metadata as blob_metadata
from securefiles.storage.adapters.sql_files import metadata as storage_metadata

SCHEMAS = {
    "storage": [storage_metadata, blob_metadata, audit_metadata],
    "kms": [kms_metadata, audit_metadata],
    "authz": [authz_metadata, audit_metadata],
}


def _databases(tmp_path, service: str) -> list[str]:
    urls = [f"sqlite:///{tmp_path / (service + '.db')}"]
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL")
    if server:
        urls.append(ensure_postgres_database(server, f"sf_{uuid.uuid4().hex[:8]}_migrate_{service}"))
    return urls


def _drop(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.parametrize("service", sorted(SCHEMAS))
def test_migrations_match_the_code(tmp_path, service: str) -> None:
    for url in _databases(tmp_path, service):
        upgrade(service, url)
        upgrade(service, url)  # idempotent
        engine = create_engine(url)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{service}"})
            diff = compare_metadata(context, SCHEMAS[service])
            tables = set(inspect(conn).get_table_names())
        engine.dispose()
        _drop(url)
        assert diff == [], f"{url}: {diff}"
        assert f"alembic_version_{service}" in tables


def test_db_upgrade_command(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'authz.db'}"
    result = subprocess.run([sys.executable, "-m", "securefiles", "db", "upgrade", "authz", "--database-url", url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    assert {"projects", "checks", "audit_events"} <= set(inspect(engine).get_table_names())
    engine.dispose()
