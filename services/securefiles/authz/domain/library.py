"""Projects and who may do what in them: roles per library and per file, and the access
decisions storage and kms ask for."""

from __future__ import annotations

from collections.abc import Sequence

from securefiles.authz.domain.access import (
    AccessPolicy,
    canonical_file_scope,
    parse_scope,
    validate_role_for_scope,
)
from securefiles.authz.domain.model import Permission, Project, Role, RoleAssignment, Scope
from securefiles.authz.domain.ports import AuthzRepository
from securefiles.common.clock import Clock
from securefiles.common.errors import InvalidArgument, NotFound, PermissionDenied
from securefiles.common.principal import USER_PRINCIPAL, Principal, is_service_account
from securefiles.common.resource_names import (
    MAX_RESOURCES_PER_DECISION,
    REGION_ID,
    parse_project,
    validate_project_id,
)


def _denied(message: str, reason: str = "PERMISSION_DENIED") -> PermissionDenied:
    return PermissionDenied(message, reason=reason)


class Library:
    """Projects, role assignments and access decisions."""

    def __init__(self, repo: AuthzRepository, policy: AccessPolicy, regions: Sequence[str], clock: Clock) -> None:
        self._repo = repo
        self._policy = policy
        self.regions = tuple(regions)
        self._clock = clock

    def _require(self, caller: Principal, permission: Permission, scope: Scope) -> None:
        self._policy.require(caller, permission, scope)

    def project(self, project_id: str) -> Project:
        project = self._repo.get_project(project_id)
        if project is None:
            raise NotFound(f"project {project_id} does not exist", reason="PROJECT_NOT_FOUND")
        return project

    # -- projects ---------------------------------------------------------------------

    def create_project(self, caller: Principal, project_id: str, region: str) -> Project:
        self._require(caller, Permission.ADMINISTER, Scope("organization"))
        validate_project_id(project_id)
        region = region or self.regions[0]
        if not REGION_ID.fullmatch(region) or region not in self.regions:
            raise InvalidArgument(f"unknown region {region!r}; known: {', '.join(self.regions)}",
                                  reason="UNKNOWN_REGION")
        return self._repo.create_project(project_id, region, self._clock())

    def get_project(self, caller: Principal, name: str) -> Project:
        project_id = parse_project(name)
        if caller.is_job and not caller.is_job_of(project_id):
            raise _denied("a job may only read its own project", reason="WRONG_PROJECT")
        return self.project(project_id)

    def list_projects(self, caller: Principal) -> list[Project]:
        if caller.job is not None:
            return [self.project(caller.job.project)]
        return self._repo.list_projects()

    # -- roles ------------------------------------------------------------------------

    def set_role(self, caller: Principal, assignment: RoleAssignment) -> RoleAssignment:
        scope = parse_scope(assignment.scope)
        if caller.is_service_named("storage"):
            # Storage commits an upload: the file becomes known here, its uploader its administrator.
            scope = canonical_file_scope(assignment.scope)
            if assignment.role is not Role.ADMINISTRATOR:
                raise _denied("storage may only grant a file's administrator role")
        elif scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.ADMINISTER, assignment.scope)
        else:
            self._require(caller, Permission.ADMINISTER, scope)
        account = is_service_account(assignment.principal)
        if not (USER_PRINCIPAL.fullmatch(assignment.principal) or account):
            raise InvalidArgument("principal must look like user:<name> or service:<name>", reason="INVALID_PRINCIPAL")
        if account and assignment.role is Role.OPERATOR:
            raise InvalidArgument("service accounts never hold the operator role", reason="INVALID_ROLE_FOR_PRINCIPAL")
        validate_role_for_scope(assignment.role, scope)
        if scope.kind != "organization":
            self.project(scope.project)
        if caller.is_service_named("storage"):
            self._repo.register_file(scope.name, scope.project, assignment.principal, self._clock())
            return RoleAssignment(scope.name, assignment.principal, assignment.role)
        return self._repo.set_role(scope.name, assignment.principal, assignment.role,
                                   exclusive=scope.kind != "organization" and assignment.role is not Role.ORCHESTRATOR)

    def list_roles(self, caller: Principal, scope_name: str) -> tuple[list[RoleAssignment], bool]:
        scope = parse_scope(scope_name)
        if scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.VIEW, scope_name)
        else:
            self._require(caller, Permission.VIEW if scope.kind != "organization" else Permission.ADMINISTER, scope)
        inherit = self._repo.inherits([scope.name]).get(scope.name, True) if scope.kind == "file" else False
        return self._repo.list_roles(scope.name), inherit

    def delete_role(self, caller: Principal, scope_name: str, principal: str) -> None:
        scope = parse_scope(scope_name)
        if scope.kind == "file":
            scope = self._policy.require_file(caller, Permission.ADMINISTER, scope_name)
        else:
            self._require(caller, Permission.ADMINISTER, scope)
        if self._repo.delete_roles(scope.name, principal) == 0:
            raise NotFound(f"{principal} has no role on {scope.name}", reason="ROLE_ASSIGNMENT_NOT_FOUND")

    def set_inheritance(self, caller: Principal, scope_name: str, inherit: bool) -> bool:
        scope = self._policy.require_file(caller, Permission.ADMINISTER, scope_name)
        self._repo.set_inheritance(scope.name, inherit)
        return inherit

    def check_access(
        self, caller: Principal, principal: str, permission: Permission, resources: Sequence[str]
    ) -> list[bool]:
        if not (caller.is_service_named("storage") or caller.is_service_named("kms")):
            raise _denied("only services may ask for access decisions", reason="SERVICE_IDENTITY_REQUIRED")
        if not USER_PRINCIPAL.fullmatch(principal):
            return [False] * len(resources)
        if len(resources) > MAX_RESOURCES_PER_DECISION:
            raise InvalidArgument(f"at most {MAX_RESOURCES_PER_DECISION} resources per check",
                                  reason="TOO_MANY_RESOURCES")
        return self._policy.decide(principal, permission, [parse_scope(r) for r in resources])
