"""Trusts: which CI provider's OIDC tokens stand for which pipeline of a project.

A trust names an issuer and an audience, where the issuer's keys come from (OIDC discovery,
or a static JWKS for air-gapped installs), the claims a token must carry (each exact or a
glob), and which claims give the run's branch, its identity and its requester. It is the
only way a job gets in without somebody holding an orchestrator's token: what the job is
comes from claims its CI provider signed, never from a caller's say-so.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from securefiles.authz.domain.oidc import ALLOWED_ALGORITHMS, IssuerSource, shown
from securefiles.common.errors import InvalidArgument, PermissionDenied
from securefiles.common.glob import glob_match
from securefiles.common.principal import USER_PRINCIPAL
from securefiles.common.resource_names import trust_name

DEFAULT_MAX_TTL = 3600
# A run may wait for approvals or business hours; its token never outlives this.
MAX_TTL_LIMIT = 31 * 24 * 3600
MIN_TTL = 60
MAX_BOUND_CLAIMS = 32
MAX_RUN_CLAIMS = 4
MAX_GLOB = 256
MAX_JWKS_BYTES = 64 * 1024
MAX_CA_BYTES = 64 * 1024
_TRUST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Trust:
    project: str
    trust_id: int
    display_name: str
    pipeline_id: int
    issuer: str
    audience: str
    bound_claims: tuple[tuple[str, str], ...]
    branch_claim: str = ""
    ref_type_claim: str = ""  # GitLab: `ref` is short; `ref_type` says branch or tag
    run_claims: tuple[str, ...] = ()
    requester_claim: str = ""
    max_ttl_seconds: int = DEFAULT_MAX_TTL
    static_jwks: str = ""  # a JWKS document; empty: discovery at the issuer
    ca_pem: str = ""  # the CA that signs the issuer's HTTPS certificate; empty: the system's
    created_by: str = ""
    created_at: dt.datetime | None = None

    @property
    def name(self) -> str:
        return trust_name(self.project, self.trust_id)

    @property
    def issuer_source(self) -> IssuerSource:
        return IssuerSource(self.issuer, self.static_jwks, self.ca_pem)


def _invalid(message: str, reason: str = "INVALID_TRUST") -> InvalidArgument:
    return InvalidArgument(message, reason=reason)


def _check_claim_name(name: str, what: str) -> str:
    if not _CLAIM_NAME.fullmatch(name):
        raise _invalid(f"{what} {name[:64]!r} is not a claim name (letters, digits, _ . : -, at most 64)")
    return name


def validate_issuer(issuer: str) -> str:
    """An `https://` URL without query, fragment or credentials (OIDC discovery appends to it)."""
    parts = urlsplit(issuer)
    if (parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username
            or parts.password or len(issuer) > 512 or _CONTROL.search(issuer)):
        raise _invalid("issuer must be an https:// URL without query, fragment or credentials",
                       reason="INVALID_ISSUER")
    return issuer


def validate_trust(trust: Trust) -> Trust:
    """Refuse a trust that could never work, or that would let any token of the issuer in."""
    if not _TRUST_NAME.fullmatch(trust.display_name):
        raise _invalid("trust name must be lowercase letters, digits and -, 1-63 characters", reason="INVALID_NAME")
    validate_issuer(trust.issuer)
    if not trust.audience or len(trust.audience) > 256 or _CONTROL.search(trust.audience):
        raise _invalid("audience is required (at most 256 characters)", reason="INVALID_AUDIENCE")
    if not 1 <= len(trust.bound_claims) <= MAX_BOUND_CLAIMS:
        raise _invalid(f"give 1-{MAX_BOUND_CLAIMS} bound claims (e.g. repository=org/app): without one, every "
                       "token of the issuer would be accepted", reason="INVALID_BOUND_CLAIMS")
    seen = set()
    for claim, pattern in trust.bound_claims:
        _check_claim_name(claim, "bound claim")
        if claim in seen:
            raise _invalid(f"bound claim {claim} is given twice", reason="INVALID_BOUND_CLAIMS")
        seen.add(claim)
        if not pattern or len(pattern) > MAX_GLOB or _CONTROL.search(pattern):
            raise _invalid(f"the pattern of {claim} must be 1-{MAX_GLOB} characters", reason="INVALID_BOUND_CLAIMS")
    if all(set(pattern) <= {"*", "?"} for _, pattern in trust.bound_claims):
        raise _invalid("at least one bound claim must name a value, not only wildcards",
                       reason="INVALID_BOUND_CLAIMS")
    for claim in (trust.branch_claim, trust.ref_type_claim, trust.requester_claim):
        if claim:
            _check_claim_name(claim, "claim")
    if not 1 <= len(trust.run_claims) <= MAX_RUN_CLAIMS:
        raise _invalid(f"give 1-{MAX_RUN_CLAIMS} run claims (claims whose values identify one run, e.g. "
                       "run_id,run_attempt)", reason="INVALID_RUN_CLAIMS")
    for claim in trust.run_claims:
        _check_claim_name(claim, "run claim")
    if not MIN_TTL <= trust.max_ttl_seconds <= MAX_TTL_LIMIT:
        raise _invalid("max ttl must be between 1m and 31d", reason="INVALID_TTL")
    if trust.static_jwks:
        parse_jwks(trust.static_jwks)
    if len(trust.ca_pem) > MAX_CA_BYTES or (trust.ca_pem and "-----BEGIN CERTIFICATE-----" not in trust.ca_pem):
        raise _invalid("the CA must be PEM certificates (at most 64 KiB)", reason="INVALID_CA")
    return trust


def parse_jwks(document: str | bytes) -> list[dict[str, Any]]:
    """The keys of a JWKS document, or INVALID_ARGUMENT. Keys of algorithms we never accept are
    dropped; a document with no usable key is refused."""
    if len(document) > MAX_JWKS_BYTES:
        raise _invalid("a JWKS is at most 64 KiB", reason="INVALID_JWKS")
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("the JWKS is not JSON", reason="INVALID_JWKS") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise _invalid("a JWKS is a JSON object with a `keys` list", reason="INVALID_JWKS")
    usable = [k for k in keys if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")
              and k.get("use", "sig") == "sig" and k.get("alg", ALLOWED_ALGORITHMS[0]) in ALLOWED_ALGORITHMS]
    if not usable:
        raise _invalid("the JWKS holds no RSA, EC or OKP signing key", reason="INVALID_JWKS")
    return usable


def claim_text(value: object) -> str | None:
    """A claim as text for matching: strings as they are, integers and booleans in JSON form;
    anything else (lists, objects, null) matches nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def first_mismatch(trust: Trust, claims: Mapping[str, Any]) -> str | None:
    """Why `claims` do not satisfy the trust's bound claims (None: they do)."""
    for claim, pattern in trust.bound_claims:
        value = claim_text(claims.get(claim))
        if value is None:
            return f"claim {claim} is missing"
        if not glob_match(pattern, value):
            return f"claim {claim} {shown(value)} does not match {shown(pattern)}"
    return None


@dataclass(frozen=True)
class JobClaims:
    """What a verified OIDC token says about its job, through one trust."""

    branch: str
    requester: str  # `user:…`, or "" when the token names nobody we can map
    run_key: str
    recorded: dict[str, str]  # the signed claims the run keeps as its evidence


_RECORDED = ("iss", "sub", "aud", "jti", "repository", "ref", "ref_type", "environment", "workflow", "run_id",
             "run_attempt", "actor", "project_path", "pipeline_id", "job_id", "user_login", "sha")


def job_claims(trust: Trust, claims: Mapping[str, Any]) -> JobClaims:
    """Branch, requester and run identity from signed claims; PERMISSION_DENIED if the token
    lacks what the trust needs."""
    values = []
    for claim in trust.run_claims:
        value = claim_text(claims.get(claim))
        if value is None or not value:
            raise PermissionDenied(f"the token has no {claim} claim, which identifies the run for trust "
                                   f"{trust.display_name}", reason="RUN_CLAIM_MISSING")
        values.append(value)
    branch = ""
    if trust.branch_claim:
        ref = claim_text(claims.get(trust.branch_claim)) or ""
        if not ref:
            raise PermissionDenied(f"the token has no {trust.branch_claim} claim (the branch)",
                                   reason="BRANCH_CLAIM_MISSING")
        ref_type = claim_text(claims.get(trust.ref_type_claim)) if trust.ref_type_claim else None
        branch = {"branch": f"refs/heads/{ref}", "tag": f"refs/tags/{ref}"}.get(ref_type or "", ref)
        if len(branch) > 256 or _CONTROL.search(branch):
            raise PermissionDenied(f"the branch claim {shown(branch)} is not a ref", reason="INVALID_BRANCH_CLAIM")
    requester = ""
    if trust.requester_claim:
        name = claim_text(claims.get(trust.requester_claim))
        if name and USER_PRINCIPAL.fullmatch(f"user:{name}"):
            requester = f"user:{name}"
    recorded = {k: v[:256] for k in (*_RECORDED, *(c for c, _ in trust.bound_claims), *trust.run_claims)
                if (v := claim_text(claims.get(k))) is not None}
    # Unit separators keep ("1", "23") apart from ("12", "3").
    return JobClaims(branch, requester, f"{trust.trust_id}\x1f" + "\x1f".join(values), recorded)
