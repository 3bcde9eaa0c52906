"""Role resolution: what a person may do on the organization, a library, or a file.

- Organization ADMINISTRATOR: administers every library of every project.
- Organization OPERATOR: key operations (OPERATE) only.
- ORCHESTRATOR (organization or library): starts runs by hand (ORCHESTRATE) only; no other
  role implies it.
- A library role applies to its files unless the file switches inheritance off.
- A file role applies to that file only; the uploader becomes its ADMINISTRATOR.
"""

from __future__ import annotations

from collections.abc import Sequence

from securefiles.authz.domain.model import ORGANIZATION, SPECIAL_ROLES, Permission, Role, Scope
from securefiles.authz.domain.ports import AuthzRepository
from securefiles.common.errors import InvalidArgument, NotFound, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.resource_names import is_file_id, parse_child, parse_project


def parse_scope(name: str) -> Scope:
    """`organization`, `projects/{p}` or `projects/{p}/secureFiles/{id}`."""
    if name == ORGANIZATION:
        return Scope("organization")
    if "/secureFiles/" in name:
        project, file_id = parse_child(name, "secureFiles")
        return Scope("file", project, file_id)
    return Scope("library", parse_project(name))


def library_rank(roles: set[Role]) -> int:
    """Highest library-ordered role in `roles` (0 if none); OPERATOR and ORCHESTRATOR do not count."""
    ranks = [int(r) for r in roles if r not in SPECIAL_ROLES]
    return max(ranks, default=0)


class AccessPolicy:
    """Answers 'may principal do permission on scope?' from stored role assignments."""

    def __init__(self, repo: AuthzRepository) -> None:
        self._repo = repo

    def decide(self, principal: str, permission: Permission, scopes: Sequence[Scope]) -> list[bool]:
        """One decision per scope, reading all needed assignments in one go."""
        names = {ORGANIZATION}
        for scope in scopes:
            names.add(scope.name)
            if scope.kind == "file":
                names.add(scope.library.name)
        roles = self._repo.roles_of(principal, sorted(names))
        org_roles = roles.get(ORGANIZATION, set())
        file_scopes = [s.name for s in scopes if s.kind == "file"]
        inherits = self._repo.inherits(file_scopes) if file_scopes else {}
        decisions = []
        for scope in scopes:
            decisions.append(self._decide_one(permission, scope, roles, org_roles, inherits))
        return decisions

    @staticmethod
    def _decide_one(
        permission: Permission,
        scope: Scope,
        roles: dict[str, set[Role]],
        org_roles: set[Role],
        inherits: dict[str, bool],
    ) -> bool:
        if permission is Permission.OPERATE:
            return Role.OPERATOR in org_roles
        if permission is Permission.ORCHESTRATE:
            return Role.ORCHESTRATOR in org_roles or Role.ORCHESTRATOR in roles.get(scope.library.name, set())
        if permission is Permission.CREATE and scope.kind == "file":
            return False  # files are created in a library, never inside a file
        if Role.ADMINISTRATOR in org_roles:
            return True
        if scope.kind == "organization":
            return False
        needed = int(permission.minimum_role)
        if scope.kind == "library":
            return library_rank(roles.get(scope.name, set())) >= needed
        rank = library_rank(roles.get(scope.name, set()))
        if inherits.get(scope.name, True):
            rank = max(rank, library_rank(roles.get(scope.library.name, set())))
        return rank >= needed

    def allows(self, principal: str, permission: Permission, scope: Scope) -> bool:
        return self.decide(principal, permission, [scope])[0]

    def require_file(self, caller: Principal, permission: Permission, resource: str) -> Scope:
        """A file's scope for a policy change or read: the canonical id name only (a display name
        is refused), the caller's permission checked before the file's existence (so the answer
        tells outsiders nothing), and NOT_FOUND for an id storage never committed."""
        scope = canonical_file_scope(resource)
        self.require(caller, permission, scope)
        if not self._repo.is_registered(scope.name):
            raise NotFound(f"secure file {scope.name} does not exist", reason="FILE_NOT_FOUND")
        return scope

    def require(self, caller: Principal, permission: Permission, scope: Scope,
                reason: str = "PERMISSION_DENIED") -> None:
        """PERMISSION_DENIED unless `caller` is a person (or a service account) allowed `permission`
        on `scope`."""
        if not (caller.is_user or caller.is_account):
            raise PermissionDenied("this operation needs a person's token", reason="USER_TOKEN_REQUIRED")
        if not self.allows(caller.name, permission, scope):
            raise PermissionDenied(f"{caller.name} may not {permission.name.lower()} {scope.name}", reason=reason)


def parse_file_scope(resource: str) -> Scope:
    """A secure file's scope, or INVALID_ARGUMENT for anything else."""
    scope = parse_scope(resource)
    if scope.kind != "file":
        raise InvalidArgument(f"{resource} is not a secure file", reason="INVALID_RESOURCE_NAME")
    return scope


def canonical_file_scope(resource: str) -> Scope:
    """`projects/{p}/secureFiles/{id}` with the id storage assigned, or INVALID_ARGUMENT."""
    scope = parse_file_scope(resource)
    if not is_file_id(scope.file_id):
        raise InvalidArgument("a secure file is named by its id (projects/{project}/secureFiles/{id}), not by its "
                              "display name", reason="INVALID_RESOURCE_NAME")
    return scope


def validate_role_for_scope(role: Role, scope: Scope) -> None:
    """OPERATOR, ORCHESTRATOR and ADMINISTRATOR at organization scope; library roles and
    ORCHESTRATOR on a library; no CREATOR on a file."""
    if scope.kind == "organization":
        ok = role in (Role.OPERATOR, Role.ADMINISTRATOR, Role.ORCHESTRATOR)
    elif scope.kind == "library":
        ok = role is not Role.OPERATOR
    else:
        ok = role in (Role.READER, Role.USER, Role.ADMINISTRATOR)
    if not ok:
        raise InvalidArgument(f"role {role.name} cannot be assigned on {scope.kind} scope",
                              reason="INVALID_ROLE_FOR_SCOPE")
