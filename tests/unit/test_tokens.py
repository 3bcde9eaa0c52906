"""Bearer tokens: only EdDSA tokens from authz's keys, for us, in their validity window, of a known shape."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securefiles.common.errors import Unauthenticated
from securefiles.common.tokens import (
    LEEWAY_SECONDS,
    PublishedKeys,
    TokenIssuer,
    TokenVerifier,
    generate_signing_key_pem,
    key_id,
    load_signing_key,
)

JOB_CLAIMS = {"kind": "job", "project": "demo", "pipeline": "projects/demo/pipelines/1",
              "run": "projects/demo/pipelines/1/runs/7"}


class KeyServer:
    """Stands in for authz's GetSigningKeys: counts how often it is asked."""

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        self.keys = {key_id(k.public_key()): k.public_key() for k in keys}
        self.revoked: set[str] = set()
        self.calls = 0

    async def fetch(self) -> PublishedKeys:
        self.calls += 1
        return PublishedKeys(dict(self.keys), frozenset(self.revoked))


@pytest.fixture
def signing_key():
    return load_signing_key(generate_signing_key_pem())


@pytest.fixture
def issuer(signing_key):
    return TokenIssuer(signing_key)


@pytest.fixture
def keys(signing_key):
    return KeyServer(signing_key)


@pytest.fixture
def verifier(keys):
    return TokenVerifier(keys.fetch, refresh_interval=3600)


def verify(verifier: TokenVerifier, token: str):
    return asyncio.run(verifier.verify(token))


def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as err:
        verify(verifier, token)
    return err.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade(header: dict, payload: dict, sign=lambda signing_input: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims(**overrides):
    now = int(time.time())
    base = {"iss": "securefiles-authz", "aud": "securefiles", "sub": "user:alice", "iat": now, "nbf": now - 1,
            "exp": now + 600, "kind": "user"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict, key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


# -- accepted ---------------------------------------------------------------------------------


def test_user_token_verifies_into_a_user_principal(issuer, verifier):
    token, exp = issuer.issue("user:alice", 600, kind="user")
    principal = verify(verifier, token)
    assert (principal.kind, principal.name) == ("user", "user:alice")
    assert principal.is_user and not principal.is_job
    assert principal.claims["sub"] == "user:alice"
    assert principal.claims["exp"] == exp
    assert principal.token == token


def test_job_token_verifies_into_a_job_principal(issuer, verifier):
    token, _ = issuer.issue("job:projects/demo/pipelines/1/runs/7", 600, **JOB_CLAIMS)
    principal = verify(verifier, token)
    assert (principal.kind, principal.name) == ("job", "job:projects/demo/pipelines/1/runs/7")
    assert principal.is_job
    for claim, value in JOB_CLAIMS.items():
        assert principal.claims[claim] == value


def test_issuer_reports_the_expiry_it_signed(signing_key):
    issuer = TokenIssuer(signing_key, clock=lambda: 1_000_000.5)
    token, exp = issuer.issue("user:alice", 90, kind="user")
    assert exp == 1_000_090
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == exp


def test_token_a_little_past_expiry_is_tolerated_for_clock_skew(signing_key, verifier):
    issuer = TokenIssuer(signing_key, clock=lambda: time.time() - 600 - (LEEWAY_SECONDS - 10))
    token, _ = issuer.issue("user:alice", 600, kind="user")
    assert verify(verifier, token).name == "user:alice"


# -- rejected ---------------------------------------------------------------------------------


def test_alg_none_is_rejected(issuer, verifier):
    for alg in ("none", "None", "NONE"):
        token = handmade({"alg": alg, "typ": "JWT", "kid": issuer.kid}, claims())
        assert token.endswith(".")  # an unsigned JWT
        assert rejected(verifier, token) == "INVALID_TOKEN"


def test_hmac_signed_with_the_public_key_is_rejected(issuer, verifier):
    """Algorithm confusion: HS256 keyed with the (public) verification key must not verify."""
    raw = issuer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = issuer.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (raw, pem):
        token = handmade({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, claims(),
                         lambda data, secret=secret: hmac.new(secret, data, hashlib.sha256).digest())
        assert rejected(verifier, token) == "INVALID_TOKEN"


def test_header_claiming_eddsa_over_an_hmac_signature_is_rejected(issuer, verifier):
    raw = issuer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    token = handmade({"alg": "EdDSA", "typ": "JWT", "kid": issuer.kid}, claims(),
                     lambda data: hmac.new(raw, data, hashlib.sha256).digest())
    assert rejected(verifier, token) == "INVALID_TOKEN"


@pytest.mark.parametrize("kid", [None, 7, ["x"]])
def test_missing_or_non_string_kid_is_rejected(signing_key, verifier, kid):
    header = {"alg": "EdDSA", "typ": "JWT"} if kid is None else {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    token = handmade(header, claims(), signing_key.sign)
    assert rejected(verifier, token) == "INVALID_TOKEN"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "...", "eyJhbGciOiJFZERTQSJ9"])
def test_malformed_tokens_are_rejected(verifier, token):
    assert rejected(verifier, token) == "INVALID_TOKEN"


def test_unknown_kid_is_rejected_and_refresh_is_rate_limited(issuer, keys, verifier):
    stranger = Ed25519PrivateKey.generate()
    token = sign(claims(), stranger, key_id(stranger.public_key()))
    assert rejected(verifier, token) == "UNKNOWN_SIGNING_KEY"
    assert keys.calls == 1
    for _ in range(5):
        assert rejected(verifier, sign(claims(), stranger, f"random-{_}")) == "UNKNOWN_SIGNING_KEY"
    assert keys.calls == 1  # still within refresh_interval: authz is not hammered
    # Known keys keep working without a fetch.
    assert verify(verifier, issuer.issue("user:alice", 60, kind="user")[0]).name == "user:alice"
    assert keys.calls == 1


def test_a_new_key_is_picked_up_once_the_refresh_interval_allows(issuer, keys, signing_key):
    verifier = TokenVerifier(keys.fetch, refresh_interval=0)
    assert verify(verifier, issuer.issue("user:alice", 60, kind="user")[0]).name == "user:alice"
    rotated = Ed25519PrivateKey.generate()
    keys.keys[key_id(rotated.public_key())] = rotated.public_key()
    assert verify(verifier, TokenIssuer(rotated).issue("user:bob", 60, kind="user")[0]).name == "user:bob"
    assert keys.calls == 2


def test_a_token_authz_publishes_as_revoked_is_refused_even_when_remembered(issuer, keys):
    verifier = TokenVerifier(keys.fetch, refresh_interval=3600, max_key_age=0)  # refresh on every call
    token, _ = issuer.issue("service:ci", 600, kind="account", jti="a" * 32)
    other, _ = issuer.issue("service:ci", 600, kind="account", jti="b" * 32)
    assert verify(verifier, token).name == "service:ci"  # verified, and remembered
    keys.revoked.add("a" * 32)
    assert rejected(verifier, token) == "TOKEN_REVOKED"
    assert verify(verifier, other).name == "service:ci"  # only that token


def test_revoking_at_the_verifier_applies_at_once(issuer, keys):
    verifier = TokenVerifier(keys.fetch, refresh_interval=3600)  # keys stay cached
    token, _ = issuer.issue("user:alice", 600, kind="user", jti="c" * 32)
    assert verify(verifier, token).name == "user:alice"
    verifier.revoke("c" * 32)
    assert rejected(verifier, token) == "TOKEN_REVOKED"


def test_another_key_claiming_the_real_kid_is_rejected(issuer, verifier):
    impostor = Ed25519PrivateKey.generate()
    assert rejected(verifier, sign(claims(), impostor, issuer.kid)) == "INVALID_TOKEN"


@pytest.mark.parametrize("aud", ["other-service", "securefiles-authz", ["other"], ["other", "securefiles "]])
def test_wrong_audience_is_rejected(signing_key, issuer, verifier, aud):
    assert rejected(verifier, sign(claims(aud=aud), signing_key, issuer.kid)) == "WRONG_AUDIENCE"


@pytest.mark.parametrize("aud", ["", None])
def test_missing_audience_is_rejected(signing_key, issuer, verifier, aud):
    assert rejected(verifier, sign(claims(aud=aud), signing_key, issuer.kid)) == "INVALID_TOKEN"


@pytest.mark.parametrize("iss", ["someone-else", "securefiles-authz ", "securefiles"])
def test_wrong_issuer_is_rejected(signing_key, issuer, verifier, iss):
    assert rejected(verifier, sign(claims(iss=iss), signing_key, issuer.kid)) == "INVALID_TOKEN"


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "sub", "iss"])
def test_tokens_missing_required_claims_are_rejected(signing_key, issuer, verifier, missing):
    assert rejected(verifier, sign(claims(**{missing: None}), signing_key, issuer.kid)) == "INVALID_TOKEN"


def test_expired_token_is_rejected(signing_key, verifier):
    issuer = TokenIssuer(signing_key, clock=lambda: time.time() - 3600)
    token, exp = issuer.issue("user:alice", 600, kind="user")
    assert exp < time.time() - LEEWAY_SECONDS
    assert rejected(verifier, token) == "TOKEN_EXPIRED"


def test_token_from_the_future_is_not_yet_valid(signing_key, verifier):
    issuer = TokenIssuer(signing_key, clock=lambda: time.time() + 3600)
    token, _ = issuer.issue("user:alice", 600, kind="user")
    assert rejected(verifier, token) == "TOKEN_NOT_YET_VALID"


def test_tampered_payload_is_rejected(issuer, verifier):
    token, _ = issuer.issue("user:alice", 600, kind="user")
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "user:admin"
    forged = f"{header}.{b64(json.dumps(body).encode())}.{signature}"
    assert rejected(verifier, forged) == "INVALID_TOKEN"


def test_tampered_signature_is_rejected(issuer, verifier):
    token, _ = issuer.issue("user:alice", 600, kind="user")
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    assert rejected(verifier, f"{header}.{payload}.{b64(bytes(raw))}") == "INVALID_TOKEN"


@pytest.mark.parametrize("extra", [{}, {"kind": "admin"}, {"kind": "service"}, {"kind": ""}, {"kind": "USER"}])
def test_missing_or_unknown_kind_is_rejected(issuer, verifier, extra):
    token, _ = issuer.issue("user:alice", 600, **extra)
    assert rejected(verifier, token) == "INVALID_TOKEN"


@pytest.mark.parametrize("missing", ["project", "pipeline", "run"])
def test_job_token_without_its_run_claims_is_rejected(issuer, verifier, missing):
    job = {k: v for k, v in JOB_CLAIMS.items() if k != missing}
    token, _ = issuer.issue("job:x", 600, **job)
    assert rejected(verifier, token) == "INVALID_TOKEN"


def test_job_token_with_non_string_run_claims_is_rejected(issuer, verifier):
    token, _ = issuer.issue("job:x", 600, **{**JOB_CLAIMS, "project": ["demo", "other"]})
    assert rejected(verifier, token) == "INVALID_TOKEN"


@pytest.mark.parametrize("sub", ["alice", "user:", "user: alice", "user:-alice", "job:alice", "service:storage",
                                 "user:alice/bob", "User:alice", "user:" + "a" * 129])
def test_user_token_whose_subject_is_not_user_name_is_rejected(issuer, verifier, sub):
    token, _ = issuer.issue(sub, 600, kind="user")
    assert rejected(verifier, token) == "INVALID_TOKEN"


def test_user_subject_with_a_trailing_newline_is_rejected(issuer, verifier):
    token, _ = issuer.issue("user:alice\n", 600, kind="user")
    assert rejected(verifier, token) == "INVALID_TOKEN"


# -- a token seen before ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def counting_decode(monkeypatch) -> list[str]:
    """Every full signature check the verifier makes, by token."""
    checked: list[str] = []
    real_decode = jwt.decode

    def decode(token, *args, **kwargs):
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr("securefiles.common.tokens.jwt.decode", decode)
    return checked


def test_a_token_seen_before_is_not_checked_again_while_it_is_valid(issuer, keys, monkeypatch):
    checked = counting_decode(monkeypatch)
    verifier = TokenVerifier(keys.fetch, refresh_interval=3600)
    token, _ = issuer.issue("job:projects/demo/pipelines/1/runs/7", 600, **JOB_CLAIMS)
    first, second = verify(verifier, token), verify(verifier, token)
    assert checked == [token]
    assert second == first and second.claims["run"] == JOB_CLAIMS["run"]


def test_a_remembered_token_is_refused_once_it_expires(issuer, keys):
    clock = Clock()
    verifier = TokenVerifier(keys.fetch, refresh_interval=3600, clock=clock)
    token, exp = issuer.issue("user:alice", 60, kind="user")
    assert verify(verifier, token).name == "user:alice"
    clock.now = exp + LEEWAY_SECONDS - 1
    assert verify(verifier, token).name == "user:alice"  # still within the skew allowance
    clock.now = exp + LEEWAY_SECONDS
    assert rejected(verifier, token) == "TOKEN_EXPIRED"


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(issuer, keys):
    verifier = TokenVerifier(keys.fetch, refresh_interval=0, max_key_age=0)
    token, _ = issuer.issue("user:alice", 600, kind="user")
    assert verify(verifier, token).name == "user:alice"
    keys.keys = {}  # authz rotated its signing key out
    assert rejected(verifier, token) == "UNKNOWN_SIGNING_KEY"


def test_remembered_tokens_are_bounded(issuer, keys, monkeypatch):
    checked = counting_decode(monkeypatch)
    verifier = TokenVerifier(keys.fetch, refresh_interval=3600, remembered=2)
    tokens = [issuer.issue(f"user:u{i}", 600, kind="user")[0] for i in range(3)]
    for token in tokens:
        verify(verifier, token)
    verify(verifier, tokens[2])
    verify(verifier, tokens[0])  # the oldest was forgotten: checked in full again
    assert checked == [*tokens, tokens[0]]
