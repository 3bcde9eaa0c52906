"""Throttling before authentication (issue #15, item 9): a flood of forged tokens is refused
before its signatures are checked, and adds a bounded number of audit rows."""

from __future__ import annotations

import threading
import time

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securefiles.common.rich_status import error_info_of
from securefiles.common.tokens import key_id, load_signing_key
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer

BURST, RATE = 20, 5
SYSTEM_ENV = {"SECUREFILES_AUTH_FAILURE_BURST": str(BURST), "SECUREFILES_AUTH_FAILURES_PER_SECOND": str(RATE)}
THREADS, REQUESTS = 3, 150


def _forged(system: LocalSystem) -> str:
    """The real key id, a signature by another key."""
    real = load_signing_key((system.state_dir / "secrets" / "authz-signing-key.pem").read_bytes())
    now = int(time.time())
    claims = {"sub": "user:admin", "kind": "user", "aud": "securefiles", "iat": now, "exp": now + 600}
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                      headers={"kid": key_id(real.public_key())})


def test_a_flood_of_forged_tokens_is_throttled_and_adds_few_audit_rows(own_system: LocalSystem) -> None:
    system = own_system
    token = _forged(system)
    (before,) = system.query("storage", "SELECT count(*) FROM audit_events")[0]
    reasons: list[str] = []
    lock = threading.Lock()

    def flood() -> None:
        with system.channel("storage") as channel:
            stub = storage_pb2_grpc.SecureFileServiceStub(channel)
            for _ in range(REQUESTS):
                try:
                    stub.GetSecureFile(storage_pb2.GetSecureFileRequest(name="projects/default/secureFiles/x"),
                                       metadata=bearer(token), timeout=10)
                except grpc.RpcError as error:
                    with lock:
                        reasons.append(error_info_of(error).reason)

    started = time.monotonic()
    threads = [threading.Thread(target=flood) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert len(reasons) == THREADS * REQUESTS
    verified = reasons.count("INVALID_TOKEN")
    assert verified <= BURST + RATE * elapsed + 5, (verified, elapsed)
    assert reasons.count("AUTHENTICATION_THROTTLED") >= THREADS * REQUESTS - verified
    (after,) = system.query("storage", "SELECT count(*) FROM audit_events")[0]
    # one entry per kind of failure (forged token, throttled) per 10 s interval, not one per request
    assert after - before <= 2 * (1 + int(elapsed / 10) + 1), (after - before, elapsed)
    rows = system.query("storage", "SELECT reason, details FROM audit_events WHERE sequence > :s", s=before)
    assert any("INVALID_TOKEN" in reason for reason, _ in rows)

    # The client gets its budget back as time passes: a real token is served again.
    deadline = time.monotonic() + 30
    while True:
        try:
            with system.channel("storage") as channel:
                storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(
                    storage_pb2.ListSecureFilesRequest(parent="projects/default"),
                    metadata=bearer(system.admin_token), timeout=10)
            break
        except grpc.RpcError as error:
            assert error_info_of(error).reason == "AUTHENTICATION_THROTTLED"
            assert time.monotonic() < deadline, "still throttled after 30 s"
            time.sleep(0.2)


def test_a_flood_of_bad_oidc_tokens_at_the_token_exchange_is_throttled_too(own_system: LocalSystem) -> None:
    """ExchangeToken needs no token of ours: its failures count against the same budget, and
    its identical refusals are one audit entry per interval."""
    system = own_system
    now = int(time.time())
    stranger = jwt.encode({"iss": "https://nobody.example", "aud": "securefiles", "iat": now, "exp": now + 600},
                          Ed25519PrivateKey.generate(), algorithm="EdDSA")
    (before,) = system.query("authz", "SELECT count(*) FROM audit_events")[0]
    reasons = []
    started = time.monotonic()
    with system.client(token="") as anonymous:
        for _ in range(REQUESTS):
            try:
                anonymous.exchange_token(stranger)
            except Exception as error:
                reasons.append(getattr(error, "reason", repr(error)))
    elapsed = time.monotonic() - started
    assert len(reasons) == REQUESTS
    refused = reasons.count("NO_MATCHING_TRUST")
    assert 0 < refused <= BURST + RATE * elapsed + 5, (refused, elapsed)
    assert reasons.count("AUTHENTICATION_THROTTLED") == REQUESTS - refused
    (after,) = system.query("authz", "SELECT count(*) FROM audit_events")[0]
    assert after - before <= 2 * (1 + int(elapsed / 10) + 1), (after - before, elapsed)
