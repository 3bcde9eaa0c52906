"""One canonical, id-based name per file (issue #18 item 1, AIP-122): a name survives a rename, a
display name is no name, and a display name is looked up only where a method says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from securefiles.common.errors import NotFound
from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique


def _refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error_info_of(error.value).reason


def _download(stub: storage_pb2_grpc.SecureFileServiceStub, request: storage_pb2.DownloadSecureFileRequest,
              token: str) -> tuple[str, bytes]:
    responses: Iterator[storage_pb2.DownloadSecureFileResponse] = stub.DownloadSecureFile(
        request, metadata=bearer(token), timeout=10)
    header = next(responses).header
    return header.secure_file.display_name, b"".join(r.chunk for r in responses)


def test_a_renamed_file_keeps_its_name(system: LocalSystem) -> None:
    first, second = unique("before") + ".pem", unique("after") + ".pem"
    with system.client() as admin:
        uploaded = admin.upload_file(b"renamed content", name=first)
        renamed = admin.update_file(first, rename=second)
        assert renamed.name == uploaded.name and renamed.display_name == second
        assert admin.get_file(uploaded.name).display_name == second
        assert admin.get_file(second).name == uploaded.name  # the CLI's words still reach it
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    got = stub.GetSecureFile(storage_pb2.GetSecureFileRequest(name=uploaded.name),
                             metadata=bearer(system.admin_token), timeout=10)
    assert (got.name, got.display_name) == (uploaded.name, second)


def test_a_display_name_in_a_name_is_refused_and_changes_nothing(system: LocalSystem) -> None:
    display = unique("named") + ".pem"
    with system.client() as admin:
        uploaded = admin.upload_file(b"kept", name=display)
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    md = bearer(system.admin_token)
    by_display = f"projects/default/secureFiles/{display}"
    calls = {
        "Get": lambda: stub.GetSecureFile(storage_pb2.GetSecureFileRequest(name=by_display), metadata=md, timeout=10),
        "Update": lambda: stub.UpdateSecureFile(storage_pb2.UpdateSecureFileRequest(
            secure_file=storage_pb2.SecureFile(name=by_display, display_name=unique("x"))), metadata=md, timeout=10),
        "Delete": lambda: stub.DeleteSecureFile(storage_pb2.DeleteSecureFileRequest(name=by_display), metadata=md,
                                                timeout=10),
        "Versions": lambda: stub.ListSecureFileVersions(storage_pb2.ListSecureFileVersionsRequest(parent=by_display),
                                                        metadata=md, timeout=10),
        "Rollback": lambda: stub.RollbackSecureFile(storage_pb2.RollbackSecureFileRequest(
            name=by_display, version=1), metadata=md, timeout=10),
    }
    for method, call in calls.items():
        assert _refusal(call) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME"), method
    with system.client() as admin:
        kept = admin.get_file(uploaded.name)
    assert (kept.display_name, kept.etag) == (display, uploaded.etag)


def test_a_job_downloads_by_display_name_in_one_call_only_in_its_project(system: LocalSystem, tmp_path: Path) -> None:
    display = unique("agent") + ".pem"
    with system.client() as admin:
        uploaded = admin.upload_file(b"for the agent", name=display)
    token = job_token_for(system, display)
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    lookup = storage_pb2.DownloadSecureFileRequest(parent="projects/default", display_name=display)
    assert _download(stub, lookup, token) == (display, b"for the agent")
    assert _download(stub, storage_pb2.DownloadSecureFileRequest(name=uploaded.name), token) == (
        display, b"for the agent")
    many = stub.DownloadSecureFiles(storage_pb2.DownloadSecureFilesRequest(
        names=[uploaded.name], parent="projects/default", display_names=[display]), metadata=bearer(token), timeout=10)
    assert [m.header.secure_file.name for m in many if m.WhichOneof("payload") == "header"] == [uploaded.name]
    # The job's project only; a display name where a name belongs; both ways at once; a missing one.
    elsewhere = storage_pb2.DownloadSecureFileRequest(parent="projects/elsewhere", display_name=display)
    assert _refusal(lambda: _download(stub, elsewhere, token)) == (grpc.StatusCode.PERMISSION_DENIED, "WRONG_PROJECT")
    as_name = storage_pb2.DownloadSecureFileRequest(name=f"projects/default/secureFiles/{display}")
    assert _refusal(lambda: _download(stub, as_name, token)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    both = storage_pb2.DownloadSecureFileRequest(name=uploaded.name, parent="projects/default", display_name=display)
    assert _refusal(lambda: _download(stub, both, token)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    missing = storage_pb2.DownloadSecureFileRequest(parent="projects/default", display_name=unique("absent"))
    assert _refusal(lambda: _download(stub, missing, token)) == (grpc.StatusCode.NOT_FOUND, "FILE_NOT_FOUND")
    # The agent (the Python client) downloads by display name through the same lookup.
    with system.client(token=token) as job:
        assert job.download_secure_file(display, tmp_path).path.read_bytes() == b"for the agent"


def test_the_client_resolves_display_names_with_wildcards_exactly(system: LocalSystem) -> None:
    stem = unique("star")
    with system.client() as admin:
        star = admin.upload_file(b"star", name=f"{stem}*.pem")
        plain = admin.upload_file(b"plain", name=f"{stem}x.pem")
        assert admin.get_file(f"{stem}*.pem").name == star.name
        assert admin.get_file(f"{stem}x.pem").name == plain.name
        with pytest.raises(NotFound) as missing:
            admin.get_file(f"{stem}?.pem")
    assert missing.value.reason == "FILE_NOT_FOUND"


def test_versions_are_resources_whose_names_round_trip(system: LocalSystem) -> None:
    project = unique("versions")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.update_library(allow_replace=True)
        uploaded = admin.upload_file(b"one", name="kept.pem")
        admin.replace_file("kept.pem", b"two", reason="renewed")
        listed = admin.list_versions("kept.pem")
        assert [v.name for v in listed] == [f"{uploaded.name}/versions/2", f"{uploaded.name}/versions/1"]
        assert [admin.get_version(uploaded.name, v.version) for v in listed] == listed
        assert [v.name for v in admin.files.versions("kept.pem")] == [v.name for v in listed]
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    md = bearer(system.admin_token)
    for version in listed:
        got = stub.GetSecureFileVersion(storage_pb2.GetSecureFileVersionRequest(name=version.name), metadata=md,
                                        timeout=10)
        assert got == version
    refusals = {
        f"{uploaded.name}/versions/3": (grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND"),
        f"projects/{project}/secureFiles/kept.pem/versions/1": (grpc.StatusCode.INVALID_ARGUMENT,
                                                                  "INVALID_RESOURCE_NAME"),
        f"{uploaded.name}/versions/one": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME"),
        uploaded.name: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME"),
    }
    for name, expected in refusals.items():
        assert _refusal(lambda n=name: stub.GetSecureFileVersion(
            storage_pb2.GetSecureFileVersionRequest(name=n), metadata=md, timeout=10)) == expected, name
