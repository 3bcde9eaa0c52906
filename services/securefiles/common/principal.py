"""Who is calling an RPC."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from securefiles.common.job_token import JobToken

USER_PRINCIPAL = re.compile(r"^user:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
GROUP_PRINCIPAL = re.compile(r"^group:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# Service accounts (CI systems without OIDC, automation): tokens from `tokens issue`.
SERVICE_ACCOUNT = re.compile(r"^service:[a-z][a-z0-9-]{0,62}$")
# The services' own names: no account may be called like one of them.
RESERVED_ACCOUNTS = frozenset({"service:storage", "service:kms", "service:authz", "service:web"})


def is_service_account(name: str) -> bool:
    return bool(SERVICE_ACCOUNT.fullmatch(name)) and name not in RESERVED_ACCOUNTS


@dataclass(frozen=True)
class Principal:
    """A person (`user:…`), a service account (`service:…`, kind `account`), a pipeline job
    (`job:<run name>`), or a service proven by its certificate (`service:storage`)."""

    kind: str  # "user" | "account" | "job" | "service"
    name: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_account(self) -> bool:
        return self.kind == "account"

    @property
    def is_job(self) -> bool:
        return self.kind == "job"

    @property
    def issued_by(self) -> str:
        """Who had this principal's token made: a person, `bootstrap`, `oidc:<issuer>` (signed in),
        or a trust (`projects/p/trusts/n`, for a job)."""
        return str(self.claims.get("issued_by", ""))

    @property
    def groups(self) -> tuple[str, ...]:
        """`group:…` principals a person's sign-in carried."""
        groups = self.claims.get("groups", ())
        return tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list | tuple) else ()

    @cached_property
    def job(self) -> JobToken | None:
        """A job's identity, typed (None for anyone else)."""
        return JobToken.from_claims(self.claims) if self.is_job else None

    def is_job_of(self, project: str, run_id: int | None = None) -> bool:
        """A job of `project` (and of run `run_id`, if given)."""
        return self.job is not None and self.job.is_of(project, run_id)

    def is_service_named(self, service: str) -> bool:
        return self.kind == "service" and self.name == f"service:{service}"
