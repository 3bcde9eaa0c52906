"""Bad bearer tokens against the running system: every service says UNAUTHENTICATED with a
specific reason, and a job's token dies with its run.

tests/unit/test_tokens.py covers the verifier itself; tests/integration/test_access_denials.py
tampered/expired tokens on storage through the client. Here every forgery meets all three
services (and storage's download stream) over real mTLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.common.rich_status import error_info_of
from securefiles.common.tokens import AUDIENCE, ISSUER, TokenIssuer, key_id, load_signing_key
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, unique

Call = Callable[[LocalSystem, tuple], object]


def _storage_list(system: LocalSystem, metadata: tuple) -> object:
    with system.channel("storage") as channel:
        return storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(
            storage_pb2.ListSecureFilesRequest(parent="projects/default", page_size=1), metadata=metadata, timeout=10)


def _storage_download(system: LocalSystem, metadata: tuple) -> object:
    with system.channel("storage") as channel:
        return list(storage_pb2_grpc.SecureFileServiceStub(channel).DownloadSecureFile(
            storage_pb2.DownloadSecureFileRequest(name="projects/default/secureFiles/anything"), metadata=metadata,
            timeout=10))


def _authz_list(system: LocalSystem, metadata: tuple) -> object:
    with system.channel("authz") as channel:
        return authz_pb2_grpc.AuthorizationServiceStub(channel).ListProjects(
            authz_pb2.ListProjectsRequest(), metadata=metadata, timeout=10)


def _kms_list(system: LocalSystem, metadata: tuple) -> object:
    with system.channel("kms") as channel:
        return kms_pb2_grpc.KeyManagementServiceStub(channel).ListKeyVersions(
            kms_pb2.ListKeyVersionsRequest(parent="regions/eu"), metadata=metadata, timeout=10)


CALLS: dict[str, Call] = {"storage": _storage_list, "storage-download": _storage_download, "authz": _authz_list,
                          "kms": _kms_list}


# -- forging ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_key(system: LocalSystem) -> Ed25519PrivateKey:
    return load_signing_key((system.state_dir / "secrets" / "authz-signing-key.pem").read_bytes())


def _claims(**overrides: object) -> dict:
    """The claims of a valid administrator token (what the bootstrap admin holds)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user:admin", "iat": now, "nbf": now - 1, "exp": now + 600,
              "jti": unique("jti"), "kind": "user"}
    claims.update(overrides)
    return claims


def _signed(system: LocalSystem, **overrides: object) -> str:
    """Signed with the real key and kid: only the claims are wrong."""
    key = _signing_key(system)
    return jwt.encode(_claims(**overrides), key, algorithm="EdDSA", headers={"kid": key_id(key.public_key())})


def _alg_none(system: LocalSystem) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": key_id(_signing_key(system).public_key())}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."


def _hs256_with_public_key(system: LocalSystem, encoding: str) -> str:
    """The algorithm-confusion attack: HMAC keyed with the (public) verification key."""
    public = _signing_key(system).public_key()
    secret = (public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) if encoding == "raw"
              else public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    header = {"alg": "HS256", "typ": "JWT", "kid": key_id(public)}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _other_key(system: LocalSystem, claim_real_kid: bool) -> str:
    other = Ed25519PrivateKey.generate()
    kid = key_id(_signing_key(system).public_key()) if claim_real_kid else key_id(other.public_key())
    return jwt.encode(_claims(), other, algorithm="EdDSA", headers={"kid": kid})


def _no_expiry(system: LocalSystem) -> str:
    claims = _claims()
    del claims["exp"]
    key = _signing_key(system)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": key_id(key.public_key())})


BAD_TOKENS: dict[str, tuple[Callable[[LocalSystem], str], str]] = {
    "alg-none": (_alg_none, "INVALID_TOKEN"),
    "hs256-raw-public-key": (lambda s: _hs256_with_public_key(s, "raw"), "INVALID_TOKEN"),
    "hs256-pem-public-key": (lambda s: _hs256_with_public_key(s, "pem"), "INVALID_TOKEN"),
    "unknown-kid": (lambda s: _other_key(s, claim_real_kid=False), "UNKNOWN_SIGNING_KEY"),
    "other-key-real-kid": (lambda s: _other_key(s, claim_real_kid=True), "INVALID_TOKEN"),
    "wrong-audience": (lambda s: _signed(s, aud="another-service"), "WRONG_AUDIENCE"),
    "wrong-issuer": (lambda s: _signed(s, iss="someone-else"), "INVALID_TOKEN"),
    "expired": (lambda s: _signed(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                  nbf=int(time.time()) - 7200), "TOKEN_EXPIRED"),
    "not-yet-valid": (lambda s: _signed(s, nbf=int(time.time()) + 3600), "TOKEN_NOT_YET_VALID"),
    "no-expiry": (_no_expiry, "INVALID_TOKEN"),
    "unknown-kind": (lambda s: _signed(s, kind="service"), "INVALID_TOKEN"),
    "job-kind-without-run": (lambda s: _signed(s, kind="job", sub="job:x"), "INVALID_TOKEN"),
    "not-a-jwt": (lambda s: "definitely-not-a-jwt", "INVALID_TOKEN"),
}


@pytest.mark.parametrize("service", list(CALLS))
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_bearer_token_is_unauthenticated_everywhere(system: LocalSystem, kind: str, service: str) -> None:
    make, reason = BAD_TOKENS[kind]
    with pytest.raises(grpc.RpcError) as error:
        CALLS[service](system, bearer(make(system)))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info_of(error.value)
    assert info is not None and info.reason == reason
    assert info.domain == f"{service.split('-')[0]}.securefiles"


@pytest.mark.parametrize("service", list(CALLS))
def test_the_forging_helpers_make_valid_tokens_from_the_real_key(system: LocalSystem, service: str) -> None:
    """Control: the same construction with nothing wrong is accepted, so each refusal above is about its flaw."""
    if service == "storage-download":
        with pytest.raises(grpc.RpcError) as error:  # authenticated: a person's token cannot download
            CALLS[service](system, bearer(_signed(system)))
        assert error_info_of(error.value).reason == "JOB_TOKEN_REQUIRED"
    else:
        CALLS[service](system, bearer(_signed(system)))
    issued = TokenIssuer(_signing_key(system)).issue("user:admin", 600, kind="user")[0]
    CALLS["authz"](system, bearer(issued))


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc.def.ghi"],
    ids=["basic", "bearer-empty", "bearer-space", "other-scheme"],
)
@pytest.mark.parametrize("service", ["storage", "authz", "kms"])
def test_malformed_authorization_header(system: LocalSystem, service: str, header: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        CALLS[service](system, (("authorization", header),))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info_of(error.value).reason == "INVALID_TOKEN"


# -- job tokens live and die with their run ----------------------------------------------


def _job(system: LocalSystem, content: bytes, ttl_seconds: int | None = None) -> tuple[str, str, authz_pb2.Run]:
    name = unique("job-file")
    with system.client() as admin:
        admin.upload_file(content, name=name)
        pipeline = unique("pipeline")
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        started = admin.start_run(pipeline, "refs/heads/main", ttl_seconds=ttl_seconds)
    return name, started.job_token, started.run


def _job_calls(name: str, run: authz_pb2.Run) -> dict[str, Call]:
    def download(system: LocalSystem, metadata: tuple) -> object:
        with system.channel("storage") as channel:
            return b"".join(m.chunk for m in storage_pb2_grpc.SecureFileServiceStub(channel).DownloadSecureFile(
                storage_pb2.DownloadSecureFileRequest(parent="projects/default", display_name=name),
                metadata=metadata, timeout=10))

    def get(system: LocalSystem, metadata: tuple) -> object:
        with system.client() as admin:
            resource = admin.file_resource(name)
        with system.channel("storage") as channel:
            return storage_pb2_grpc.SecureFileServiceStub(channel).GetSecureFile(
                storage_pb2.GetSecureFileRequest(name=resource), metadata=metadata, timeout=10)

    def list_matching(system: LocalSystem, metadata: tuple) -> object:
        with system.channel("storage") as channel:
            return storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(
                storage_pb2.ListSecureFilesRequest(parent="projects/default", filter=f'display_name = "{name}"'),
                metadata=metadata,
                timeout=10)

    def complete(system: LocalSystem, metadata: tuple) -> object:
        with system.channel("authz") as channel:
            return authz_pb2_grpc.AuthorizationServiceStub(channel).CompleteRun(
                authz_pb2.CompleteRunRequest(name=run.name), metadata=metadata, timeout=10)

    return {"download": download, "get": get, "list": list_matching, "complete-run": complete}


def test_job_token_replayed_after_runs_complete_is_revoked(system: LocalSystem, tmp_path) -> None:
    content = b"-----BEGIN PRIVATE KEY-----\nrevoked-run\n"
    name, token, run = _job(system, content)
    calls = _job_calls(name, run)
    assert calls["download"](system, bearer(token)) == content  # while the run runs
    completed = system.cli("runs", "complete", str(run.run_id), "--output", "json")
    assert completed.code == 0 and completed.json()["state"] == "STATE_COMPLETED", completed.stderr

    for operation in ("download", "get", "list", "complete-run"):
        with pytest.raises(grpc.RpcError) as error:
            calls[operation](system, bearer(token))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, operation
        assert error_info_of(error.value).reason == "TOKEN_REVOKED", operation
    agent = system.cli("agent", "download", name, "--dest", str(tmp_path / "dest"),
                       env={"SECUREFILES_JOB_TOKEN": token})
    assert agent.code == 3 and "TOKEN_REVOKED" in agent.stderr
    assert not (tmp_path / "dest" / name).exists()


def test_revoked_job_token_is_refused_even_when_nothing_matches(system: LocalSystem) -> None:
    name, token, run = _job(system, b"probe")
    assert system.cli("runs", "complete", str(run.run_id)).code == 0
    with pytest.raises(grpc.RpcError) as matching:
        _job_calls(name, run)["list"](system, bearer(token))
    assert error_info_of(matching.value).reason == "TOKEN_REVOKED"
    # Same token, a pattern that matches no file: must be refused the same way (no existence oracle).
    with pytest.raises(grpc.RpcError) as nothing:
        _job_calls(unique("no-such-file"), run)["list"](system, bearer(token))
    assert nothing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info_of(nothing.value).reason == "TOKEN_REVOKED"


def test_job_token_after_its_run_ttl_is_expired(system: LocalSystem) -> None:
    """The run's own expiry is enforced by authz, independently of the JWT's clock leeway."""
    name, token, run = _job(system, b"short-lived", ttl_seconds=1)
    calls = _job_calls(name, run)
    deadline = time.monotonic() + 15
    while True:  # valid first; then, once the run's second is over, expired
        try:
            calls["get"](system, bearer(token))
        except grpc.RpcError as error:
            assert error_info_of(error).reason == "TOKEN_EXPIRED"
            break
        assert time.monotonic() < deadline, "a 1-second job token kept working"
        time.sleep(0.25)
    for operation in ("download", "list"):
        with pytest.raises(grpc.RpcError) as error:
            calls[operation](system, bearer(token))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, operation
        assert error_info_of(error.value).reason == "TOKEN_EXPIRED", operation


def test_job_token_bound_to_its_run_id_and_token_id(system: LocalSystem) -> None:
    """Even signed with the real key, a job token whose run key (`rtk`) is not its run's is refused."""
    name, token, run = _job(system, b"bound")
    claims = jwt.decode(token, options={"verify_signature": False})
    other_key = _signed(system, **{**claims, "rtk": unique("other-run-key"), "exp": int(time.time()) + 600})
    no_key = _signed(system, **{k: v for k, v in claims.items() if k != "rtk"} | {"jti": unique("other-jti")})
    for forged in (other_key, no_key):
        with pytest.raises(grpc.RpcError) as error:
            _job_calls(name, run)["download"](system, bearer(forged))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info_of(error.value).reason == "INVALID_TOKEN"
    assert _job_calls(name, run)["download"](system, bearer(token)) == b"bound"  # the real one still works


def test_job_token_cannot_act_as_a_person(system: LocalSystem) -> None:
    name, token, _run = _job(system, b"job only")
    with system.channel("storage") as channel:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)
        upload = iter([storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=unique("by-job")))),
            storage_pb2.UploadSecureFileRequest(chunk=b"x")])
        with pytest.raises(grpc.RpcError) as error:
            stub.UploadSecureFile(upload, metadata=bearer(token), timeout=10)
        assert (error.value.code(), error_info_of(error.value).reason) == (
            grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REQUIRED")
        with pytest.raises(grpc.RpcError) as error:
            stub.DeleteSecureFile(storage_pb2.DeleteSecureFileRequest(name=f"projects/default/secureFiles/{name}"),
                                  metadata=bearer(token), timeout=10)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with system.channel("authz") as channel, pytest.raises(grpc.RpcError) as error:
        authz_pb2_grpc.AuthorizationServiceStub(channel).IssueToken(
            authz_pb2.IssueTokenRequest(principal="user:admin"), metadata=bearer(token), timeout=10)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with system.client() as admin:
        assert admin.get_file(name).display_name == name
