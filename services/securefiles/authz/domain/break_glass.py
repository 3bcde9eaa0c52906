"""Break-glass: time-bound diagnostic access of one operator to one project's files.

An operator asks (with a reason and a lifetime); a second operator approves; while the
grant lasts, the first operator may download the project's files, each download audited
as break-glass. It expires by itself and can be revoked at any time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from securefiles.authz.domain.access import AccessPolicy
from securefiles.authz.domain.model import Permission, Scope
from securefiles.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.resource_names import is_id, parse_child, parse_id, parse_project

DEFAULT_TTL = 3600
MAX_TTL = 24 * 3600


class GrantState(StrEnum):
    PENDING = "PENDING"
    GRANTED = "GRANTED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class AccessRequest:
    request_id: int
    project: str
    requester: str
    reason: str
    ttl_seconds: int
    state: GrantState
    created_at: dt.datetime
    approver: str = ""
    granted_at: dt.datetime | None = None
    expire_at: dt.datetime | None = None
    revoked_by: str = ""

    @property
    def name(self) -> str:
        return f"accessRequests/{self.request_id}"

    def current(self, now: dt.datetime) -> AccessRequest:
        """With its lifetime applied: a pending or granted request past its time is expired."""
        if self.state is GrantState.GRANTED and self.expire_at is not None and now >= self.expire_at:
            return replace(self, state=GrantState.EXPIRED)
        if self.state is GrantState.PENDING and now >= self.created_at + dt.timedelta(seconds=MAX_TTL):
            return replace(self, state=GrantState.EXPIRED)
        return self


class AccessRequestRepository(Protocol):
    def create_access_request(self, request: AccessRequest) -> AccessRequest: ...
    def get_access_request(self, request_id: int) -> AccessRequest | None: ...
    def list_access_requests(self) -> list[AccessRequest]: ...
    def save_access_request(self, request: AccessRequest) -> None: ...
    def active_grants(self, requester: str, project: str) -> list[AccessRequest]: ...


class BreakGlass:
    def __init__(self, repo: AccessRequestRepository, policy: AccessPolicy,
                 clock: Callable[[], dt.datetime]) -> None:
        self._repo = repo
        self._policy = policy
        self._clock = clock

    def _require_operator(self, caller: Principal) -> None:
        self._policy.require(caller, Permission.OPERATE, Scope("organization"), reason="OPERATOR_REQUIRED")

    def _get(self, name: str) -> AccessRequest:
        number = parse_id(name.removeprefix("accessRequests/"), "access request")
        found = self._repo.get_access_request(number)
        if found is None:
            raise NotFound(f"access request {number} does not exist", reason="ACCESS_REQUEST_NOT_FOUND")
        return found.current(self._clock())

    def find(self, name: str) -> AccessRequest | None:
        """The named request as it stands, or None (for the audit entry's details only)."""
        number = name.removeprefix("accessRequests/")
        if not is_id(number):
            return None
        found = self._repo.get_access_request(int(number))
        return found.current(self._clock()) if found else None

    def request(self, caller: Principal, project_name: str, reason: str, ttl_seconds: int) -> AccessRequest:
        self._require_operator(caller)
        project = parse_project(project_name)
        if not reason.strip() or len(reason) > 1024:
            raise InvalidArgument("a reason (up to 1024 characters) is required", reason="INVALID_REASON")
        ttl = ttl_seconds or DEFAULT_TTL
        if not 0 < ttl <= MAX_TTL:
            raise InvalidArgument("ttl must be between 1s and 24h", reason="INVALID_TTL")
        return self._repo.create_access_request(AccessRequest(
            0, project, caller.name, reason.strip(), ttl, GrantState.PENDING, self._clock()))

    def approve(self, caller: Principal, name: str) -> AccessRequest:
        """A second operator grants it; the lifetime starts now."""
        self._require_operator(caller)
        found = self._get(name)
        if caller.name == found.requester:
            raise PermissionDenied("a second operator must approve break-glass access",
                                   reason="SECOND_OPERATOR_REQUIRED")
        if caller.issued_by == found.requester:
            # Two people, not one person with two tokens: the approver signed in on their own.
            raise PermissionDenied("the approver's token was issued by the requester; sign in as yourself",
                                   reason="APPROVER_TOKEN_FROM_REQUESTER")
        if found.state is not GrantState.PENDING:
            raise FailedPrecondition(f"access request is {found.state.value.lower()}", reason="NOT_PENDING")
        now = self._clock()
        granted = replace(found, state=GrantState.GRANTED, approver=caller.name, granted_at=now,
                          expire_at=now + dt.timedelta(seconds=found.ttl_seconds))
        self._repo.save_access_request(granted)
        return granted

    def revoke(self, caller: Principal, name: str) -> AccessRequest:
        self._require_operator(caller)
        found = self._get(name)
        if found.state in (GrantState.REVOKED, GrantState.EXPIRED):
            return found
        revoked = replace(found, state=GrantState.REVOKED, revoked_by=caller.name)
        self._repo.save_access_request(revoked)
        return revoked

    def list(self, caller: Principal) -> list[AccessRequest]:
        self._require_operator(caller)
        now = self._clock()
        return [r.current(now) for r in self._repo.list_access_requests()]

    def authorize(self, user: str, resource: str) -> AccessRequest:
        """The active grant that lets `user` download `resource` now, or PERMISSION_DENIED. Only
        while `user` is still an operator: taking the role away ends their grants too."""
        project, _ = parse_child(resource, "secureFiles")
        now = self._clock()
        for grant in self._repo.active_grants(user, project):
            if grant.current(now).state is GrantState.GRANTED:
                if not self._policy.allows(user, Permission.OPERATE, Scope("organization")):
                    raise PermissionDenied(f"{user} is no longer an operator", reason="OPERATOR_REQUIRED")
                return grant
        raise PermissionDenied("only a pipeline job's token, or an approved break-glass grant, may download",
                               reason="JOB_TOKEN_REQUIRED")
