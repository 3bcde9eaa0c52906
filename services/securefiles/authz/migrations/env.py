"""Alembic environment of the authz service."""

from alembic import context

from securefiles.authz.adapters import (  # noqa: F401 - registers their tables
    sql_break_glass,
    sql_checks,
    sql_token_registry,
    sql_trusts,
)
from securefiles.authz.adapters.sql_repository import metadata
from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.migrations import run_migrations

run_migrations(context.config, [metadata, audit_metadata])
