"""People's identity comes from the organization's OpenID provider, and nothing inside the
system can mint a person: sign-in (device flow, code + PKCE), sessions that refresh, tokens
issue for service accounts only, runs by hand only for orchestrators, and two-person rules
that compare people who signed in separately.

Outside development mode (`SECUREFILES_DEV_MODE=false`), except the last tests, which show
what dev mode keeps and what it still refuses."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from securefiles.authz.v1 import authz_pb2
from securefiles.client import FailedPrecondition, PermissionDenied, Unauthenticated, types
from securefiles.client.credentials import credentials_path
from tests.conftest import LocalSystem, unique, user_token
from tests.oidc_provider import OidcProvider


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path_factory.mktemp("idp"), client_id="securefiles-cli")
    with provider.running():
        yield provider


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, oidc: OidcProvider) -> Iterator[LocalSystem]:
    """A system that is not in development mode, whose people sign in at `oidc`."""
    base = tmp_path_factory.mktemp("production")
    system = LocalSystem(state_dir=base / "state", home=base / "home", extra_env={
        "SECUREFILES_DEV_MODE": "false",
        "SECUREFILES_OIDC_LOGIN_ISSUER": oidc.issuer,
        "SECUREFILES_OIDC_LOGIN_CLIENT_ID": oidc.client_id,
        "SECUREFILES_OIDC_LOGIN_CA_FILE": str(oidc.ca_file),
        "SECUREFILES_SESSION_TTL_SECONDS": "60",  # always within the refresh window: every command refreshes
        "SSL_CERT_FILE": str(oidc.ca_file),  # the CLI reaches the provider over HTTPS too
    })
    system.start()
    yield system
    system.stop()
    system.drop_databases()


def _session(system: LocalSystem, oidc: OidcProvider, user: str, groups: list[str] | None = None) -> str:
    """What `securefiles login` ends with: the provider's ID token exchanged for a session token."""
    with system.client(token="") as anonymous:
        return anonymous.sign_in(oidc.id_token(user, {"groups": groups or []})).token


def test_the_login_client_says_where_to_sign_in_and_signs_in_as_its_own_types(
        production: LocalSystem, oidc: OidcProvider) -> None:
    with production.client(token="") as anonymous:
        config = anonymous.login.config()
        assert type(config) is types.SignInConfig
        assert (config.enabled, config.issuer, config.client_id) == (True, oidc.issuer, oidc.client_id)
        before = dt.datetime.now(dt.UTC)
        signed = anonymous.login.sign_in(oidc.id_token("dora", {"groups": ["release-managers"]}))
    assert type(signed) is types.SignedIn and signed.token
    assert (signed.principal, signed.groups) == ("user:dora", ("group:release-managers",))
    assert signed.expire_time is not None and before < signed.expire_time <= before + dt.timedelta(seconds=61)


def test_a_person_signs_in_with_the_device_flow_and_uploads_as_themselves(
        production: LocalSystem, oidc: OidcProvider, tmp_path: Path) -> None:
    with production.client() as admin:
        admin.assign_role("user:carol", "creator")
    login = subprocess.Popen([sys.executable, "-m", "securefiles", "login"], env=production.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert login.stderr is not None
    prompt = login.stderr.readline()
    code = re.search(r"enter the code (\d+)", prompt)
    assert code, prompt
    oidc.approve_device(code.group(1), "carol", {"groups": ["release-managers"]})
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "signed in as user:carol (group:release-managers)" in out
    assert oct(credentials_path(production.env()).stat().st_mode & 0o777) == "0o600"

    source = tmp_path / "carol.bin"
    source.write_bytes(b"carol's file")
    uploaded = production.cli("files", "upload", str(source), "--name", unique("carol") + ".bin",
                              "--output", "json")
    assert uploaded.code == 0, uploaded.stderr
    assert uploaded.json()["createdBy"] == "user:carol"

    assert production.cli("logout").code == 0
    assert not json.loads(credentials_path(production.env()).read_text())


def test_a_person_signs_in_in_a_browser_with_pkce(production: LocalSystem, oidc: OidcProvider,
                                                  tmp_path: Path) -> None:
    # The "browser": follows the provider's redirect back to the CLI's loopback callback.
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=30).read()\n")
    oidc.browser_user = "dave"
    result = production.cli("login", "--browser", "--output", "json",
                            env={"BROWSER": f"{sys.executable} {browser} %s"})
    assert result.code == 0, result.stderr
    assert result.json()["principal"] == "user:dave"
    assert production.cli("logout").code == 0


def test_a_session_is_refreshed_at_the_provider(production: LocalSystem, oidc: OidcProvider,
                                                tmp_path: Path) -> None:
    with production.client() as admin:
        admin.assign_role("user:erin", "reader")
    oidc.browser_user = "erin"
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=30).read()\n")
    assert production.cli("login", "--browser", env={"BROWSER": f"{sys.executable} {browser} %s"}).code == 0
    path = credentials_path(production.env())
    before = next(iter(json.loads(path.read_text()).values()))
    listed = production.cli("files", "list", "--output", "json")
    assert listed.code == 0, listed.stderr
    after = next(iter(json.loads(path.read_text()).values()))
    # Refreshed at the provider (which hands out a new refresh token each time), signed in again.
    assert after["refresh_token"] != before["refresh_token"] and after["token"] != before["token"]
    assert jwt.decode(after["token"], options={"verify_signature": False})["sub"] == "user:erin"
    assert production.cli("logout").code == 0


def test_sign_in_refuses_a_token_for_another_client_or_naming_nobody(production: LocalSystem,
                                                                      oidc: OidcProvider) -> None:
    with production.client(token="") as anonymous:
        with pytest.raises(PermissionDenied) as error:
            anonymous.sign_in(oidc.mint({"sub": "x", "aud": "another-app", "preferred_username": "mallory"}))
        assert error.value.reason == "WRONG_AUDIENCE"
        with pytest.raises(PermissionDenied) as error:
            anonymous.sign_in(oidc.id_token("x", {"preferred_username": "bad name<script>"}))
        assert error.value.reason == "INVALID_USER_CLAIM"
        with pytest.raises(Unauthenticated) as error:
            anonymous.sign_in(oidc.id_token("x", {"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}))
        assert error.value.reason == "TOKEN_EXPIRED"


def test_tokens_issue_makes_service_accounts_only(production: LocalSystem) -> None:
    person = production.cli("tokens", "issue", "user:bob")
    assert person.code == 3 and "USER_TOKENS_COME_FROM_SIGN_IN" in person.stderr
    issued = production.cli("tokens", "issue", "service:ci-bot", "--output", "json")
    assert issued.code == 0, issued.stderr
    claims = jwt.decode(issued.json()["token"], options={"verify_signature": False})
    assert (claims["kind"], claims["sub"], claims["issued_by"]) == ("account", "service:ci-bot", "user:admin")
    reserved = production.cli("tokens", "issue", "service:storage")
    assert reserved.code == 2 and "INVALID_PRINCIPAL" in reserved.stderr

    bot = {"SECUREFILES_TOKEN": issued.json()["token"]}
    # A service account never holds the operator role, so never asks for break-glass access.
    operator = production.cli("roles", "assign", "--principal", "service:ci-bot", "--role", "operator")
    assert operator.code == 2 and "INVALID_ROLE_FOR_PRINCIPAL" in operator.stderr
    access = production.cli("access", "request", "--reason", "x", env=bot)
    assert access.code == 3


def test_runs_start_needs_the_orchestrator_role_and_records_who_asserted_it(production: LocalSystem,
                                                                            oidc: OidcProvider) -> None:
    name, pipeline = unique("orch") + ".bin", unique("pipe")
    with production.client() as admin:
        admin.upload_file(b"x", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        admin.assign_role("user:frank", "administrator")  # a library administrator…
        admin.assign_role("service:jenkins", "orchestrator")  # …and a CI system's account
        admin.assign_role("user:grace", "user")
        bot_token = admin.issue_token("service:jenkins").token
    frank = {"SECUREFILES_TOKEN": _session(production, oidc, "frank")}
    refused = production.cli("runs", "start", pipeline, "--branch", "refs/heads/main", env=frank)
    assert refused.code == 3 and "ORCHESTRATOR_REQUIRED" in refused.stderr
    admin_refused = production.cli("runs", "start", pipeline, "--branch", "refs/heads/main")  # not dev mode
    assert admin_refused.code == 3 and "ORCHESTRATOR_REQUIRED" in admin_refused.stderr

    started = production.cli("runs", "start", pipeline, "--branch", "refs/heads/main", "--requested-by",
                             "user:grace", "--output", "json", env={"SECUREFILES_TOKEN": bot_token})
    assert started.code == 0, started.stderr
    run = started.json()
    assert (run["run"]["assertedBy"], run["run"]["requestedBy"]) == ("service:jenkins", "user:grace")
    claims = jwt.decode(run["jobToken"], options={"verify_signature": False})
    assert claims["issued_by"] == "service:jenkins"


def test_approvals_need_people_who_signed_in_themselves(production: LocalSystem, oidc: OidcProvider) -> None:
    name, pipeline = unique("appr") + ".bin", unique("pipe")
    with production.client() as admin:
        admin.upload_file(b"approved", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
        admin.assign_role("service:orchestrator", "orchestrator")
        admin.assign_role("user:henry", "user")
        admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(approvers=["group:approvers"])))
        bot = admin.issue_token("service:orchestrator").token
    with production.client(token=bot) as orchestrator:
        run = orchestrator.start_run(pipeline, "refs/heads/main", requested_by="user:henry")
    with production.client(token=run.job_token) as job:
        with pytest.raises(FailedPrecondition):
            job.download_secure_file(name, production.home / "job")
    # A member of the approvers group per the organization's provider approves, signed in as themselves.
    ivy = _session(production, oidc, "ivy", ["approvers"])
    with production.client(token=ivy) as approver:
        pending_ones = approver.list_approvals(pending_only=True)
        (pending,) = [a for a in pending_ones if a.run.endswith(f"/runs/{run.run.run_id}")]
        decided = approver.decide_approval(pending.approval_id, True)
    assert decided.state == authz_pb2.CHECK_STATE_APPROVED
    with production.client(token=run.job_token) as job:
        assert job.download_secure_file(name, production.home / "job").path.read_bytes() == b"approved"


# -- development mode keeps `tokens issue user:…`, but not one person acting as two -----------


def test_dev_mode_two_person_rules_refuse_a_token_the_requester_issued(system: LocalSystem) -> None:
    requester, second = f"user:{unique('op')}", f"user:{unique('op')}"
    with system.client() as admin:
        admin.assign_role(requester, "operator")
        admin.assign_role(requester, "administrator", organization=True)  # may issue tokens for others
        admin.assign_role(second, "operator")
    requester_env = {"SECUREFILES_TOKEN": user_token(system, requester)}
    request = system.cli("access", "request", "--reason", "INC-7", "--output", "json", env=requester_env)
    assert request.code == 0, request.stderr
    minted = system.cli("tokens", "issue", second, "--output", "json", env=requester_env)
    assert minted.code == 0 and minted.json()["issuedBy"] == requester
    approved = system.cli("access", "approve", request.json()["name"].rsplit("/", 1)[1],
                          env={"SECUREFILES_TOKEN": minted.json()["token"]})
    assert approved.code == 3 and "APPROVER_TOKEN_FROM_REQUESTER" in approved.stderr
    # The same person with a token somebody else issued is a second person.
    genuine = system.cli("access", "approve", request.json()["name"].rsplit("/", 1)[1],
                         env={"SECUREFILES_TOKEN": user_token(system, second)})
    assert genuine.code == 0, genuine.stderr

    # Approving a run: refused with a token the run's requester issued.
    name = unique("two") + ".bin"
    with system.client() as admin:
        admin.upload_file(b"x", name=name)
        admin.add_check(name, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(approvers=[second])))
        admin.assign_role(requester, "user")
    with system.client(token=user_token(system, requester)) as req:
        pipeline = unique("p")
        req.create_pipeline(pipeline)
        req.set_pipeline_permission(name, pipeline, True)
    with system.client() as admin:
        started = admin.start_run(pipeline, "refs/heads/main", requested_by=requester)
    with system.client(token=started.job_token) as job:
        with pytest.raises(FailedPrecondition):
            job.download_secure_file(name, system.home / "two")
    with system.client() as admin:
        pending_ones = admin.list_approvals(pending_only=True)
        (approval,) = [a for a in pending_ones if a.run.endswith(f"/runs/{started.run.run_id}")]
    with system.client(token=minted.json()["token"]) as fake_second:
        with pytest.raises(PermissionDenied) as error:
            fake_second.decide_approval(approval.approval_id, True)
    assert error.value.reason == "APPROVER_TOKEN_FROM_REQUESTER"


def test_outside_dev_mode_trusts_name_only_allowed_issuers(production: LocalSystem) -> None:
    pipeline = unique("p")
    with production.client() as admin:
        admin.create_pipeline(pipeline)
    made_up = production.cli("trusts", "add", "mine", "--pipeline", pipeline, "--issuer", "https://my-own-issuer.example",
                             "--claim", "sub=x", "--run-claims", "run")
    assert made_up.code == 3 and "ISSUER_NOT_ALLOWED" in made_up.stderr
    github = production.cli("trusts", "add", "gh", "--pipeline", pipeline, "--github", "org/app")
    assert github.code == 0, github.stderr


def test_tokens_are_listed_and_a_revoked_one_is_refused_everywhere(fresh_system: LocalSystem) -> None:
    """Storage and kms refresh authz's published keys and revoked tokens at least every
    SIGNING_KEYS_MAX_AGE_SECONDS (2 here); the test waits for that condition, not for the time."""
    fresh_system.extra_env["SECUREFILES_SIGNING_KEYS_MAX_AGE_SECONDS"] = "2"
    fresh_system.start()
    system = fresh_system
    account = f"user:{unique('holder')}"  # a person's token (dev mode); service accounts' revoke alike
    with system.client() as admin:
        admin.assign_role(account, "reader")
        issued = admin.issue_token(account)
    bot = {"SECUREFILES_TOKEN": issued.token}
    token_id = jwt.decode(issued.token, options={"verify_signature": False})["jti"]
    listed = system.cli("tokens", "list", "--subject", account, "--output", "json")
    assert listed.code == 0, listed.stderr
    assert [(t["tokenId"], t["issuedBy"]) for t in listed.json()] == [(token_id, "user:admin")]
    assert system.cli("files", "list", env=bot).code == 0
    # A stranger may neither see nor revoke it: the same answer as for a token that is not there.
    stranger = {"SECUREFILES_TOKEN": user_token(system, f"user:{unique('x')}")}
    assert system.cli("tokens", "list", "--subject", account, "--output", "json", env=stranger).json() == []
    refused = system.cli("tokens", "revoke", token_id, env=stranger)
    assert refused.code == 5 and "TOKEN_NOT_FOUND" in refused.stderr

    revoked = system.cli("tokens", "revoke", token_id, "--output", "json")
    assert revoked.code == 0 and revoked.json()["revokedBy"] == "user:admin", revoked.stderr
    at_authz = system.cli("trusts", "list", env=bot)  # authz refuses it at once
    assert at_authz.code == 3 and "TOKEN_REVOKED" in at_authz.stderr
    deadline = time.monotonic() + 60  # storage learns of it at its next refresh of authz's keys
    while (at_storage := system.cli("files", "list", env=bot)).code == 0:
        assert time.monotonic() < deadline, "storage kept accepting a revoked token"
        time.sleep(1)
    assert at_storage.code == 3 and "TOKEN_REVOKED" in at_storage.stderr
    assert system.cli("tokens", "list", "--subject", account, "--output", "json").json() == []  # not live
