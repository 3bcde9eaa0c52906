"""Every List paginates (AIP-158): small pages return each item exactly once, in order, and a
page token continues only the listing it came from; the client and CLI follow every page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.rich_status import error_info_of
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique, user_token


@dataclass
class Listing:
    service: str
    method: Callable[[grpc.Channel], Any]  # the stub method, given a channel
    request: Callable[[], Any]  # a fresh first-page request
    field: str
    key: Callable[[Any], object]
    expected: list[object]  # keys that must each appear exactly once, in this order
    token: str = ""  # whose token lists


def _projects(system: LocalSystem) -> Listing:
    made = sorted(unique("paged") for _ in range(3))
    with system.client() as admin:
        for project in made:
            admin.create_project(project)
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListProjects,
                   authz_pb2.ListProjectsRequest, "projects", lambda p: p.name, [f"projects/{p}" for p in made])


def _new_project(system: LocalSystem) -> str:
    project = unique("paged")
    with system.client() as admin:
        admin.create_project(project)
    return project


def _pipelines(system: LocalSystem) -> Listing:
    project = _new_project(system)
    with system.client(project=project) as admin:
        made = [admin.create_pipeline(f"p{i}").name for i in range(5)]
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListPipelines,
                   lambda: authz_pb2.ListPipelinesRequest(parent=f"projects/{project}"), "pipelines",
                   lambda p: p.name, made)


def _role_assignments(system: LocalSystem) -> Listing:
    project = _new_project(system)
    users = sorted(f"user:{unique('reader')}" for _ in range(4))
    with system.client(project=project) as admin:
        for user in users:
            admin.assign_role(user, "reader")
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListRoleAssignments,
                   lambda: authz_pb2.ListRoleAssignmentsRequest(parent=f"projects/{project}"), "role_assignments",
                   lambda a: a.principal, [u for u in users])


def _gated_file(system: LocalSystem, project: str) -> str:
    name = unique("gated") + ".pem"
    with system.client(project=project) as admin:
        admin.upload_file(b"gated", name=name)
    return name


def _checks(system: LocalSystem) -> Listing:
    project = _new_project(system)
    name = _gated_file(system, project)
    with system.client(project=project) as admin:
        made = [admin.add_check(name, authz_pb2.Check(branch_control=authz_pb2.BranchControl(
            allowed_refs=[f"refs/heads/r{i}"]))).name for i in range(5)]
        resource = admin.get_file(name).name
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListChecks,
                   lambda: authz_pb2.ListChecksRequest(parent=resource), "checks", lambda c: c.name, made)


def _approvals(system: LocalSystem) -> Listing:
    project = _new_project(system)
    name = _gated_file(system, project)
    with system.client(project=project) as admin:
        admin.create_pipeline("release")
        admin.set_pipeline_permission(name, "release", True)
        admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
            approvers=["user:admin"], min_approvals=1, allow_requester=True)))
        made = []
        for _ in range(5):
            run = admin.start_run("release", "refs/heads/main").run
            (suite,) = admin.request_checks(run.name, [name])
            made += [r.approval_id for r in suite.results if r.approval_id]
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListApprovals,
                   lambda: authz_pb2.ListApprovalsRequest(parent=f"projects/{project}"), "approvals",
                   lambda a: a.approval_id, made)


def _access_requests(system: LocalSystem) -> Listing:
    operator = f"user:{unique('op')}"
    with system.client() as admin:
        admin.assign_role(operator, "operator")
    token = user_token(system, operator)
    with system.client(token=token) as client:
        made = [client.request_access("default", f"INC-{i}", 600).name for i in range(3)]
    # Everyone's requests are listed: ours must each be there once, in id order.
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListAccessRequests,
                   authz_pb2.ListAccessRequestsRequest, "access_requests", lambda r: r.name, made, token)


def _groups(system: LocalSystem) -> Listing:
    made = sorted(f"group:{unique('g')}" for _ in range(3))
    with system.client() as admin:
        for group in made:
            admin.set_group_member(group, "user:admin", True)
    return Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListGroups,
                   authz_pb2.ListGroupsRequest, "groups", lambda g: g.name, made)


def _key_versions(system: LocalSystem) -> Listing:
    with system.client() as admin:
        for _ in range(2):
            admin.rotate_key("eu", reason="paging test")
        _, versions = admin.list_key_versions("eu")
    return Listing("kms", lambda c: kms_pb2_grpc.KeyManagementServiceStub(c).ListKeyVersions,
                   lambda: kms_pb2.ListKeyVersionsRequest(parent="regions/eu"), "key_versions",
                   lambda v: v.name, [v.name for v in versions])


def _file_versions(system: LocalSystem) -> Listing:
    project = _new_project(system)
    name = unique("versioned") + ".pem"
    with system.client(project=project) as admin:
        admin.update_library(allow_replace=True, keep_versions=10)
        resource = admin.upload_file(b"v1", name=name).name
        for i in range(2, 6):
            admin.replace_file(name, f"v{i}".encode(), reason=f"v{i}")
    return Listing("storage", lambda c: storage_pb2_grpc.SecureFileServiceStub(c).ListSecureFileVersions,
                   lambda: storage_pb2.ListSecureFileVersionsRequest(parent=resource), "versions",
                   lambda v: v.version, [5, 4, 3, 2, 1])


LISTINGS = {
    "ListProjects": _projects, "ListPipelines": _pipelines, "ListRoleAssignments": _role_assignments,
    "ListChecks": _checks, "ListApprovals": _approvals, "ListAccessRequests": _access_requests,
    "ListGroups": _groups, "ListKeyVersions": _key_versions, "ListSecureFileVersions": _file_versions,
}


@pytest.fixture(params=sorted(LISTINGS))
def listing(request: pytest.FixtureRequest, system: LocalSystem) -> Listing:
    return LISTINGS[request.param](system)


def _call(system: LocalSystem, listing: Listing, request: Any) -> Any:
    with system.channel(listing.service) as channel:
        return listing.method(channel)(request, metadata=bearer(listing.token or system.admin_token), timeout=30)


def _refusal(system: LocalSystem, listing: Listing, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        _call(system, listing, request)
    info = error_info_of(raised.value)
    return raised.value.code(), info.reason if info else ""


def test_pages_of_two_return_everything_exactly_once_in_order(system: LocalSystem, listing: Listing) -> None:
    seen: list[object] = []
    request = listing.request()
    request.page_size = 2
    pages = 0
    while True:
        response = _call(system, listing, request)
        items = list(getattr(response, listing.field))
        assert len(items) <= 2
        seen += [listing.key(item) for item in items]
        pages += 1
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert pages >= 2
    assert len(seen) == len(set(seen)), "an item came twice"
    assert [key for key in seen if key in listing.expected] == listing.expected
    # One call with the default size lists the same items.
    whole = _call(system, listing, listing.request())
    assert [listing.key(item) for item in getattr(whole, listing.field)] == seen


@pytest.fixture(scope="module")
def foreign_token(system: LocalSystem) -> str:
    """A token of another listing altogether: the second page of a project's files."""
    project = _new_project(system)
    with system.client(project=project) as admin:
        for i in range(2):
            admin.upload_file(b"x", name=f"f{i}.pem")
    with system.channel("storage") as channel:
        token = storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(storage_pb2.ListSecureFilesRequest(
            parent=f"projects/{project}", page_size=1), metadata=bearer(system.admin_token), timeout=30
        ).next_page_token
    assert token
    return token


def test_a_forged_foreign_or_tampered_token_is_refused(system: LocalSystem, listing: Listing,
                                                      foreign_token: str) -> None:
    request = listing.request()
    request.page_size = 1
    token = _call(system, listing, request).next_page_token
    assert token
    raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    tampered = dict(raw, p=raw["p"] + "x")
    for bad in ("not-a-token", "A" * 5000, foreign_token,
                base64.urlsafe_b64encode(json.dumps(tampered).encode()).decode().rstrip("=")):
        request = listing.request()
        request.page_token = bad
        assert _refusal(system, listing, request) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), bad
    request = listing.request()
    request.page_size = -1
    assert _refusal(system, listing, request) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")


def test_a_page_is_stable_when_items_are_added_meanwhile(system: LocalSystem) -> None:
    """Keyset, not offset: a pipeline created between two pages neither repeats nor hides one."""
    project = _new_project(system)
    with system.client(project=project) as admin:
        first_three = [admin.create_pipeline(f"a{i}").name for i in range(3)]
        with system.channel("authz") as channel:
            stub = authz_pb2_grpc.AuthorizationServiceStub(channel)
            first = stub.ListPipelines(authz_pb2.ListPipelinesRequest(parent=f"projects/{project}", page_size=2),
                                       metadata=bearer(system.admin_token), timeout=30)
            added = admin.create_pipeline("late").name
            admin.delete_pipeline("a0")
            rest = stub.ListPipelines(authz_pb2.ListPipelinesRequest(
                parent=f"projects/{project}", page_token=first.next_page_token), metadata=bearer(system.admin_token),
                timeout=30)
    assert [p.name for p in first.pipelines] == first_three[:2]
    assert [p.name for p in rest.pipelines] == [first_three[2], added]


def test_the_cli_lists_every_pipeline_past_one_page(system: LocalSystem) -> None:
    project = _new_project(system)
    with system.client(project=project) as admin:
        made = [admin.create_pipeline(f"p{i:03d}").display_name for i in range(105)]
    listed = system.cli("--project", project, "pipelines", "list", "--output", "json")
    assert listed.code == 0, listed.stderr
    assert [p["displayName"] for p in listed.json()] == made


@pytest.mark.parametrize("name", ["ListApprovals", "ListKeyVersions"])
def test_lists_read_from_sql_refuse_a_token_whose_key_is_not_an_id(system: LocalSystem, name: str) -> None:
    listing = LISTINGS[name](system)
    request = listing.request()
    request.page_size = 1
    raw = json.loads(base64.urlsafe_b64decode(_call(system, listing, request).next_page_token + "=="))
    for key in ("1 OR 1=1", "-1", ""):
        request = listing.request()
        request.page_token = base64.urlsafe_b64encode(json.dumps(dict(raw, a=key)).encode()).decode().rstrip("=")
        assert _refusal(system, listing, request) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), key


def test_an_approver_who_may_not_view_the_library_pages_through_only_their_approvals(system: LocalSystem) -> None:
    project = _new_project(system)
    outsider = f"user:{unique('approver')}"
    theirs, others = _gated_file(system, project), _gated_file(system, project)
    with system.client(project=project) as admin:
        admin.create_pipeline("release")
        for name, approvers in ((theirs, ["user:admin", outsider]), (others, ["user:admin"])):
            admin.set_pipeline_permission(name, "release", True)
            admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
                approvers=approvers, min_approvals=1, allow_requester=True)))
        their_resource = admin.get_file(theirs).name
        mine = []
        for _ in range(5):
            run = admin.start_run("release", "refs/heads/main").run
            for suite in admin.request_checks(run.name, [theirs, others]):
                mine += [r.approval_id for r in suite.results if r.approval_id and suite.resource == their_resource]
    listing = Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListApprovals,
                      lambda: authz_pb2.ListApprovalsRequest(parent=f"projects/{project}"), "approvals",
                      lambda a: a.approval_id, mine, user_token(system, outsider))
    seen, token = [], ""
    while True:
        response = _call(system, listing, authz_pb2.ListApprovalsRequest(
            parent=f"projects/{project}", page_size=2, page_token=token))
        seen += [a.approval_id for a in response.approvals]
        token = response.next_page_token
        if not token:
            break
    assert len(mine) == 5 and seen == mine


def test_each_listed_approval_names_its_own_run_and_branch(system: LocalSystem) -> None:
    """A page's runs are read together: each approval still carries its own run and branch."""
    project = _new_project(system)
    name = _gated_file(system, project)
    with system.client(project=project) as admin:
        admin.create_pipeline("release")
        admin.set_pipeline_permission(name, "release", True)
        admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
            approvers=["user:admin"], min_approvals=1, allow_requester=True)))
        expected = {}
        for branch in ("refs/heads/main", "refs/heads/release/1", "refs/heads/feature/x"):
            run = admin.start_run("release", branch).run
            (suite,) = admin.request_checks(run.name, [name])
            expected[suite.results[0].approval_id] = (run.name, branch)
    listing = Listing("authz", lambda c: authz_pb2_grpc.AuthorizationServiceStub(c).ListApprovals,
                      lambda: authz_pb2.ListApprovalsRequest(parent=f"projects/{project}"), "approvals",
                      lambda a: a.approval_id, list(expected))
    response = _call(system, listing, authz_pb2.ListApprovalsRequest(parent=f"projects/{project}", page_size=2))
    following = _call(system, listing, authz_pb2.ListApprovalsRequest(
        parent=f"projects/{project}", page_size=2, page_token=response.next_page_token))
    listed = {a.approval_id: (a.run, a.branch) for a in [*response.approvals, *following.approvals]}
    assert listed == expected
