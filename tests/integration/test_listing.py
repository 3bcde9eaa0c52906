"""Listing a library larger than one page of the largest size."""

from __future__ import annotations

import uuid

from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique
from tests.file_rows import FileRow, delete_project_rows, insert_file_rows

LARGEST_PAGE = 1000


def _seed_rows(system: LocalSystem, project: str, count: int) -> None:
    """Metadata rows straight into storage's database: listing never reads content, and
    uploading 1,001 files through the API would only make the test slow."""
    engine = system.engine("storage")
    try:
        with engine.begin() as conn:
            insert_file_rows(conn, project, [FileRow(str(uuid.uuid4()), f"f-{i:05d}.pem") for i in range(count)],
                             created_by="user:test")
    finally:
        engine.dispose()


def _remove_rows(system: LocalSystem, project: str) -> None:
    """The seeded rows have no blobs; other tests compare blobs with rows, so they go again."""
    engine = system.engine("storage")
    try:
        delete_project_rows(engine, project)
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
