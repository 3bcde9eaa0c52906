"""Alembic environment of the kms service."""

from alembic import context

from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.migrations import run_migrations
from securefiles.kms.adapters.sql_key_store import metadata

run_migrations(context.config, [metadata, audit_metadata])
