"""The outside issuers' key cache: refresh, refetch once on an unknown kid, and fail closed
once cached keys are too old while the issuer is down (clock injected, fetch scripted)."""

from __future__ import annotations

import asyncio
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from securefiles.authz.adapters.oidc_keys import IssuerKeys, IssuerUnreachable
from securefiles.authz.domain.oidc import IssuerSource
from securefiles.common.errors import Unauthenticated, Unavailable

SOURCE = IssuerSource("https://issuer.example")


def _jwk(kid: str) -> dict:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)), "kid": kid, "alg": "ES256", "use": "sig"}


class ScriptedIssuer(IssuerKeys):
    """IssuerKeys whose fetch returns the published keys, or fails while the issuer is down."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__(refresh_after=300, max_age=3600, min_refetch=10, clock=lambda: clock[0])
        self.published = {"k1": _jwk("k1")}
        self.down = False
        self.fetches = 0

    async def _fetch(self, source: IssuerSource) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        if self.down:
            raise IssuerUnreachable("connection refused")
        return {kid: jwt.PyJWK(data) for kid, data in self.published.items()}


def _key(keys: IssuerKeys, kid: str | None) -> jwt.PyJWK:
    return asyncio.run(keys.key_for(SOURCE, kid))


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def test_keys_are_cached_and_refreshed_when_old(clock: list[float]) -> None:
    keys = ScriptedIssuer(clock)
    assert _key(keys, "k1").key_id == "k1" and keys.fetches == 1
    _key(keys, "k1")
    assert keys.fetches == 1  # cached
    clock[0] += 301
    _key(keys, "k1")
    assert keys.fetches == 2  # refreshed after refresh_after


def test_an_unknown_kid_refetches_once_then_is_refused(clock: list[float]) -> None:
    keys = ScriptedIssuer(clock)
    _key(keys, "k1")
    keys.published["k2"] = _jwk("k2")  # the issuer rotated
    clock[0] += 11
    assert _key(keys, "k2").key_id == "k2" and keys.fetches == 2
    clock[0] += 11
    for _ in range(5):  # random kids cannot make us hammer the issuer: one refetch per interval
        with pytest.raises(Unauthenticated) as error:
            _key(keys, "nope")
        assert error.value.reason == "UNKNOWN_SIGNING_KEY"
    assert keys.fetches == 3
    clock[0] += 11
    with pytest.raises(Unauthenticated):
        _key(keys, "nope")
    assert keys.fetches == 4


def test_issuer_down_serves_cached_keys_until_they_expire_then_fails_closed(clock: list[float]) -> None:
    keys = ScriptedIssuer(clock)
    _key(keys, "k1")
    keys.down = True
    clock[0] += 1800  # stale, the refresh fails, the cached key still serves
    assert _key(keys, "k1").key_id == "k1"
    clock[0] += 1801  # older than max_age
    with pytest.raises(Unavailable) as error:
        _key(keys, "k1")
    assert error.value.reason == "ISSUER_UNAVAILABLE"
    keys.down = False
    clock[0] += 11
    assert _key(keys, "k1").key_id == "k1"  # back once the issuer is


def test_issuer_never_reached_fails_closed(clock: list[float]) -> None:
    keys = ScriptedIssuer(clock)
    keys.down = True
    with pytest.raises(Unavailable) as error:
        _key(keys, "k1")
    assert error.value.reason == "ISSUER_UNAVAILABLE"


def test_a_static_jwks_needs_no_issuer(clock: list[float]) -> None:
    keys = ScriptedIssuer(clock)
    static = IssuerSource("https://airgapped.example", static_jwks=json.dumps({"keys": [_jwk("s1")]}))
    assert asyncio.run(keys.key_for(static, "s1")).key_id == "s1"
    assert asyncio.run(keys.key_for(static, None)).key_id == "s1"  # one key: a token without kid uses it
    assert keys.fetches == 0
