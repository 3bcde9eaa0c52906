"""File rows straight into storage's database, for tests and benchmarks that need many files
whose content is never read (listing, rewrap): uploading each through the API would only be slow.

Blob keys point nowhere, so such rows must be removed again (`delete_project_rows`): other
tests compare stored blob keys with the blobs on disk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, select

from securefiles.common.db import write_transaction
from securefiles.storage.adapters.sql_files import file_versions, secure_files


@dataclass(frozen=True)
class FileRow:
    file_id: str
    display_name: str
    wrapped_key: bytes = b""
    key_region: str = "eu"
    key_version: int = 1
    metadata: str = "{}"  # stored JSON, as written before any cap
    properties: str = "{}"


def insert_file_rows(conn: Connection, project: str, rows: Sequence[FileRow], created_by: str = "user:bench") -> None:
    """Each row as version 1 of a file of `project`, of size 0."""
    now = dt.datetime.now(dt.UTC)
    conn.execute(secure_files.insert(), [
        {"file_id": r.file_id, "project": project, "display_name": r.display_name, "properties": r.properties,
         "created_by": created_by, "created_at": now, "updated_at": now, "current_version": 1}
        for r in rows])
    conn.execute(file_versions.insert(), [
        {"file_id": r.file_id, "version": 1, "size": 0, "sha256": "0" * 64, "blob_key": f"{r.file_id}/v1",
         "wrapped_key": r.wrapped_key, "key_region": r.key_region, "key_version": r.key_version,
         "created_at": now, "created_by": created_by, "metadata": r.metadata, "expires_at": None}
        for r in rows])


def delete_project_rows(engine: Engine, project: str) -> None:
    """Every file of `project` and its versions."""
    with write_transaction(engine) as conn:
        ids = select(secure_files.c.file_id).where(secure_files.c.project == project)
        conn.execute(delete(file_versions).where(file_versions.c.file_id.in_(ids)))
        conn.execute(delete(secure_files).where(secure_files.c.project == project))
