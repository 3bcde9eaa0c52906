"""Who may do what: every denial names its reason and changes nothing."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client import NotFound, PermissionDenied, Unauthenticated
from securefiles.common.rich_status import error_info_of
from securefiles.common.tokens import TokenIssuer, load_signing_key
from tests.conftest import LocalSystem, bearer, job_token_for, unique, user_token


@pytest.fixture(scope="module")
def shared_file(system: LocalSystem) -> str:
    name = unique("shared") + ".pem"
    with system.client() as admin:
        admin.upload_file(b"-----BEGIN CERTIFICATE-----\nsecret\n", name=name)
    return name


def _download(system: LocalSystem, token: str, name: str, dest, project: str = "default"):
    with system.client(token=token, project=project) as job:
        return job.download_secure_file(name, dest, retry_count=0)


def test_pipeline_not_authorized(system: LocalSystem, shared_file: str, tmp_path) -> None:
    other = unique("other") + ".pem"
    with system.client() as admin:
        admin.upload_file(b"other", name=other)
    token = job_token_for(system, other)  # authorized on another file only
    with pytest.raises(PermissionDenied) as denied:
        _download(system, token, shared_file, tmp_path)
    assert denied.value.reason == "PIPELINE_NOT_AUTHORIZED"
    assert list(tmp_path.iterdir()) == []


def test_job_token_of_another_project(system: LocalSystem, shared_file: str, tmp_path) -> None:
    project = unique("proj")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin_b:
        admin_b.upload_file(b"b-file", name="b.pem")
    token_b = job_token_for(system, "b.pem", project=project)
    with pytest.raises(PermissionDenied) as denied:
        _download(system, token_b, shared_file, tmp_path, project="default")
    assert denied.value.reason == "WRONG_PROJECT"
    # ...while the same token works in its own project.
    assert _download(system, token_b, "b.pem", tmp_path, project=project).path.read_bytes() == b"b-file"


@pytest.mark.parametrize("who", ["admin", "user:someone"])
def test_a_persons_token_never_downloads(system: LocalSystem, shared_file: str, tmp_path, who: str) -> None:
    token = system.admin_token if who == "admin" else user_token(system, who)
    with pytest.raises(PermissionDenied) as denied:
        _download(system, token, shared_file, tmp_path)
    assert denied.value.reason == "JOB_TOKEN_REQUIRED"
    assert list(tmp_path.iterdir()) == []


def test_reader_cannot_upload_but_can_view(system: LocalSystem, shared_file: str) -> None:
    reader = f"user:{unique('reader')}"
    with system.client() as admin:
        admin.assign_role(reader, "reader")
    with system.client(token=user_token(system, reader)) as client:
        assert client.get_file(shared_file).display_name == shared_file
        with pytest.raises(PermissionDenied):
            client.upload_file(b"x", name=unique("nope"))
        with pytest.raises(PermissionDenied):
            client.delete_file(shared_file)
    with system.client() as admin:
        assert admin.get_file(shared_file).size_bytes > 0


def test_creator_administers_only_own_files(system: LocalSystem, shared_file: str) -> None:
    creator = f"user:{unique('creator')}"
    with system.client() as admin:
        admin.assign_role(creator, "creator")
    own = unique("own") + ".key"
    with system.client(token=user_token(system, creator)) as client:
        created = client.upload_file(b"mine", name=own)
        assert created.created_by == creator
        renamed = client.update_file(own, rename=own + ".renamed", properties={"team": "android"})
        assert renamed.display_name == own + ".renamed" and dict(renamed.properties) == {"team": "android"}
        with pytest.raises(PermissionDenied):
            client.update_file(shared_file, properties={"hijacked": "yes"})
        with pytest.raises(PermissionDenied):
            client.delete_file(shared_file)
        client.delete_file(own + ".renamed")
        with pytest.raises(NotFound):
            client.get_file(own + ".renamed")
    with system.client() as admin:
        assert "hijacked" not in admin.get_file(shared_file).properties


def test_per_file_role_without_inheritance(system: LocalSystem) -> None:
    private = unique("private") + ".p12"
    reader = f"user:{unique('reader')}"
    with system.client() as admin:
        admin.upload_file(b"private", name=private)
        admin.assign_role(reader, "reader")
        admin.set_role_inheritance(private, False)
    with system.client(token=user_token(system, reader)) as client:
        with pytest.raises(NotFound):  # as if it did not exist (issue #15, item 4)
            client.get_file(private)
        assert private not in [f.display_name for f in client.list_files()]
    with system.client() as admin:
        admin.assign_role(reader, "reader", file=private)
    with system.client(token=user_token(system, reader)) as client:
        assert client.get_file(private).display_name == private


def test_unknown_file(system: LocalSystem, shared_file: str, tmp_path) -> None:
    missing = unique("missing")
    with system.client() as admin, pytest.raises(NotFound) as not_found:
        admin.get_file(missing)
    assert not_found.value.reason == "FILE_NOT_FOUND"
    token = job_token_for(system, shared_file)
    with pytest.raises(NotFound):
        _download(system, token, missing, tmp_path)
    # Outsiders learn nothing about what exists.
    with system.client(token=user_token(system, f"user:{unique('outsider')}")) as outsider:
        with pytest.raises(PermissionDenied):
            outsider.get_file(missing)
        with pytest.raises(PermissionDenied):
            outsider.get_file(shared_file)


def test_missing_token(system: LocalSystem, shared_file: str) -> None:
    with system.client(token="") as anonymous, pytest.raises(Unauthenticated) as error:
        anonymous.get_file(shared_file)
    assert error.value.reason == "MISSING_CREDENTIALS"


def _forge(system: LocalSystem, **overrides) -> str:
    """A token signed with the real key whose claims are otherwise wrong."""
    pem = (system.state_dir / "secrets" / "authz-signing-key.pem").read_bytes()
    issuer = TokenIssuer(load_signing_key(pem))
    token, _ = issuer.issue("user:admin", 600, kind="user")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(overrides)
    return jwt.encode(claims, load_signing_key(pem), algorithm="EdDSA", headers={"kid": issuer.kid})


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda s: s.admin_token[:-4] + ("AAAA" if not s.admin_token.endswith("AAAA") else "BBBB"), "INVALID_TOKEN"),
        (lambda s: s.admin_token.split(".")[0] + "." + s.admin_token.split(".")[1][:-2] + "xx." +
         s.admin_token.split(".")[2], "INVALID_TOKEN"),
        (lambda s: _forge(s, exp=int(time.time()) - 3600), "TOKEN_EXPIRED"),
        (lambda s: _forge(s, aud="someone-else"), "WRONG_AUDIENCE"),
        (lambda s: _forge(s, nbf=int(time.time()) + 3600), "TOKEN_NOT_YET_VALID"),
        (lambda s: "not-a-jwt", "INVALID_TOKEN"),
    ],
    ids=["tampered-signature", "tampered-payload", "expired", "wrong-audience", "not-yet-valid", "garbage"],
)
def test_bad_tokens_are_unauthenticated(system: LocalSystem, shared_file: str, make_token, reason: str) -> None:
    with system.client(token=make_token(system)) as client, pytest.raises(Unauthenticated) as error:
        client.get_file(shared_file)
    assert error.value.reason == reason


def test_cli_denial_exit_codes(system: LocalSystem, shared_file: str, tmp_path) -> None:
    no_auth = system.cli("files", "show", shared_file, env={"SECUREFILES_TOKEN": "garbage"})
    assert no_auth.code == 3
    assert no_auth.stderr.count("\n") == 1 and "Traceback" not in no_auth.stderr
    missing = system.cli("files", "show", unique("missing"))
    assert missing.code == 5
    not_authorized = system.cli("agent", "download", shared_file, "--dest", str(tmp_path),
                                env={"SECUREFILES_JOB_TOKEN": job_token_for(system)})
    assert not_authorized.code == 3 and "PIPELINE_NOT_AUTHORIZED" in not_authorized.stderr
    assert list(tmp_path.iterdir()) == []


def test_denied_reads_are_audited(system: LocalSystem, shared_file: str) -> None:
    """Reads are not audited when they succeed, but a refusal is a decision and is recorded."""
    outsider = f"user:{unique('curious')}"
    with system.client(token=user_token(system, outsider)) as client, pytest.raises(PermissionDenied):
        client.get_file(shared_file)
    events = system.cli("audit", "list", "--service", "storage", "--output", "json").json()
    denied = [e for e in events if e["principal"] == outsider and e["action"] == "GetSecureFile"]
    assert [e["decision"] for e in denied] == ["DENY"]
    assert denied[0]["reason"] == "PERMISSION_DENIED/PERMISSION_DENIED"
    assert denied[0]["resource"].startswith("projects/default/secureFiles/")


@pytest.mark.parametrize("identity", ["client", "kms-eu"])
def test_only_storage_makes_authz_forget_a_file(system: LocalSystem, identity: str) -> None:
    """PurgeResourcePolicies is storage's, after a delete: not the administrator's, not kms's."""
    name = unique("kept") + ".pem"
    with system.client() as admin:
        resource = admin.upload_file(b"still here", name=name).name
    with system.channel("authz", identity=identity) as channel:
        with pytest.raises(grpc.RpcError) as denied:
            authz_pb2_grpc.AuthorizationServiceStub(channel).PurgeResourcePolicies(
                authz_pb2.PurgeResourcePoliciesRequest(resource=resource), metadata=bearer(system.admin_token),
                timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info_of(denied.value).reason == "SERVICE_IDENTITY_REQUIRED"
    assert system.query("authz", "SELECT count(*) FROM role_assignments WHERE scope = :r", r=resource) == [(1,)]
