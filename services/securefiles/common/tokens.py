"""Bearer tokens: EdDSA-signed JWTs issued by authz and verified locally everywhere.

Verification keys come from authz's GetSigningKeys, cached and refreshed when a token
names an unknown `kid` (at most once per `refresh_interval`, so random kids cannot make
us hammer authz). A token that verified is remembered (bounded, until it expires, and only
while the key that signed it is still the one authz publishes): a job's second call skips
the signature check but none of the checks that can change.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from securefiles.common.errors import Unauthenticated
from securefiles.common.job_token import JobToken
from securefiles.common.principal import USER_PRINCIPAL, Principal, is_service_account

AUDIENCE = "securefiles"
ISSUER = "securefiles-authz"
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30
BOOTSTRAP_ISSUER = "bootstrap"  # who issued the administrator token that `up` or `init-secrets` wrote

Clock = Callable[[], float]


def key_id(public_key: Ed25519PublicKey) -> str:
    """A stable `kid`: a short hash of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode().rstrip("=")


def generate_signing_key_pem() -> bytes:
    """A new Ed25519 signing key in PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse an Ed25519 signing key."""
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing key must be Ed25519")
    return key


class TokenIssuer:
    """Signs tokens with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, clock: Clock = time.time) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)
        self._clock = clock

    def issue(self, subject: str, ttl_seconds: int, **claims: Any) -> tuple[str, int]:
        """Return (token, expiry epoch seconds)."""
        now = int(self._clock())
        exp = now + int(ttl_seconds)
        payload = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now - 1,
            "exp": exp, "jti": uuid.uuid4().hex, **claims,
        }
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, exp


@dataclass(frozen=True)
class PublishedKeys:
    """What authz publishes for verifiers: its signing keys, and revoked tokens not yet expired."""

    keys: dict[str, Ed25519PublicKey]
    revoked: frozenset[str] = frozenset()

    @classmethod
    def from_raw(cls, public_keys: Mapping[str, bytes], revoked: Iterable[str] = ()) -> PublishedKeys:
        """From raw Ed25519 public keys by `kid`, as GetSigningKeys carries them."""
        return cls({kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in public_keys.items()},
                   frozenset(revoked))


KeyFetcher = Callable[[], Awaitable[PublishedKeys]]


class TokenVerifier:
    """Verifies tokens against authz's public keys; never accepts another algorithm, nor a token
    authz published as revoked (as of the last refresh; `revoke` applies one at once)."""

    def __init__(self, fetch_keys: KeyFetcher, refresh_interval: float = 5.0, max_key_age: float = 300.0,
                 remembered: int = 4096, clock: Clock = time.time) -> None:
        self._fetch_keys = fetch_keys
        # token -> (principal, kid, the key it verified with); oldest first, at most `remembered`.
        self._verified: OrderedDict[str, tuple[Principal, str, Ed25519PublicKey]] = OrderedDict()
        self._remembered = remembered
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._revoked: frozenset[str] = frozenset()
        self._refresh_interval = refresh_interval
        # Keys are re-fetched at least this often, so a rotated-out signing key stops working.
        self._max_key_age = max_key_age
        self._last_refresh = float("-inf")
        self._fetched_at = float("-inf")

    def revoke(self, token_id: str) -> None:
        """Refuse this token from now on (the next refresh brings the published list)."""
        self._revoked = self._revoked | {token_id}

    async def _refresh(self, now: float) -> None:
        self._last_refresh = now
        published = await self._fetch_keys()
        self._keys, self._revoked = dict(published.keys), published.revoked
        self._fetched_at = now

    def _refuse_revoked(self, claims: dict[str, Any]) -> None:
        if claims.get("jti") in self._revoked:
            raise Unauthenticated("the token was revoked", reason="TOKEN_REVOKED")

    async def _key_for(self, kid: str) -> Ed25519PublicKey:
        now = time.monotonic()
        if now - self._fetched_at >= self._max_key_age:
            await self._refresh(now)
        key = self._keys.get(kid)
        if key is not None:
            return key
        if now - self._last_refresh >= self._refresh_interval:
            await self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed by an unknown key", reason="UNKNOWN_SIGNING_KEY")
        return key

    async def verify(self, token: str) -> Principal:
        """Check signature, audience, issuer and validity window; return the principal. A token
        seen before skips the signature check while it is unexpired and its key still published."""
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, kid, key = remembered
            # Still within its validity (the same leeway as below), and the key it verified
            # with is still the published one (a refresh yields new key objects: re-verify).
            if self._clock() < principal.claims["exp"] + LEEWAY_SECONDS and await self._key_for(kid) is key:
                self._refuse_revoked(principal.claims)
                self._verified.move_to_end(token)
                return principal
            self._verified.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token", reason="INVALID_TOKEN") from None
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise Unauthenticated("token algorithm or key id not accepted", reason="INVALID_TOKEN")
        key = await self._key_for(header["kid"])
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "nbf", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid", reason="TOKEN_NOT_YET_VALID") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token has the wrong audience", reason="WRONG_AUDIENCE") from None
        except jwt.PyJWTError:
            raise Unauthenticated("token signature or claims invalid", reason="INVALID_TOKEN") from None
        if self._clock() >= claims["exp"] + LEEWAY_SECONDS:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED")  # by our clock, as below
        self._refuse_revoked(claims)
        principal = principal_from_claims(claims, token)
        self._remember(token, principal, header["kid"], key)
        return principal

    def _remember(self, token: str, principal: Principal, kid: str, key: Ed25519PublicKey) -> None:
        if self._remembered <= 0:
            return
        self._verified[token] = (principal, kid, key)
        while len(self._verified) > self._remembered:
            self._verified.popitem(last=False)


def principal_from_claims(claims: dict[str, Any], token: str) -> Principal:
    """Map verified claims to a principal, rejecting shapes we never issue."""
    kind = claims.get("kind")
    subject = claims.get("sub", "")
    if kind == "user" and isinstance(subject, str) and USER_PRINCIPAL.fullmatch(subject):
        return Principal("user", subject, claims, token)
    if kind == "account" and isinstance(subject, str) and is_service_account(subject):
        return Principal("account", subject, claims, token)
    if kind == "job" and JobToken.from_claims(claims) is not None:
        return Principal("job", subject, claims, token)
    raise Unauthenticated("token kind not recognised", reason="INVALID_TOKEN")
