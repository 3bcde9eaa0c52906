"""A role assignment's name carries a principal, data from a stranger: it is percent-encoded so it
can never add or change a path segment, and only that one spelling parses back."""

from __future__ import annotations

import pytest

from securefiles.common.errors import InvalidArgument
from securefiles.common.resource_names import (
    PIPELINE_PERMISSIONS,
    ROLE_INHERITANCE,
    parse_file_singleton,
    parse_role_assignment,
    pipeline_permissions_name,
    require_agreement,
    role_assignment_name,
    role_inheritance_name,
)

FILE = "projects/p/secureFiles/0b5c2d7e-0000-4000-8000-000000000001"


@pytest.mark.parametrize("scope", ["organization", "projects/p", FILE])
@pytest.mark.parametrize("principal", [
    "user:bob", "user:ann+ci@example.com", "service:ci",  # valid: they read as themselves
    "user:a/roleAssignments/user:admin", "user:x%2F", "user:../../organization", "user:ä \n\x1b[2J", "user:%",
])
def test_every_principal_round_trips_and_cannot_add_a_segment(scope: str, principal: str) -> None:
    name = role_assignment_name(scope, principal)
    assert parse_role_assignment(name) == (scope, principal)
    encoded = name.removeprefix(f"{scope}/roleAssignments/")
    assert "/" not in encoded and not any(ch in encoded for ch in "\n\x1b ")


def test_a_valid_principal_reads_as_itself() -> None:
    assert role_assignment_name("projects/p", "user:ann+ci@example.com") == \
        "projects/p/roleAssignments/user:ann+ci@example.com"
    assert role_assignment_name("organization", "user:a/b") == "organization/roleAssignments/user:a%2Fb"


@pytest.mark.parametrize("name", [
    "projects/p/roleAssignments/user%3Abob",  # encoded where it needs not be
    "projects/p/roleAssignments/user:a%2fb",  # lower-case hex
    "projects/p/roleAssignments/user:a/b",  # a raw `/`
    "projects/p/roleAssignments/user:%FF",  # not UTF-8
    "projects/p/roleAssignments/user:%2",  # a broken escape
    "projects/p/roleAssignments/",
    "/roleAssignments/user:bob",
    "roleAssignments/user:bob",
    "projects/p/roleassignments/user:bob",
])
def test_any_other_spelling_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_role_assignment(name)
    assert refused.value.reason == "INVALID_RESOURCE_NAME"


def test_a_files_singletons_parse_back_to_the_file() -> None:
    assert parse_file_singleton(pipeline_permissions_name(FILE), PIPELINE_PERMISSIONS) == FILE
    assert parse_file_singleton(role_inheritance_name(FILE), ROLE_INHERITANCE) == FILE
    for wrong in (FILE, role_inheritance_name(FILE), f"{pipeline_permissions_name(FILE)}/x",
                  "projects/p/pipelinePermissions", "projects/p/secureFiles/a/b/pipelinePermissions"):
        with pytest.raises(InvalidArgument) as refused:
            parse_file_singleton(wrong, PIPELINE_PERMISSIONS)
        assert refused.value.reason == "INVALID_RESOURCE_NAME", wrong


def test_a_resource_named_twice_must_be_named_alike() -> None:
    require_agreement("", FILE, "check.resource")  # left empty: the parent says it
    require_agreement(FILE, FILE, "check.resource")
    with pytest.raises(InvalidArgument) as refused:
        require_agreement("projects/q/secureFiles/x", FILE, "check.resource")
    assert refused.value.reason == "INVALID_RESOURCE_NAME" and "check.resource" in str(refused.value)
