"""`client.projects`, `client.roles`, `client.tokens`, `client.access`, `client.trusts`: who may do
what, as the client's own types."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from securefiles.client import convert
from securefiles.client.identity_api import TrustSpec
from securefiles.client.types import (
    AccessRequest,
    IssuedToken,
    NewToken,
    Project,
    RoleAssignment,
    RoleAssignments,
    RoleInheritance,
    Trust,
)

if TYPE_CHECKING:
    from securefiles.client.api import SecureFilesClient


class ProjectsClient:
    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def create(self, project_id: str, region: str = "") -> Project:
        return convert.project(self._api.create_project(project_id, region))

    def list(self) -> builtins.list[Project]:
        return [convert.project(p) for p in self._api.list_projects()]


class RolesClient:
    """Roles on the project's library (default), one file, or the organization."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def assign(self, principal: str, role: str, file: str | None = None, organization: bool = False
               ) -> RoleAssignment:
        return convert.role_assignment(self._api.assign_role(principal, role, file, organization))

    def list(self, file: str | None = None, organization: bool = False) -> RoleAssignments:
        return convert.role_assignments(self._api.list_role_assignments(file, organization))

    def delete(self, principal: str, file: str | None = None, organization: bool = False) -> str:
        """Take away every role `principal` has on the scope; returns the scope."""
        return self._api.delete_role_assignment(principal, file, organization)

    def set_inheritance(self, file: str, inherit: bool) -> RoleInheritance:
        return convert.role_inheritance(self._api.set_role_inheritance(file, inherit))


class TokensClient:
    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def issue(self, principal: str, ttl_seconds: int | None = None) -> NewToken:
        return convert.new_token(self._api.issue_token(principal, ttl_seconds))

    def list(self, subject: str = "", include_ended: bool = False) -> builtins.list[IssuedToken]:
        return [convert.issued_token(t) for t in self._api.list_tokens(subject, include_ended)]

    def revoke(self, token_id: str) -> IssuedToken:
        return convert.issued_token(self._api.revoke_token(token_id))


class BreakGlassClient:
    """Time-bound diagnostic access to a project, approved by a second operator."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def request(self, project: str, reason: str, ttl_seconds: int | None = None) -> AccessRequest:
        return convert.access_request(self._api.request_access(project, reason, ttl_seconds))

    def approve(self, request_id: int) -> AccessRequest:
        return convert.access_request(self._api.approve_access(request_id))

    def revoke(self, request_id: int) -> AccessRequest:
        return convert.access_request(self._api.revoke_access(request_id))

    def list(self) -> builtins.list[AccessRequest]:
        return [convert.access_request(r) for r in self._api.list_access_requests()]


class TrustsClient:
    """Trusts of the project: a CI provider's OIDC tokens with these claims run as this pipeline."""

    def __init__(self, api: SecureFilesClient) -> None:
        self._api = api

    def create(self, name: str, pipeline: str, spec: TrustSpec) -> Trust:
        return convert.trust(self._api.create_trust(name, pipeline, spec))

    def list(self) -> builtins.list[Trust]:
        return [convert.trust(t) for t in self._api.list_trusts()]

    def get(self, trust: str) -> Trust:
        return convert.trust(self._api.get_trust(trust))

    def delete(self, trust: str) -> None:
        self._api.delete_trust(trust)
