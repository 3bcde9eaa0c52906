"""Verifying a JWT from an outside OpenID provider: a CI provider's job token, or a person's
ID token from the organization's provider. One rule set for both.

Asymmetric algorithms only (RS256, ES256, EdDSA: never `none`, never an HMAC keyed with a
public key), the key bound to its algorithm, `iss` exact, `aud` containing ours, `exp`, `iat`
and `nbf` within a small leeway by our own clock.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from securefiles.common.errors import InvalidArgument, Unauthenticated

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 16 * 1024
_SHOWN_VALUE = 80


@dataclass(frozen=True)
class IssuerSource:
    """An issuer and where its keys come from."""

    issuer: str
    static_jwks: str = ""  # a JWKS document; empty: OIDC discovery at the issuer
    ca_pem: str = ""  # the CA of the issuer's HTTPS certificate; empty: the system's


class KeySource(Protocol):
    async def key_for(self, source: IssuerSource, kid: str | None) -> jwt.PyJWK:
        """The key `kid` of the issuer (the only key, for a token without `kid`); UNAUTHENTICATED
        if it publishes none such, UNAVAILABLE if its keys cannot be had."""
        ...


def shown(value: str) -> str:
    """A value from a stranger, for a message: quoted, control characters escaped, cut short."""
    text = value if len(value) <= _SHOWN_VALUE else value[: _SHOWN_VALUE - 3] + "..."
    return json.dumps(text)


def unverified(token: str, what: str = "token") -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified: for routing (which issuer?) only. Refuses what cannot be a
    token we would accept: too long, not a JWT, or an algorithm outside the allow-list."""
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise InvalidArgument(f"the {what} must be a JWT of at most {MAX_TOKEN_BYTES} bytes",
                              reason="INVALID_SUBJECT_TOKEN")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthenticated(f"the {what} is not a JWT", reason="INVALID_SUBJECT_TOKEN") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise Unauthenticated(f"token algorithm {shown(str(header.get('alg')))} is not accepted "
                              f"(only {', '.join(ALLOWED_ALGORITHMS)})", reason="ALGORITHM_NOT_ALLOWED")
    return header, claims


async def verify_oidc_jwt(token: str, source: IssuerSource, keys: KeySource, now: dt.datetime,
                          what: str = "OIDC token") -> dict[str, Any]:
    """The token's claims if its signature, issuer and validity window hold; UNAUTHENTICATED
    (with a reason) or UNAVAILABLE (the issuer's keys cannot be had) otherwise. The audience is
    the caller's to check."""
    header, _ = unverified(token, what)
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    key = await keys.key_for(source, kid)
    try:
        claims = jwt.decode(token, key, algorithms=list(ALLOWED_ALGORITHMS), issuer=source.issuer,
                            leeway=LEEWAY_SECONDS, options={"require": ["iss", "exp", "iat"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated(f"the {what} has expired", reason="TOKEN_EXPIRED") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated(f"the {what} is not valid yet (nbf or iat in the future)",
                              reason="TOKEN_NOT_YET_VALID") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated(f"the {what} names another issuer", reason="WRONG_ISSUER") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        raise Unauthenticated(f"the {what}'s signature does not verify", reason="INVALID_SIGNATURE") from None
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"the {what} is not acceptable ({type(error).__name__})",
                              reason="INVALID_SUBJECT_TOKEN") from None
    # By our clock as well as the library's: the window is ours to enforce.
    timestamp = now.timestamp()
    if timestamp >= _number(claims["exp"]) + LEEWAY_SECONDS:
        raise Unauthenticated(f"the {what} has expired", reason="TOKEN_EXPIRED")
    if max(_number(claims["iat"]), _number(claims.get("nbf", 0))) > timestamp + LEEWAY_SECONDS:
        raise Unauthenticated(f"the {what} is not valid yet (nbf or iat in the future)", reason="TOKEN_NOT_YET_VALID")
    return claims


def audience_matches(claims: dict[str, Any], audience: str) -> bool:
    aud = claims.get("aud")
    return aud == audience or (isinstance(aud, list) and audience in aud)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated("a time claim of the token is not a number", reason="INVALID_SUBJECT_TOKEN")
    return float(value)
