"""The tokens authz issued to people and service accounts: who holds each, who had it made,
and revocation. (Job tokens end with their run; the bootstrap token is made outside authz.)

A revoked token's id is published with the signing keys (`GetSigningKeys`), so every service
refuses it once its verifier refreshes (`SIGNING_KEYS_MAX_AGE_SECONDS`); authz at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from securefiles.authz.domain.access import AccessPolicy
from securefiles.authz.domain.model import Permission, Scope
from securefiles.common.errors import InvalidArgument, NotFound, PermissionDenied
from securefiles.common.principal import Principal

MAX_LISTED = 1000


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    subject: str
    kind: str
    issued_by: str
    issued_at: dt.datetime
    expire_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revoked_by: str = ""

    @property
    def name(self) -> str:
        return f"tokens/{self.token_id}"


class TokenRegistryRepository(Protocol):
    def record_token(self, token: IssuedToken) -> None: ...
    def get_token(self, token_id: str) -> IssuedToken | None: ...
    def list_tokens(self, subject: str | None, related_to: str | None, live_at: dt.datetime | None,
                    limit: int) -> list[IssuedToken]:
        """Newest first; `related_to`: only tokens it holds or issued; `live_at`: only unexpired,
        unrevoked ones then."""
        ...
    def revoke_token(self, token_id: str, at: dt.datetime, by: str) -> None: ...
    def revoked_ids(self, now: dt.datetime) -> set[str]:
        """Revoked tokens that have not expired yet."""
        ...


class TokenRegistry:
    def __init__(self, repo: TokenRegistryRepository, policy: AccessPolicy,
                 clock: Callable[[], dt.datetime]) -> None:
        self._repo = repo
        self._policy = policy
        self._clock = clock

    def record(self, token_id: str, subject: str, kind: str, issued_by: str, expire_epoch: int) -> None:
        now = self._clock()
        self._repo.record_token(IssuedToken(token_id, subject, kind, issued_by, now,
                                            dt.datetime.fromtimestamp(expire_epoch, dt.UTC)))

    def _sees_all(self, caller: Principal) -> bool:
        return self._policy.allows(caller.name, Permission.ADMINISTER, Scope("organization"))

    def list(self, caller: Principal, subject: str, include_ended: bool) -> list[IssuedToken]:
        if not (caller.is_user or caller.is_account):
            raise PermissionDenied("tokens are listed to people and service accounts", reason="USER_TOKEN_REQUIRED")
        related = None if self._sees_all(caller) else caller.name
        return self._repo.list_tokens(subject or None, related, None if include_ended else self._clock(), MAX_LISTED)

    def revoke(self, caller: Principal, name: str) -> IssuedToken:
        token_id = name.removeprefix("tokens/")
        if not name.startswith("tokens/") or not token_id.isalnum() or len(token_id) > 64:
            raise InvalidArgument(f"{name[:80]!r} is not a token name (tokens/ID)", reason="INVALID_RESOURCE_NAME")
        found = self._repo.get_token(token_id)
        allowed = found is not None and (caller.name in (found.subject, found.issued_by) or self._sees_all(caller))
        if not (caller.is_user or caller.is_account) or found is None or not allowed:
            # The same answer for a token that does not exist and one that is not yours.
            raise NotFound(f"no token {token_id} that you may revoke", reason="TOKEN_NOT_FOUND")
        if found.revoked_at is not None:
            return found
        now = self._clock()
        self._repo.revoke_token(token_id, now, caller.name)
        return replace(found, revoked_at=now, revoked_by=caller.name)

    def revoked_ids(self) -> set[str]:
        return self._repo.revoked_ids(self._clock())
