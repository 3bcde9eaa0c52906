"""Alembic environment of the storage service."""

from alembic import context

from securefiles.common.audit import metadata as audit_metadata
from securefiles.common.migrations import run_migrations
from securefiles.storage.adapters.sql_blobs import metadata as blob_metadata
from securefiles.storage.adapters.sql_files import metadata

run_migrations(context.config, [metadata, blob_metadata, audit_metadata])
