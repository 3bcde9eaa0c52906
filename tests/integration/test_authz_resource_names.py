"""Issue #18 item 1 on authz's contract: role assignments, pipeline permissions and role inheritance
are resources with names a client takes from one answer and gives back in the next; a principal
cannot forge a name; a request that names one resource twice must name the same one."""

from __future__ import annotations

import functools
from collections.abc import Callable

import grpc
import pytest

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.rich_status import error_info_of
from tests.conftest import LocalSystem, bearer, unique


def _refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), error_info_of(refused.value).reason


def _file(system: LocalSystem) -> str:
    """A committed file's id name."""
    with system.client() as admin:
        name = unique("named") + ".pem"
        admin.upload_file(b"named content", name=name)
        return admin.get_file(name).name


def _listed(stub: authz_pb2_grpc.AuthorizationServiceStub, scope: str, token: str) -> dict[str, str]:
    """{principal: name} of the assignments made on `scope`."""
    listed = stub.ListRoleAssignments(authz_pb2.ListRoleAssignmentsRequest(parent=scope), metadata=bearer(token),
                                      timeout=10)
    return {a.principal: a.name for a in listed.role_assignments}


def test_a_role_assignment_is_deleted_by_the_name_its_listing_gives(system: LocalSystem) -> None:
    resource = _file(system)
    principal = f"user:{unique('ann')}+ci@example.com"
    md = bearer(system.admin_token)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    assigned = stub.SetRoleAssignment(authz_pb2.SetRoleAssignmentRequest(role_assignment=authz_pb2.RoleAssignment(
        scope=resource, principal=principal, role=authz_pb2.ROLE_READER)), metadata=md, timeout=10)
    assert assigned.name == f"{resource}/roleAssignments/{principal}"  # a valid principal reads as itself

    name = _listed(stub, resource, system.admin_token)[principal]
    assert name == assigned.name
    stub.DeleteRoleAssignment(authz_pb2.DeleteRoleAssignmentRequest(name=name), metadata=md, timeout=10)
    assert principal not in _listed(stub, resource, system.admin_token)
    again = _refusal(lambda: stub.DeleteRoleAssignment(authz_pb2.DeleteRoleAssignmentRequest(name=name),
                                                       metadata=md, timeout=10))
    assert again == (grpc.StatusCode.NOT_FOUND, "ROLE_ASSIGNMENT_NOT_FOUND")


def test_a_files_pipeline_permissions_and_inheritance_are_read_and_set_by_their_names(system: LocalSystem) -> None:
    resource = _file(system)
    with system.client() as admin:
        pipeline = admin.create_pipeline(unique("named")).name  # not open access: other tests' jobs share `default`
    md = bearer(system.admin_token)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    authorized = stub.SetPipelinePermission(authz_pb2.SetPipelinePermissionRequest(
        name=f"{resource}/pipelinePermissions", pipeline=pipeline, authorized=True), metadata=md, timeout=10)
    assert (authorized.name, authorized.resource) == (f"{resource}/pipelinePermissions", resource)
    read = stub.GetPipelinePermissions(authz_pb2.GetPipelinePermissionsRequest(name=authorized.name), metadata=md,
                                       timeout=10)
    assert [p.name for p in read.pipelines] == [pipeline] and read.name == authorized.name

    inheritance = stub.SetRoleInheritance(authz_pb2.SetRoleInheritanceRequest(
        name=f"{resource}/roleInheritance", inherit_from_library=False), metadata=md, timeout=10)
    assert (inheritance.name, inheritance.scope) == (f"{resource}/roleInheritance", resource)
    assert not stub.ListRoleAssignments(authz_pb2.ListRoleAssignmentsRequest(parent=resource), metadata=md,
                                        timeout=10).inherit_from_library
    for wrong in (resource, f"{resource}/roleInheritance", f"{resource}/pipelinePermissions/x"):
        refused = _refusal(functools.partial(stub.GetPipelinePermissions,
                                             authz_pb2.GetPipelinePermissionsRequest(name=wrong), metadata=md,
                                             timeout=10))
        assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME"), wrong


@pytest.mark.parametrize("spelled", [
    "{scope}/roleAssignments/user%3A{victim}",  # an encoded `:`: not the one spelling
    "{scope}/roleAssignments/user:{victim}%2f",  # lower-case hex
    "{scope}/roleAssignments/user:x/roleAssignments/user:{victim}",  # a raw `/` smuggling a scope in
    "{scope}/roleAssignments/user:{victim}%FF",  # not UTF-8
    "{scope}/roleAssignments/",
    "roleAssignments/user:{victim}",
])
def test_a_role_assignment_name_cannot_be_forged(system: LocalSystem, spelled: str) -> None:
    """Only the one spelling the server gives names an assignment: anything else changes nothing."""
    resource = _file(system)
    victim = unique("victim")
    md = bearer(system.admin_token)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    for scope in ("projects/default", resource):
        stub.SetRoleAssignment(authz_pb2.SetRoleAssignmentRequest(role_assignment=authz_pb2.RoleAssignment(
            scope=scope, principal=f"user:{victim}", role=authz_pb2.ROLE_READER)), metadata=md, timeout=10)
    forged = spelled.format(scope=resource, victim=victim)
    refused = _refusal(lambda: stub.DeleteRoleAssignment(authz_pb2.DeleteRoleAssignmentRequest(name=forged),
                                                         metadata=md, timeout=10))
    assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    for scope in ("projects/default", resource):
        assert f"user:{victim}" in _listed(stub, scope, system.admin_token), scope


def test_a_principal_with_a_slash_is_refused_and_its_encoded_name_finds_nothing(system: LocalSystem) -> None:
    resource = _file(system)
    md = bearer(system.admin_token)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    hostile = f"user:x/roleAssignments/user:{unique('admin')}"
    refused = _refusal(lambda: stub.SetRoleAssignment(authz_pb2.SetRoleAssignmentRequest(
        role_assignment=authz_pb2.RoleAssignment(scope=resource, principal=hostile, role=authz_pb2.ROLE_READER)),
        metadata=md, timeout=10))
    assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRINCIPAL")
    encoded = f"{resource}/roleAssignments/{hostile.replace('/', '%2F')}"
    missing = _refusal(lambda: stub.DeleteRoleAssignment(authz_pb2.DeleteRoleAssignmentRequest(name=encoded),
                                                         metadata=md, timeout=10))
    assert missing == (grpc.StatusCode.NOT_FOUND, "ROLE_ASSIGNMENT_NOT_FOUND")


def test_a_request_naming_one_resource_twice_must_name_the_same_one(system: LocalSystem) -> None:
    first, second = _file(system), _file(system)
    md = bearer(system.admin_token)
    stub = authz_pb2_grpc.AuthorizationServiceStub(system.channel("authz"))
    lock = authz_pb2.ExclusiveLock()

    mismatched = _refusal(lambda: stub.CreateCheck(authz_pb2.CreateCheckRequest(
        parent=first, check=authz_pb2.Check(resource=second, exclusive_lock=lock)), metadata=md, timeout=10))
    assert mismatched == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    for resource in (first, second):
        assert not stub.ListChecks(authz_pb2.ListChecksRequest(parent=resource), metadata=md, timeout=10).checks
    created = stub.CreateCheck(authz_pb2.CreateCheckRequest(parent=first, check=authz_pb2.Check(exclusive_lock=lock)),
                               metadata=md, timeout=10)
    assert created.resource == first and created.name.startswith(f"{first}/checks/")

    project = unique("named")
    wrong_project = _refusal(lambda: stub.CreateProject(authz_pb2.CreateProjectRequest(
        project_id=project, project=authz_pb2.Project(name="projects/default")), metadata=md, timeout=10))
    assert wrong_project == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    missing = _refusal(lambda: stub.GetProject(authz_pb2.GetProjectRequest(name=f"projects/{project}"), metadata=md,
                                               timeout=10))
    assert missing == (grpc.StatusCode.NOT_FOUND, "PROJECT_NOT_FOUND")
    made = stub.CreateProject(authz_pb2.CreateProjectRequest(project_id=project, project=authz_pb2.Project(
        name=f"projects/{project}", region="eu")), metadata=md, timeout=10)
    assert (made.name, made.region) == (f"projects/{project}", "eu")

    principal = f"user:{unique('bob')}"
    wrong_name = _refusal(lambda: stub.SetRoleAssignment(authz_pb2.SetRoleAssignmentRequest(
        role_assignment=authz_pb2.RoleAssignment(name=f"projects/default/roleAssignments/{principal}", scope=first,
                                                 principal=principal, role=authz_pb2.ROLE_READER)),
        metadata=md, timeout=10))
    assert wrong_name == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESOURCE_NAME")
    for scope in ("projects/default", first):
        assert principal not in _listed(stub, scope, system.admin_token)
