"""People sign in at the organization's OpenID provider; authz turns the ID token into a short
session token. Outside development mode this is the only way a person's token comes to be.

The ID token must come from the configured issuer, for the configured client id (`aud`, and
`azp` when it names several audiences), within its validity window. One claim names the
person (`user:{value}`), a groups claim lists their groups (`group:{name}`, used for approvers).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from securefiles.authz.domain.oidc import IssuerSource, KeySource, audience_matches, shown, verify_oidc_jwt
from securefiles.common.errors import FailedPrecondition, PermissionDenied
from securefiles.common.principal import GROUP_PRINCIPAL, USER_PRINCIPAL
from securefiles.common.tokens import TokenIssuer

MAX_GROUPS = 100
DEFAULT_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class SignInSettings:
    source: IssuerSource
    client_id: str
    user_claim: str = "preferred_username"
    groups_claim: str = "groups"
    session_seconds: int = DEFAULT_SESSION_SECONDS
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")


@dataclass(frozen=True)
class Session:
    token: str
    expire_at: int
    principal: str
    groups: tuple[str, ...]
    token_id: str


class SignIn:
    def __init__(self, settings: SignInSettings | None, keys: KeySource, issuer: TokenIssuer,
                 clock: Callable[[], dt.datetime]) -> None:
        self.settings = settings
        self._keys = keys
        self._issuer = issuer
        self._clock = clock

    async def sign_in(self, id_token: str) -> Session:
        settings = self.settings
        if settings is None:
            raise FailedPrecondition("sign-in is not configured (SECUREFILES_OIDC_LOGIN_ISSUER and _CLIENT_ID)",
                                     reason="SIGN_IN_NOT_CONFIGURED")
        claims = await verify_oidc_jwt(id_token, settings.source, self._keys, self._clock(), what="ID token")
        if not audience_matches(claims, settings.client_id):
            raise PermissionDenied("the ID token was not issued to this installation's client id",
                                   reason="WRONG_AUDIENCE")
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and claims.get("azp") != settings.client_id:
            raise PermissionDenied("the ID token was issued to another party (azp)", reason="WRONG_AUDIENCE")
        value = claims.get(settings.user_claim)
        principal = f"user:{value}" if isinstance(value, str) else ""
        if not USER_PRINCIPAL.fullmatch(principal):
            raise PermissionDenied(f"the ID token's {settings.user_claim} claim {shown(str(value))} does not name a "
                                   "user (letters, digits, . _ @ + -)", reason="INVALID_USER_CLAIM")
        raw_groups = claims.get(settings.groups_claim, [])
        groups = tuple(dict.fromkeys(
            f"group:{g}" for g in (raw_groups if isinstance(raw_groups, list) else [])
            if isinstance(g, str) and GROUP_PRINCIPAL.fullmatch(f"group:{g}")))[:MAX_GROUPS]
        token_id = uuid.uuid4().hex
        token, expire_at = self._issuer.issue(principal, settings.session_seconds, kind="user", groups=list(groups),
                                              issued_by=f"oidc:{settings.source.issuer}", jti=token_id)
        return Session(token, expire_at, principal, groups, token_id)

    @property
    def issuer(self) -> str:
        return self.settings.source.issuer if self.settings else ""
