"""Break-glass: an operator's time-bound diagnostic access, approved by a second operator."""

from __future__ import annotations

import time

import pytest

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client import PermissionDenied
from tests.conftest import LocalSystem, bearer, unique, user_token


@pytest.fixture(scope="module")
def operators(system: LocalSystem) -> tuple[dict[str, str], dict[str, str]]:
    first, second = f"user:{unique('op')}", f"user:{unique('op')}"
    with system.client() as admin:
        for operator in (first, second):
            admin.assign_role(operator, "operator")
    return ({"SECUREFILES_TOKEN": user_token(system, first)}, {"SECUREFILES_TOKEN": user_token(system, second)})


def _download(system: LocalSystem, env: dict[str, str], name: str, dest, project: str = "default"):
    return system.cli("--project", project, "agent", "download", name, "--break-glass", "--dest", str(dest),
                      "--retry-count", "0", env=env)


def test_grant_lets_the_operator_download_with_every_download_audited(system, operators, tmp_path) -> None:
    first, second = operators
    name = unique("incident") + ".p12"
    with system.client() as admin:
        admin.upload_file(b"diagnose me", name=name)
    assert _download(system, first, name, tmp_path / "before").code == 3

    requested = system.cli("access", "request", "--reason", "INC-42: signing fails", "--ttl", "1h",
                           "--output", "json", env=first)
    assert requested.code == 0, requested.stderr
    request = requested.json()
    assert request["state"] == "STATE_PENDING" and request["project"] == "projects/default"

    own = system.cli("access", "approve", request["name"].rsplit("/", 1)[1], env=first)
    assert own.code == 3 and "SECOND_OPERATOR_REQUIRED" in own.stderr
    outsider = system.cli("access", "approve", request["name"].rsplit("/", 1)[1],
                          env={"SECUREFILES_TOKEN": user_token(system, f"user:{unique('dev')}")})
    assert outsider.code == 3 and "OPERATOR_REQUIRED" in outsider.stderr
    granted = system.cli("access", "approve", request["name"].rsplit("/", 1)[1], "--output", "json", env=second)
    assert granted.code == 0 and granted.json()["state"] == "STATE_GRANTED"

    downloaded = _download(system, first, name, tmp_path / "granted")
    assert downloaded.code == 0, downloaded.stderr
    assert (tmp_path / "granted" / name).read_bytes() == b"diagnose me"
    # The grant is personal: the approver cannot use it.
    assert _download(system, second, name, tmp_path / "approver").code == 3

    events = system.cli("audit", "list", "--output", "json").json()
    downloads = [e for e in events if e["service"] == "storage" and e["action"] == "DownloadSecureFile"
                 and e["details"].get("display_name") == name and e["decision"] == "ALLOW"]
    assert len(downloads) == 1
    assert downloads[0]["details"]["break_glass"] == "true"
    assert downloads[0]["details"]["access_request"] == request["name"]
    assert any(e["service"] == "authz" and e["action"] == "ApproveAccess" and e["decision"] == "ALLOW"
               for e in events)

    revoked = system.cli("access", "revoke", request["name"].rsplit("/", 1)[1], "--output", "json", env=second)
    assert revoked.json()["state"] == "STATE_REVOKED"
    assert _download(system, first, name, tmp_path / "after-revoke").code == 3


def test_grant_covers_one_project(system, operators, tmp_path) -> None:
    first, second = operators
    other = unique("proj")
    with system.client() as admin:
        admin.create_project(other)
        admin.upload_file(b"default project", name=(here := unique("here") + ".pem"))
    with system.client(project=other) as admin:
        admin.upload_file(b"other project", name="elsewhere.pem")
    request = system.cli("access", "request", "--reason", "a look", "--ttl", "1h", "--output", "json",
                         env=first).json()
    assert system.cli("access", "approve", request["name"].rsplit("/", 1)[1], env=second).code == 0
    assert _download(system, first, here, tmp_path / "covered").code == 0
    assert _download(system, first, "elsewhere.pem", tmp_path / "other", project=other).code == 3
    assert system.cli("access", "revoke", request["name"].rsplit("/", 1)[1], env=second).code == 0


def test_grant_expires_by_itself(system, operators, tmp_path) -> None:
    """The exact lifetime is proven with an injected clock (tests/unit/test_break_glass_expiry.py);
    here, that a running authz ends a grant without anyone acting."""
    first, second = operators
    with system.client() as admin:
        admin.upload_file(b"short look", name=(name := unique("expiring") + ".pem"))
    request = system.cli("access", "request", "--reason", "short look", "--ttl", "1s", "--output", "json",
                         env=first).json()
    assert system.cli("access", "approve", request["name"].rsplit("/", 1)[1], env=second).code == 0
    deadline = time.monotonic() + 30
    while True:
        listed = {r["name"]: r for r in system.cli("access", "list", "--output", "json", env=second).json()}
        if listed[request["name"]]["state"] == "STATE_EXPIRED":
            break
        assert listed[request["name"]]["state"] == "STATE_GRANTED"
        assert time.monotonic() < deadline, "a 1-second grant is still granted after 30 s"
        time.sleep(0.2)
    late = _download(system, first, name, tmp_path / "late")
    assert late.code == 3 and "JOB_TOKEN_REQUIRED" in late.stderr
    assert not (tmp_path / "late" / name).exists()


def test_people_without_a_grant_never_download(system, operators, tmp_path) -> None:
    with system.client() as admin:
        admin.upload_file(b"x", name=(name := unique("nogrant")))
    with system.client(token=user_token(system, "user:admin")) as admin, pytest.raises(PermissionDenied) as denied:
        admin.download_secure_file(name, tmp_path, retry_count=0)
    assert denied.value.reason == "JOB_TOKEN_REQUIRED"


def test_an_operator_who_loses_the_role_loses_the_grant(system, operators, tmp_path) -> None:
    _, second = operators
    former = f"user:{unique('op')}"
    former_env = {"SECUREFILES_TOKEN": user_token(system, former)}
    with system.client() as admin:
        admin.assign_role(former, "operator")
        admin.upload_file(b"still guarded", name=(name := unique("demoted") + ".pem"))
    request = system.cli("access", "request", "--reason", "INC-7", "--output", "json", env=former_env).json()
    assert system.cli("access", "approve", request["name"].rsplit("/", 1)[1], env=second).code == 0
    assert _download(system, former_env, name, tmp_path / "while-operator").code == 0

    with system.channel("authz") as channel:
        authz_pb2_grpc.AuthorizationServiceStub(channel).DeleteRoleAssignment(
            authz_pb2.DeleteRoleAssignmentRequest(name=f"organization/roleAssignments/{former}"),
            metadata=bearer(system.admin_token), timeout=10)
    denied = _download(system, former_env, name, tmp_path / "after-demotion")
    assert denied.code == 3 and "OPERATOR_REQUIRED" in denied.stderr
    assert not (tmp_path / "after-demotion" / name).exists()
