"""Jobs prove themselves with their CI provider's OIDC token: trusts, the token exchange, and
the agent that needs nothing but its CI's identity. A test OpenID provider (HTTPS on loopback,
its own CA) plays GitHub Actions and GitLab."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from securefiles.client import PermissionDenied, Unauthenticated, Unavailable
from tests.conftest import LocalSystem, unique
from tests.oidc_provider import GITHUB_REQUEST_TOKEN, OidcProvider, new_key


@pytest.fixture
def oidc(tmp_path: Path) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path / "oidc")
    with provider.running():
        yield provider


def _project(system: LocalSystem) -> str:
    project = f"p{uuid.uuid4().hex[:10]}"
    with system.client() as admin:
        admin.create_project(project)
    return project


def _file_and_pipeline(system: LocalSystem, project: str, content: bytes) -> tuple[str, str]:
    name, pipeline = unique("cert") + ".bin", unique("release")
    with system.client(project=project) as admin:
        admin.upload_file(content, name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
    return name, pipeline


def _trust(system: LocalSystem, oidc: OidcProvider, project: str, pipeline: str, *flags: str) -> str:
    name = f"t{uuid.uuid4().hex[:8]}"
    added = system.cli("--project", project, "trusts", "add", name, "--pipeline", pipeline, "--issuer", oidc.issuer,
                       "--ca-file", str(oidc.ca_file), *flags, "--output", "json")
    assert added.code == 0, added.stderr
    return name


def _github_job(oidc: OidcProvider, repository: str, run_id: str = "100", attempt: str = "1",
                ref: str = "refs/heads/main", **extra: str) -> None:
    oidc.github_claims = {"repository": repository, "ref": ref, "run_id": run_id, "run_attempt": attempt,
                          "actor": "alice", "sub": f"repo:{repository}:ref:{ref}", **extra}


def _github_env(oidc: OidcProvider, tmp_path: Path) -> dict[str, str]:
    """What a GitHub Actions runner gives a job with `permissions: id-token: write`."""
    (tmp_path / "runner").mkdir(exist_ok=True)
    return {"GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(tmp_path / "runner"),
            "GITHUB_OUTPUT": str(tmp_path / "github_output"),
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{oidc.issuer}/github-token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": GITHUB_REQUEST_TOKEN, "SSL_CERT_FILE": str(oidc.ca_file)}


def test_github_job_downloads_with_nothing_but_its_oidc_token(system: LocalSystem, oidc: OidcProvider,
                                                                tmp_path: Path) -> None:
    project = _project(system)
    name, pipeline = _file_and_pipeline(system, project, b"signing identity")
    _trust(system, oidc, project, pipeline, "--github", "org/app", "--claim", "ref=refs/heads/main")
    _github_job(oidc, "org/app")
    env = _github_env(oidc, tmp_path)

    # No job token, no project flag: the job's identity says which project and pipeline.
    downloaded = system.cli("agent", "download", name, env=env)
    assert downloaded.code == 0, downloaded.stderr
    path = tmp_path / "runner" / name
    assert path.read_bytes() == b"signing identity"
    assert f"_path={path}" in (tmp_path / "github_output").read_text()

    who = system.cli("agent", "whoami", "--output", "json", env=env)
    assert who.code == 0, who.stderr
    identity = who.json()
    assert (identity["project"], identity["pipeline"], identity["branch"], identity["requested_by"]) == (
        project, pipeline, "refs/heads/main", "user:alice")
    assert identity["trust"].startswith(f"projects/{project}/trusts/")

    # A later step of the same job joins the same run; a re-run attempt is a run of its own.
    again = system.cli("agent", "whoami", "--output", "json", env=env)
    assert again.json()["run"] == identity["run"]
    _github_job(oidc, "org/app", attempt="2")
    rerun = system.cli("agent", "whoami", "--output", "json", env=env)
    assert rerun.json()["run"] != identity["run"]

    # The run records the signed claims it came from, and the audit names the trust.
    with system.client(project=project) as admin:
        run = admin.complete_run(identity["run"])
    assert run.trust == identity["trust"] and run.claims["repository"] == "org/app"
    assert not run.asserted_by
    audit = system.cli("audit", "list", "--service", "authz", "--output", "json")
    entries = [e for e in audit.json() if e["action"] == "ExchangeToken" and e["resource"] == identity["run"]]
    assert entries and entries[0]["details"]["trust"] == identity["trust"]
    assert "repository=org/app" in entries[0]["details"]["claims"]

    # Once the run completes, the same job identity is refused: a completed run does not come back.
    _github_job(oidc, "org/app")
    refused = system.cli("agent", "download", name, env=env)
    assert refused.code == 3 and "RUN_COMPLETED" in refused.stderr


def test_gitlab_job_with_an_id_token_in_the_environment(system: LocalSystem, oidc: OidcProvider,
                                                         tmp_path: Path) -> None:
    project = _project(system)
    name, pipeline = _file_and_pipeline(system, project, b"android keystore")
    _trust(system, oidc, project, pipeline, "--gitlab", "group/app")
    token = oidc.mint({"aud": "securefiles", "project_path": "group/app", "ref": "main", "ref_type": "branch",
                       "pipeline_id": "555", "user_login": "bob", "sub": "project_path:group/app:ref_type:branch"})
    token_file = tmp_path / "id_token"
    token_file.write_text(token)
    dest = tmp_path / "dest"
    for env in ({"SECUREFILES_OIDC_TOKEN": token}, {"SECUREFILES_OIDC_TOKEN_FILE": str(token_file)}):
        downloaded = system.cli("agent", "download", name, "--dest", str(dest), env=env)
        assert downloaded.code == 0, downloaded.stderr
        assert (dest / name).read_bytes() == b"android keystore"
        (dest / name).unlink()
    who = system.cli("agent", "whoami", "--output", "json", env={"SECUREFILES_OIDC_TOKEN": token})
    assert (who.json()["branch"], who.json()["requested_by"]) == ("refs/heads/main", "user:bob")
    # A job has one project: asking for another is refused, not silently ignored.
    other = system.cli("--project", "default", "agent", "download", name, "--dest", str(dest),
                       env={"SECUREFILES_OIDC_TOKEN": token})
    assert other.code == 2 and "WRONG_PROJECT" in other.stderr


# -- refusals ------------------------------------------------------------------------------


@pytest.fixture
def trusted(system: LocalSystem, oidc: OidcProvider) -> dict[str, str]:
    """A project with a file, a pipeline and a GitHub-style trust of the test issuer."""
    project = _project(system)
    name, pipeline = _file_and_pipeline(system, project, b"x")
    trust = _trust(system, oidc, project, pipeline, "--github", "org/app", "--claim", "ref=refs/heads/release/*",
                   "--claim", "environment=prod")
    return {"project": project, "file": name, "pipeline": pipeline, "trust": trust}


GOOD = {"aud": "securefiles", "repository": "org/app", "ref": "refs/heads/release/1.0", "environment": "prod",
        "run_id": "7", "run_attempt": "1", "actor": "alice"}


def _exchange(system: LocalSystem, token: str, project: str = "") -> object:
    with system.client(token="") as anonymous:
        return anonymous.exchange_token(token, project)


def _refused(system: LocalSystem, token: str, project: str = "") -> tuple[type, str, str]:
    with pytest.raises((PermissionDenied, Unauthenticated, Unavailable)) as error:
        _exchange(system, token, project)
    return type(error.value), error.value.reason, error.value.message


def test_a_good_token_is_exchanged(system: LocalSystem, oidc: OidcProvider, trusted: dict[str, str]) -> None:
    for alg in ("RS256", "ES256", "EdDSA"):
        exchanged = _exchange(system, oidc.mint({**GOOD, "run_id": alg}, alg=alg))
        assert exchanged.run.branch == "refs/heads/release/1.0"
        assert exchanged.pipeline_display_name == trusted["pipeline"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("case", [
    "wrong issuer", "wrong audience", "bad signature", "expired", "nbf in the future", "alg none",
    "HS256 with the public key", "repository", "branch glob", "environment",
])
def test_refused_tokens(system: LocalSystem, oidc: OidcProvider, trusted: dict[str, str], case: str) -> None:
    now = int(time.time())
    if case == "wrong issuer":
        token, expected = oidc.mint({**GOOD, "iss": "https://elsewhere.example"}), "NO_MATCHING_TRUST"
    elif case == "wrong audience":
        token, expected = oidc.mint({**GOOD, "aud": "https://github.com/org"}), "NO_MATCHING_TRUST"
    elif case == "bad signature":
        header, payload, signature = oidc.mint(GOOD).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        token = f"{header}.{_b64(json.dumps({**claims, 'actor': 'mallory'}).encode())}.{signature}"
        expected = "INVALID_SIGNATURE"
    elif case == "expired":
        token, expected = oidc.mint({**GOOD, "iat": now - 600, "nbf": now - 600, "exp": now - 120}), "TOKEN_EXPIRED"
    elif case == "nbf in the future":
        token, expected = oidc.mint({**GOOD, "nbf": now + 600, "exp": now + 900}), "TOKEN_NOT_YET_VALID"
    elif case == "alg none":
        claims = {**GOOD, "iss": oidc.issuer, "iat": now, "exp": now + 300}
        token = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
        expected = "ALGORITHM_NOT_ALLOWED"
    elif case == "HS256 with the public key":  # algorithm confusion: HMAC keyed with the public key
        public_pem = oidc.key("RS256").private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        claims = {**GOOD, "iss": oidc.issuer, "iat": now, "exp": now + 300}
        token = (f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': oidc.key('RS256').kid}).encode())}."
                 f"{_b64(json.dumps(claims).encode())}")
        token += "." + _b64(hmac.new(public_pem, token.encode(), hashlib.sha256).digest())
        expected = "ALGORITHM_NOT_ALLOWED"
    elif case == "repository":
        token, expected = oidc.mint({**GOOD, "repository": "org/evil"}), "NO_MATCHING_TRUST"
    elif case == "branch glob":
        token, expected = oidc.mint({**GOOD, "ref": "refs/heads/main"}), "NO_MATCHING_TRUST"
    else:
        token, expected = oidc.mint({**GOOD, "environment": "staging"}), "NO_MATCHING_TRUST"
    _kind, reason, message = _refused(system, token)
    assert reason == expected, message
    if case in ("repository", "branch glob", "environment"):
        claim = {"branch glob": "ref"}.get(case, case)
        assert f"claim {claim} " in message  # the refusal says which claim did not match


def test_unknown_kid_refetches_once_then_is_refused_and_rotation_works(
        system: LocalSystem, oidc: OidcProvider, trusted: dict[str, str]) -> None:
    _exchange(system, oidc.mint(GOOD))  # keys fetched and cached
    fetched = oidc.jwks_requests
    rotated = oidc.rotate("ES256")  # the issuer publishes a new key and signs with it
    # The cache is at most 10 s old (min refetch interval): wait for that condition, not a fixed time.
    deadline = time.monotonic() + 30
    while True:
        try:
            exchanged = _exchange(system, oidc.mint({**GOOD, "run_id": "rotated"}, key=rotated))
            break
        except Unauthenticated as error:
            assert error.reason == "UNKNOWN_SIGNING_KEY" and time.monotonic() < deadline
            time.sleep(0.5)
    assert exchanged.run.branch == "refs/heads/release/1.0" and oidc.jwks_requests > fetched
    # A kid the issuer never published: refused, and refetching is rate limited.
    stranger = new_key("RS256")
    before = oidc.jwks_requests
    for _ in range(3):
        _kind, reason, _ = _refused(system, oidc.mint(GOOD, key=stranger))
        assert reason == "UNKNOWN_SIGNING_KEY"
    assert oidc.jwks_requests - before <= 1


def test_jwks_endpoint_down_fails_closed(system: LocalSystem, oidc: OidcProvider, trusted: dict[str, str]) -> None:
    """Never fetched and unreachable: UNAVAILABLE, no token goes out. (Cached keys serving while
    the issuer is down, and failing closed once too old: tests/unit/test_oidc_keys.py.)"""
    oidc.jwks_available = False
    kind, reason, _ = _refused(system, oidc.mint(GOOD))
    assert (kind, reason) == (Unavailable, "ISSUER_UNAVAILABLE")


def test_a_trust_of_one_project_does_not_serve_another(system: LocalSystem, oidc: OidcProvider,
                                                       trusted: dict[str, str]) -> None:
    other = _project(system)
    _kind, reason, _ = _refused(system, oidc.mint(GOOD), project=other)
    assert reason == "NO_MATCHING_TRUST"
    assert _exchange(system, oidc.mint(GOOD), project=trusted["project"]).run.name.startswith(
        f"projects/{trusted['project']}/")


def test_a_token_matching_trusts_of_two_pipelines_is_refused(system: LocalSystem, oidc: OidcProvider,
                                                             trusted: dict[str, str]) -> None:
    _name, second = _file_and_pipeline(system, trusted["project"], b"y")
    _trust(system, oidc, trusted["project"], second, "--github", "org/app")
    _kind, reason, message = _refused(system, oidc.mint(GOOD))
    assert reason == "AMBIGUOUS_TRUST" and trusted["trust"] in message


def test_managing_trusts_needs_a_project_administrator(system: LocalSystem, oidc: OidcProvider,
                                                       trusted: dict[str, str]) -> None:
    with system.client() as admin:
        reader_token = admin.issue_token("user:trust-reader").token
        admin.assign_role("user:trust-reader", "reader")
    env = {"SECUREFILES_TOKEN": reader_token}
    listed = system.cli("--project", trusted["project"], "trusts", "list", env=env)
    assert listed.code == 3  # not even a reader of that project
    added = system.cli("--project", trusted["project"], "trusts", "add", "x", "--pipeline", trusted["pipeline"],
                       "--github", "org/app", env=env)
    assert added.code == 3 and "PERMISSION_DENIED" in added.stderr
    shown = system.cli("--project", trusted["project"], "trusts", "show", trusted["trust"], "--output", "json")
    assert shown.json()["boundClaims"] == {"environment": "prod", "ref": "refs/heads/release/*",
                                            "repository": "org/app"}
    assert system.cli("--project", trusted["project"], "trusts", "delete", trusted["trust"]).code == 0
    _kind, reason, _ = _refused(system, oidc.mint(GOOD))
    assert reason == "NO_MATCHING_TRUST"


def test_a_job_token_says_what_its_ci_provider_signed(system: LocalSystem, oidc: OidcProvider,
                                                      trusted: dict[str, str]) -> None:
    exchanged = _exchange(system, oidc.mint(GOOD))
    claims = jwt.decode(exchanged.access_token, options={"verify_signature": False})
    assert claims["kind"] == "job" and claims["branch"] == "refs/heads/release/1.0"
    assert claims["requested_by"] == "user:alice" and claims["issued_by"] == exchanged.trust
    assert claims["exp"] <= int(time.time()) + 3600 + 5  # the trust's default maximum lifetime


def test_whose_keys_count_is_for_the_organization_to_say(system: LocalSystem, oidc: OidcProvider) -> None:
    """A project administrator who could name the keys of an issuer (a static JWKS, or the CA that
    vouches for its HTTPS) could mint that issuer's tokens: only organization administrators may."""
    project = _project(system)
    _name, pipeline = _file_and_pipeline(system, project, b"z")
    with system.client(project=project) as admin:
        admin.assign_role("user:project-admin", "administrator")
        token = admin.issue_token("user:project-admin").token
    jwks = {"keys": [oidc.key("RS256").public_jwk()]}
    jwks_file = Path(oidc.directory) / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    env = {"SECUREFILES_TOKEN": token}
    for flag, value in (("--jwks-file", str(jwks_file)), ("--ca-file", str(oidc.ca_file))):
        refused = system.cli("--project", project, "trusts", "add", unique("t")[:20], "--pipeline", pipeline,
                             "--github", "org/app", "--issuer", oidc.issuer, flag, value, env=env)
        assert refused.code == 3 and "ORGANIZATION_ADMINISTRATOR_REQUIRED" in refused.stderr
    # Without either, the project administrator may trust an allowed issuer.
    allowed = system.cli("--project", project, "trusts", "add", "plain", "--pipeline", pipeline,
                         "--github", "org/app", env=env)
    assert allowed.code == 0, allowed.stderr
    # An organization administrator may trust an air-gapped issuer by its static keys.
    static = _trust(system, oidc, project, pipeline, "--jwks-file", str(jwks_file), "--claim", "repository=org/s",
                    "--run-claims", "run_id")
    assert static


def test_a_pipeline_with_a_trust_is_not_deleted_from_under_it(system: LocalSystem, oidc: OidcProvider) -> None:
    project = _project(system)
    _name, pipeline = _file_and_pipeline(system, project, b"kept")
    trust = _trust(system, oidc, project, pipeline, "--github", "org/app")
    refused = system.cli("--project", project, "pipelines", "delete", pipeline)
    assert refused.code == 1 and "PIPELINE_HAS_TRUSTS" in refused.stderr and trust in refused.stderr
    assert system.cli("--project", project, "trusts", "delete", trust).code == 0
    deleted = system.cli("--project", project, "pipelines", "delete", pipeline)
    assert deleted.code == 0, deleted.stderr
