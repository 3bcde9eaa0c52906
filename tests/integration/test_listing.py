"""Listing a library larger than one page of the largest size."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, select

from securefiles.storage.adapters.sql_files import file_versions, secure_files
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique

LARGEST_PAGE = 1000


def _seed_rows(system: LocalSystem, project: str, count: int) -> None:
    """Metadata rows straight into storage's database: listing never reads content, and
    uploading 1,001 files through the API would only make the test slow."""
    now = dt.datetime.now(dt.UTC)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    engine = system.engine("storage")
    try:
        with engine.begin() as conn:
            conn.execute(secure_files.insert(), [
                {"file_id": file_id, "project": project, "display_name": f"f-{i:05d}.pem", "properties": "{}",
                 "created_by": "user:test", "created_at": now, "updated_at": now, "current_version": 1}
                for i, file_id in enumerate(ids)])
            conn.execute(file_versions.insert(), [
                {"file_id": file_id, "version": 1, "size": 0, "sha256": "0" * 64, "blob_key": f"{file_id}/v1",
                 "wrapped_key": b"", "key_region": "eu", "key_version": 1, "created_at": now,
                 "created_by": "user:test", "metadata": "{}", "expires_at": None}
                for file_id in ids])
    finally:
        engine.dispose()


def _remove_rows(system: LocalSystem, project: str) -> None:
    """The seeded rows have no blobs; other tests compare blobs with rows, so they go again."""
    engine = system.engine("storage")
    try:
        with engine.begin() as conn:
            ids = select(secure_files.c.file_id).where(secure_files.c.project == project)
            conn.execute(delete(file_versions).where(file_versions.c.file_id.in_(ids)))
            conn.execute(delete(secure_files).where(secure_files.c.project == project))
    finally:
        engine.dispose()


def test_the_largest_page_over_more_files_than_it_holds(system: LocalSystem) -> None:
    """page_size 1000 fetches one file beyond the page to know whether more follow; that file
    must not push the access check over authz's 1000-resource limit (it did: INVALID_ARGUMENT)."""
    project = unique("big-library")
    with system.client() as admin:
        admin.create_project(project)
    _seed_rows(system, project, LARGEST_PAGE + 5)
    try:
        first, rest = _two_pages(system, project)
    finally:
        _remove_rows(system, project)
    assert len(first.secure_files) == LARGEST_PAGE and first.next_page_token
    assert [f.display_name for f in rest.secure_files] == [f"f-{i:05d}.pem" for i in range(1000, 1005)]
    assert not rest.next_page_token


def _two_pages(system: LocalSystem, project: str) -> tuple[storage_pb2.ListSecureFilesResponse, ...]:
    with system.channel("storage") as channel:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)

        def page(token: str = "") -> storage_pb2.ListSecureFilesResponse:
            return stub.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
                parent=f"projects/{project}", page_size=LARGEST_PAGE, page_token=token),
                metadata=bearer(system.admin_token), timeout=30)

        first = page()
        return first, page(first.next_page_token)
