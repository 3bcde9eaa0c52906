"""Listing a library larger than one page of the largest size."""

from __future__ import annotations

import uuid

import grpc

from securefiles.client.list_filter import combined_filter
from securefiles.common.rich_status import error_info_of
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


# -- name patterns --------------------------------------------------------------------


def _list(system: LocalSystem, project: str, pattern: str, page_size: int = 0,
          token: str = "") -> storage_pb2.ListSecureFilesResponse:
    with system.channel("storage") as channel:
        return storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(storage_pb2.ListSecureFilesRequest(
            parent=f"projects/{project}", filter=combined_filter(name_pattern=pattern), page_size=page_size,
            page_token=token),
            metadata=bearer(system.admin_token), timeout=30)


def test_a_hostile_name_pattern_is_refused_at_once(system: LocalSystem) -> None:
    """`"*" + "b*" * 500000` once kept storage's event loop busy for seconds (every caller waited)."""
    for pattern, why, reason in (("*" + "b*" * 500_000, "longer than 2048", "INVALID_FILTER"),
                                 ("x" * 300 + "*", "longer than 256", "INVALID_NAME_PATTERN"),
                                 ("*a" * 9, "more than 8 '*'", "INVALID_NAME_PATTERN"),
                                 ("a\x00*", "control characters", "INVALID_FILTER")):
        try:
            _list(system, "default", pattern)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert why in error.details()
            info = error_info_of(error)
            assert info is not None and info.reason == reason
        else:
            raise AssertionError(f"{pattern[:20]!r}… was accepted")


def test_the_largest_pattern_still_matches(system: LocalSystem) -> None:
    project = unique("patterns")
    with system.client() as admin:
        admin.create_project(project)
    names = ["a" * 240 + "-cert[1].pem", "a" * 240 + "-cert1.pem", "b" * 255]
    _seed_names(system, project, names)
    try:
        longest = "a*" * 8 + "?" * (256 - 17) + "m"
        assert len(longest) == 256
        longest_matches = [f.display_name for f in _list(system, project, longest).secure_files]
        bracket = [f.display_name for f in _list(system, project, "a*-cert[1]*").secure_files]
        crossing = [f.display_name for f in _list(system, project, "*b?").secure_files]
    finally:
        _remove_rows(system, project)
    assert longest_matches == sorted(names[:2])
    assert bracket == [names[0]]  # `[` is itself, not a character class
    assert crossing == [names[2]]


def test_a_sparse_match_over_a_large_library_comes_in_short_pages(system: LocalSystem) -> None:
    """One call examines a bounded number of files; the page may be short (even empty) and the
    token goes on from where it stopped, so following tokens finds every match."""
    project = unique("sparse")
    with system.client() as admin:
        admin.create_project(project)
    _seed_names(system, project, [f"f-{i:05d}.pem" for i in range(6000)] + ["zz-match.p12"])
    try:
        first = _list(system, project, "*.p12", page_size=10)
        second = _list(system, project, "*.p12", page_size=10, token=first.next_page_token)
    finally:
        _remove_rows(system, project)
    assert list(first.secure_files) == [] and first.next_page_token
    assert [f.display_name for f in second.secure_files] == ["zz-match.p12"]
    assert not second.next_page_token


def _seed_names(system: LocalSystem, project: str, names: list[str]) -> None:
    engine = system.engine("storage")
    try:
        with engine.begin() as conn:
            insert_file_rows(conn, project, [FileRow(str(uuid.uuid4()), name) for name in names],
                             created_by="user:test")
    finally:
        engine.dispose()

