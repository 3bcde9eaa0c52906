"""Decisions that say yes mean yes (issue #15, items 1-5), on the running system."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.errors import PermissionDenied, SecureFilesError
from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique, user_token


def _setup(system: LocalSystem) -> tuple[str, str]:
    name, pipeline = unique("decided") + ".p12", unique("pipe")
    with system.client() as admin:
        admin.upload_file(b"decided content", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
    return name, pipeline


@pytest.mark.parametrize("branch", ["refs/heads/release/../../evil", "refs/heads/release/", "main",
                                    "refs/heads/a b"])
def test_a_run_on_a_ref_git_would_refuse_is_not_started(system: LocalSystem, branch: str) -> None:
    _, pipeline = _setup(system)
    started = system.cli("runs", "start", pipeline, "--branch", branch)
    assert started.code == 2, started.stderr
    assert "INVALID_BRANCH" in started.stderr
    assert started.stderr.count("\n") == 1


@pytest.mark.parametrize("pattern", ["refs/heads/release/../*", "refs/heads/release/", "refs/heads/a~1"])
def test_branch_control_refuses_patterns_git_would_refuse(system: LocalSystem, pattern: str) -> None:
    name, _ = _setup(system)
    added = system.cli("checks", "add", name, "branch-control", "--allowed", f"refs/heads/main,{pattern}")
    assert added.code == 2, added.stderr
    assert "INVALID_CHECK" in added.stderr
    assert system.cli("checks", "list", name, "--output", "json").json() == []


def test_a_check_added_mid_run_stops_that_runs_next_download(system: LocalSystem, tmp_path: Path) -> None:
    name, pipeline = _setup(system)
    with system.client() as admin:
        token = admin.start_run(pipeline, "refs/heads/feature/x").job_token
    with system.client(token=token) as job:
        assert job.download_secure_file(name, tmp_path / "before").path.read_bytes() == b"decided content"
    added = system.cli("checks", "add", name, "branch-control", "--allowed", "refs/heads/main")
    assert added.code == 0, added.stderr
    with system.client(token=token) as job, pytest.raises(PermissionDenied) as refused:
        job.download_secure_file(name, tmp_path / "after", retry_count=0)
    assert refused.value.reason == "CHECK_REJECTED"
    assert not (tmp_path / "after" / name).exists()


def _refusal(call: Callable[[], object]) -> tuple[str, str, str]:
    with pytest.raises(SecureFilesError) as refused:
        call()
    return refused.value.code, refused.value.reason, refused.value.message


@pytest.mark.parametrize("action", ["get", "update", "delete", "versions"])
def test_missing_and_not_yours_get_the_same_answer_naming_nothing_hidden(system: LocalSystem, action: str) -> None:
    hidden = unique("hidden-name") + ".p12"
    reader, outsider = f"user:{unique('reader')}", f"user:{unique('outsider')}"
    with system.client() as admin:
        hidden_id = admin.upload_file(b"hidden", name=hidden).name.rsplit("/", 1)[1]
        admin.set_role_inheritance(hidden, False)
        admin.assign_role(reader, "reader")
    missing_id = str(uuid.uuid4())
    for who, expected in ((reader, ("NOT_FOUND", "FILE_NOT_FOUND")), (outsider, ("PERMISSION_DENIED",
                                                                               "PERMISSION_DENIED"))):
        with system.client(token=user_token(system, who)) as client:
            def act(ref: str, client=client) -> Callable[[], object]:
                return {
                    "get": lambda: client.get_file(ref),
                    "update": lambda: client.update_file(ref, properties={"k": "v"}),
                    "delete": lambda: client.delete_file(ref),
                    "versions": lambda: client.list_versions(ref),
                }[action]
            code, reason, message = _refusal(act(hidden_id))
            assert (code, reason) == expected, (who, message)
            assert hidden not in message
            assert _refusal(act(missing_id)) == (code, reason, message.replace(hidden_id, missing_id))
    with system.client() as admin:
        assert admin.get_file(hidden).properties == {}  # nothing changed


# -- item 1: authz takes files by their id name only, and only files storage committed ----


def _authz_refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), error_info_of(refused.value).reason


def _file_policy_calls(stub: authz_pb2_grpc.AuthorizationServiceStub, resource: str, token: str
                       ) -> dict[str, Callable[[], object]]:
    """Every authz method that takes a file resource, as a foreign client would call it."""
    md = bearer(token)
    return {
        "SetPipelinePermission": lambda: stub.SetPipelinePermission(authz_pb2.SetPipelinePermissionRequest(
            name=f"{resource}/pipelinePermissions", all_pipelines=True, authorized=True), metadata=md, timeout=10),
        "GetPipelinePermissions": lambda: stub.GetPipelinePermissions(authz_pb2.GetPipelinePermissionsRequest(
            name=f"{resource}/pipelinePermissions"), metadata=md, timeout=10),
        "SetRoleAssignment": lambda: stub.SetRoleAssignment(authz_pb2.SetRoleAssignmentRequest(
            role_assignment=authz_pb2.RoleAssignment(scope=resource, principal="user:someone",
                                                     role=authz_pb2.ROLE_READER)),
            metadata=md, timeout=10),
        "ListRoleAssignments": lambda: stub.ListRoleAssignments(authz_pb2.ListRoleAssignmentsRequest(
            parent=resource), metadata=md, timeout=10),
        "SetRoleInheritance": lambda: stub.SetRoleInheritance(authz_pb2.SetRoleInheritanceRequest(
            name=f"{resource}/roleInheritance", inherit_from_library=False), metadata=md, timeout=10),
        "DeleteRoleAssignment": lambda: stub.DeleteRoleAssignment(authz_pb2.DeleteRoleAssignmentRequest(
            name=f"{resource}/roleAssignments/user:someone"), metadata=md, timeout=10),
        "CreateCheck": lambda: stub.CreateCheck(authz_pb2.CreateCheckRequest(parent=resource, check=authz_pb2.Check(
            exclusive_lock=authz_pb2.ExclusiveLock())), metadata=md, timeout=10),
        "ListChecks": lambda: stub.ListChecks(authz_pb2.ListChecksRequest(parent=resource), metadata=md,
                                              timeout=10),
    }


def test_authz_refuses_display_names_and_ids_storage_never_committed(system: LocalSystem) -> None:
    name, _ = _setup(system)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    by_display_name = f"projects/default/secureFiles/{name}"
    never_committed = f"projects/default/secureFiles/{uuid.uuid4()}"
    outsider = user_token(system, f"user:{unique('outsider')}")
    for method, call in _file_policy_calls(stub, by_display_name, system.admin_token).items():
        assert _authz_refusal(call) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME"), method
    for method, call in _file_policy_calls(stub, never_committed, system.admin_token).items():
        assert _authz_refusal(call) == (grpc.StatusCode.NOT_FOUND, "FILE_NOT_FOUND"), method
    for method, call in _file_policy_calls(stub, never_committed, outsider).items():
        # permission before existence: an outsider learns nothing about which ids exist
        assert _authz_refusal(call)[0] == grpc.StatusCode.PERMISSION_DENIED, method
    for resource in (by_display_name, never_committed):
        assert system.query("authz", "SELECT count(*) FROM pipeline_permissions WHERE resource = :r",
                            r=resource) == [(0,)]
        assert system.query("authz", "SELECT count(*) FROM checks WHERE resource = :r", r=resource) == [(0,)]


def test_authz_takes_a_committed_files_id_name(system: LocalSystem) -> None:
    name, _ = _setup(system)
    with system.client() as admin:
        resource = admin.get_file(name).name
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    listed = stub.GetPipelinePermissions(authz_pb2.GetPipelinePermissionsRequest(
        name=f"{resource}/pipelinePermissions"), metadata=bearer(system.admin_token), timeout=10)
    assert len(listed.pipelines) == 1
    assert listed.name == f"{resource}/pipelinePermissions" and listed.resource == resource


# -- item 5: an upload that does not commit leaves nothing in authz ------------------------


def test_uploads_that_end_without_their_commit_leave_no_administrator_role(system: LocalSystem) -> None:
    creator = f"user:{unique('creator')}"
    with system.client() as admin:
        admin.assign_role(creator, "creator")
    token = user_token(system, creator)
    stub = storage_pb2_grpc.SecureFileServiceStub(system.channel("storage"))
    for attempt in range(20):
        requests = [
            storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
                parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=unique("uncommitted")),
                expected_size_bytes=100)),
            storage_pb2.UploadSecureFileRequest(chunk=b"x" * (10 + attempt)),  # fewer bytes than declared
        ]
        with pytest.raises(grpc.RpcError) as failed:
            stub.UploadSecureFile(iter(requests), metadata=bearer(token), timeout=10)
        assert error_info_of(failed.value).reason == "INCOMPLETE_UPLOAD"  # "nothing was stored"
    assert system.query("authz", "SELECT scope FROM role_assignments WHERE principal = :p", p=creator) == [
        ("projects/default", )]
    assert system.query("storage", "SELECT count(*) FROM file_versions WHERE created_by = :p", p=creator) == [(0,)]
