"""Token exchange (RFC 8693 semantics): a CI provider's OIDC token in, a job token out.

The token is verified with its issuer's keys through the trusts of that issuer (see
`oidc.verify_oidc_jwt`), then matched against each trust's audience and bound claims. It must
match trusts of exactly one pipeline; a refusal says which claim did not match.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from securefiles.authz.domain.oidc import IssuerSource, KeySource, audience_matches, shown, unverified, verify_oidc_jwt
from securefiles.authz.domain.trusts import Trust, first_mismatch
from securefiles.common.db_threads import Blocking, run_inline
from securefiles.common.errors import PermissionDenied, SecureFilesError


class TrustLookup(Protocol):
    def trusts_of_issuer(self, issuer: str, project: str | None) -> list[Trust]: ...


@dataclass(frozen=True)
class VerifiedJob:
    """A verified OIDC token matched to exactly one pipeline through `trust`."""

    trust: Trust
    claims: dict[str, Any]


class OidcTokenVerifier:
    """Verifies CI providers' OIDC tokens against the trusts of their issuer."""

    def __init__(self, trusts: TrustLookup, keys: KeySource, clock: Callable[[], dt.datetime],
                 blocking: Blocking = run_inline) -> None:
        self._trusts = trusts
        self._keys = keys
        self._clock = clock
        self._blocking = blocking

    async def verify(self, token: str, project: str | None = None) -> VerifiedJob:
        """The one trust (of `project`, if given) that accepts `token`, or a refusal that says why."""
        _, claims = unverified(token)
        issuer = claims.get("iss")
        candidates = await self._blocking(self._trusts.trusts_of_issuer, issuer, project) if isinstance(
            issuer, str) else []
        if not candidates:
            where = f" of project {project}" if project else ""
            raise PermissionDenied(f"no trust{where} accepts tokens of issuer {shown(str(issuer))}",
                                   reason="NO_MATCHING_TRUST")
        verified: dict[IssuerSource, dict[str, Any] | SecureFilesError] = {}
        matched: list[tuple[Trust, dict[str, Any]]] = []
        refusals: list[str] = []
        for trust in candidates:
            source = trust.issuer_source
            if source not in verified:
                try:
                    verified[source] = await verify_oidc_jwt(token, source, self._keys, self._clock())
                except SecureFilesError as error:
                    verified[source] = error
            outcome = verified[source]
            if isinstance(outcome, SecureFilesError):
                refusals.append(f"trust {trust.display_name}: {outcome.message}")
            elif not audience_matches(outcome, trust.audience):
                refusals.append(f"trust {trust.display_name}: the token's audience is not {shown(trust.audience)}")
            elif (mismatch := first_mismatch(trust, outcome)) is not None:
                refusals.append(f"trust {trust.display_name}: {mismatch}")
            else:
                matched.append((trust, outcome))
        if not matched:
            errors = [o for o in verified.values() if isinstance(o, SecureFilesError)]
            if len(errors) == len(verified):
                raise errors[0]  # the token itself failed (expired, bad signature, issuer down): say that
            raise PermissionDenied("no trust accepts this token: " + "; ".join(refusals), reason="NO_MATCHING_TRUST")
        if len({(t.project, t.pipeline_id) for t, _ in matched}) > 1:
            names = ", ".join(sorted(f"{t.project}/{t.display_name}" for t, _ in matched))
            raise PermissionDenied(f"the token matches trusts of more than one pipeline ({names}); bind more claims",
                                   reason="AMBIGUOUS_TRUST")
        trust, claims = min(matched, key=lambda m: m[0].trust_id)
        return VerifiedJob(trust, claims)
