"""Role resolution on the organization, libraries and files."""

from __future__ import annotations

import pytest

from securefiles.authz.domain.access import AccessPolicy, parse_scope, validate_role_for_scope
from securefiles.authz.domain.model import ORGANIZATION, Permission, Role, Scope
from securefiles.common.errors import InvalidArgument


class InMemoryRoles:
    """The role and inheritance parts of AuthzRepository."""

    def __init__(self) -> None:
        self.assignments: dict[tuple[str, str], set[Role]] = {}
        self.inheritance: dict[str, bool] = {}

    def set_role(self, scope: str, principal: str, role: Role, exclusive: bool = True) -> None:
        roles = self.assignments.setdefault((scope, principal), set())
        if exclusive:
            roles.clear()
        roles.add(role)

    def roles_of(self, principal: str, scopes: list[str]) -> dict[str, set[Role]]:
        return {s: set(r) for (s, p), r in self.assignments.items() if p == principal and s in scopes and r}

    def inherits(self, file_scopes: list[str]) -> dict[str, bool]:
        return {s: self.inheritance.get(s, True) for s in file_scopes}

    def set_inheritance(self, file_scope: str, inherit: bool) -> None:
        self.inheritance[file_scope] = inherit


ALICE = "user:alice"
ORG = Scope("organization")
LIB = Scope("library", "demo")
FILE = Scope("file", "demo", "f-1")
OTHER_FILE = Scope("file", "demo", "f-2")
OTHER_LIB = Scope("library", "other")
OTHER_LIB_FILE = Scope("file", "other", "f-1")
LIBRARY_ROLES = [Role.READER, Role.USER, Role.CREATOR, Role.ADMINISTRATOR]
LIBRARY_PERMISSIONS = [Permission.VIEW, Permission.USE, Permission.CREATE, Permission.ADMINISTER]
EXPECTED_ORDER = {  # role -> the permissions it grants on its library (reader < user < creator < administrator)
    Role.READER: {Permission.VIEW},
    Role.USER: {Permission.VIEW, Permission.USE},
    Role.CREATOR: {Permission.VIEW, Permission.USE, Permission.CREATE},
    Role.ADMINISTRATOR: {Permission.VIEW, Permission.USE, Permission.CREATE, Permission.ADMINISTER},
}


@pytest.fixture
def repo():
    return InMemoryRoles()


@pytest.fixture
def policy(repo):
    return AccessPolicy(repo)


def test_nobody_may_do_anything_without_roles(policy):
    for permission in Permission:
        assert policy.decide(ALICE, permission, [ORG, LIB, FILE]) == [False, False, False]


@pytest.mark.parametrize("role", LIBRARY_ROLES, ids=lambda r: r.name)
@pytest.mark.parametrize("permission", LIBRARY_PERMISSIONS, ids=lambda p: p.name)
def test_library_role_order(repo, policy, role, permission):
    repo.set_role(LIB.name, ALICE, role)
    assert policy.allows(ALICE, permission, LIB) == (permission in EXPECTED_ORDER[role])


@pytest.mark.parametrize("role", LIBRARY_ROLES, ids=lambda r: r.name)
@pytest.mark.parametrize("permission", [Permission.VIEW, Permission.USE, Permission.ADMINISTER], ids=lambda p: p.name)
def test_library_roles_apply_to_its_files(repo, policy, role, permission):
    repo.set_role(LIB.name, ALICE, role)
    assert policy.allows(ALICE, permission, FILE) == (permission in EXPECTED_ORDER[role])


@pytest.mark.parametrize("role", LIBRARY_ROLES, ids=lambda r: r.name)
def test_library_roles_do_not_apply_when_the_file_turns_inheritance_off(repo, policy, role):
    repo.set_role(LIB.name, ALICE, role)
    repo.set_inheritance(FILE.name, False)
    for permission in Permission:
        assert not policy.allows(ALICE, permission, FILE)
    # Other files of the library still inherit, and the library itself is unaffected.
    assert policy.allows(ALICE, Permission.VIEW, OTHER_FILE)
    assert policy.allows(ALICE, Permission.VIEW, LIB)


def test_file_roles_still_apply_without_inheritance(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.ADMINISTRATOR)
    repo.set_role(FILE.name, ALICE, Role.READER)
    repo.set_inheritance(FILE.name, False)
    assert policy.allows(ALICE, Permission.VIEW, FILE)
    assert not policy.allows(ALICE, Permission.USE, FILE)
    assert not policy.allows(ALICE, Permission.ADMINISTER, FILE)


@pytest.mark.parametrize("role", [Role.READER, Role.USER, Role.ADMINISTRATOR], ids=lambda r: r.name)
def test_file_roles_apply_to_that_file_only(repo, policy, role):
    repo.set_role(FILE.name, ALICE, role)
    for permission in (Permission.VIEW, Permission.USE, Permission.ADMINISTER):
        assert policy.allows(ALICE, permission, FILE) == (permission in EXPECTED_ORDER[role])
        assert not policy.allows(ALICE, permission, OTHER_FILE)
        assert not policy.allows(ALICE, permission, LIB)
        assert not policy.allows(ALICE, permission, OTHER_LIB_FILE)


def test_file_role_and_library_role_combine_to_the_higher(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.USER)
    repo.set_role(FILE.name, ALICE, Role.ADMINISTRATOR)
    assert policy.allows(ALICE, Permission.ADMINISTER, FILE)
    assert not policy.allows(ALICE, Permission.ADMINISTER, OTHER_FILE)
    assert policy.allows(ALICE, Permission.USE, OTHER_FILE)


@pytest.mark.parametrize("where", [LIB, FILE], ids=["library-role", "file-role"])
def test_create_is_never_granted_on_a_file(repo, policy, where):
    repo.set_role(where.name, ALICE, Role.ADMINISTRATOR)
    assert policy.allows(ALICE, Permission.ADMINISTER, FILE)
    assert not policy.allows(ALICE, Permission.CREATE, FILE)


def test_roles_do_not_leak_between_libraries(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.ADMINISTRATOR)
    repo.set_role(Scope("library", "demo-2").name, "user:bob", Role.ADMINISTRATOR)
    for permission in LIBRARY_PERMISSIONS:
        assert not policy.allows(ALICE, permission, OTHER_LIB)
        assert not policy.allows(ALICE, permission, Scope("library", "demo-2"))
        assert not policy.allows(ALICE, permission, Scope("file", "demo-2", "f-1"))
        assert not policy.allows("user:bob", permission, LIB)


def test_a_library_role_is_not_an_organization_role(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.ADMINISTRATOR)
    for permission in Permission:
        assert not policy.allows(ALICE, permission, ORG)


def test_organization_administrator_may_do_everything_but_operate(repo, policy):
    repo.set_role(ORGANIZATION, ALICE, Role.ADMINISTRATOR)
    for scope in (ORG, LIB, OTHER_LIB, FILE, OTHER_LIB_FILE):
        for permission in (Permission.VIEW, Permission.USE, Permission.ADMINISTER):
            assert policy.allows(ALICE, permission, scope), (permission, scope)
        assert not policy.allows(ALICE, Permission.OPERATE, scope)
    assert policy.allows(ALICE, Permission.CREATE, LIB)
    # ...including files that switched inheritance off.
    repo.set_inheritance(FILE.name, False)
    assert policy.allows(ALICE, Permission.ADMINISTER, FILE)


def test_operate_needs_the_organization_operator_role(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.ADMINISTRATOR)
    repo.set_role(FILE.name, ALICE, Role.ADMINISTRATOR)
    assert not policy.allows(ALICE, Permission.OPERATE, ORG)
    repo.set_role(ORGANIZATION, ALICE, Role.OPERATOR)
    assert policy.allows(ALICE, Permission.OPERATE, ORG)


def test_organization_operator_gets_no_library_access(repo, policy):
    repo.set_role(ORGANIZATION, ALICE, Role.OPERATOR)
    for permission in LIBRARY_PERMISSIONS:
        assert policy.decide(ALICE, permission, [ORG, LIB, FILE]) == [False, False, False]


def test_an_operator_role_stored_on_a_library_grants_nothing(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.OPERATOR)
    for permission in Permission:
        assert policy.decide(ALICE, permission, [ORG, LIB, FILE]) == [False, False, False]


def test_decide_answers_each_scope_in_order(repo, policy):
    repo.set_role(LIB.name, ALICE, Role.READER)
    repo.set_role(OTHER_LIB_FILE.name, ALICE, Role.USER)
    repo.set_inheritance(OTHER_FILE.name, False)
    scopes = [FILE, OTHER_LIB, OTHER_FILE, OTHER_LIB_FILE, LIB, ORG]
    assert policy.decide(ALICE, Permission.VIEW, scopes) == [True, False, False, True, True, False]
    assert policy.decide(ALICE, Permission.USE, scopes) == [False, False, False, True, False, False]
    assert policy.decide(ALICE, Permission.VIEW, []) == []


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "scope"), [
    ("organization", Scope("organization")),
    ("projects/demo", Scope("library", "demo")),
    ("projects/demo-2", Scope("library", "demo-2")),
    ("projects/demo/secureFiles/f-1", Scope("file", "demo", "f-1")),
    ("projects/demo/secureFiles/signing.pem", Scope("file", "demo", "signing.pem")),
])
def test_parse_scope(name, scope):
    parsed = parse_scope(name)
    assert parsed == scope
    assert parsed.name == name


@pytest.mark.parametrize("name", [
    "",
    "organizations",
    "Organization",
    "projects",
    "projects/",
    "projects/Demo",
    "projects/1demo",
    "projects/demo/",
    "projects/demo/pipelines/1",
    "projects/demo/secureFiles/",
    "projects/demo/secureFiles/a/b",
    "projects//secureFiles/f-1",
    "projects/demo/x/secureFiles/f-1",
    "/projects/demo",
])
def test_parse_scope_rejects_other_names(name):
    with pytest.raises(InvalidArgument) as err:
        parse_scope(name)
    assert err.value.reason == "INVALID_RESOURCE_NAME"


@pytest.mark.parametrize("name", ["projects/demo\n", "projects/demo\n/secureFiles/f-1"])
def test_parse_scope_rejects_a_project_id_with_a_trailing_newline(name):
    with pytest.raises(InvalidArgument):
        parse_scope(name)


VALID_ROLES = {
    "organization": {Role.OPERATOR, Role.ADMINISTRATOR, Role.ORCHESTRATOR},
    "library": {Role.READER, Role.USER, Role.CREATOR, Role.ADMINISTRATOR, Role.ORCHESTRATOR},
    "file": {Role.READER, Role.USER, Role.ADMINISTRATOR},
}


@pytest.mark.parametrize("scope", [ORG, LIB, FILE], ids=lambda s: s.kind)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_validate_role_for_scope(scope, role):
    if role in VALID_ROLES[scope.kind]:
        validate_role_for_scope(role, scope)
    else:
        with pytest.raises(InvalidArgument) as err:
            validate_role_for_scope(role, scope)
        assert err.value.reason == "INVALID_ROLE_FOR_SCOPE"
