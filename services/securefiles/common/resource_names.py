"""Parsing and formatting of AIP resource names: every name the services and their clients
spell is spelled here."""

from __future__ import annotations

import re
import urllib.parse
import uuid

from securefiles.common.errors import InvalidArgument

PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PROJECT_ID_RULE = "lowercase letters, digits and '-', starting with a letter, at most 63 characters"
REGION_ID = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_NUMBER = re.compile(r"[0-9]{1,10}")
MAX_ID = 2**31 - 1  # ids are 32-bit integers in every database
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# authz decides on at most this many resources per call (CheckAccess, FilterUsableResources).
MAX_RESOURCES_PER_DECISION = 1000
ANY_PIPELINE = "-"  # a run named without its pipeline: `projects/{p}/pipelines/-/runs/{run}`


def parse_id(text: str, what: str = "id") -> int:
    """A numeric id (run, version, check, approval, …) in 1..2^31-1, or INVALID_ARGUMENT."""
    if not is_id(text):
        raise InvalidArgument(f"{what} {text[:20]!r} is not a valid number", reason="INVALID_RESOURCE_NAME")
    return int(text)


def is_id(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text)) and 0 < int(text) <= MAX_ID


def is_file_id(text: str) -> bool:
    """A secure file's id as storage assigns it: a lowercase canonical UUID."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _invalid(what: str, value: str) -> InvalidArgument:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return InvalidArgument(f"{what} {shown!r} is not a valid resource name", reason="INVALID_RESOURCE_NAME")


def validate_project_id(project_id: str, reason: str = "INVALID_PROJECT_ID") -> str:
    """A project id, or INVALID_ARGUMENT saying what a project id may be."""
    if not PROJECT_ID.fullmatch(project_id):
        shown = project_id if len(project_id) <= 80 else project_id[:77] + "..."
        raise InvalidArgument(f"invalid project {shown!r}: a project id is {PROJECT_ID_RULE}", reason=reason)
    return project_id


def parse_project(name: str) -> str:
    """`projects/{project}` -> project."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "projects":
        raise _invalid("project", name)
    return validate_project_id(parts[1], reason="INVALID_RESOURCE_NAME")


def parse_child(name: str, collection: str) -> tuple[str, str]:
    """`projects/{project}/{collection}/{child}` -> (project, child). The child may hold any
    character but `/` and control characters."""
    prefix, sep, child = name.rpartition(f"/{collection}/")
    if not sep or not child or "/" in child or _CONTROL.search(child) or len(child) > 1024:
        raise _invalid(collection, name)
    return parse_project(prefix), child


def parse_run(name: str) -> tuple[str, str, int]:
    """`projects/{p}/pipelines/{pipeline}/runs/{run}` -> (project, pipeline, run id)."""
    pipeline_name, sep, run = name.rpartition("/runs/")
    if not sep or not is_id(run):
        raise _invalid("run", name)
    project, pipeline = parse_child(pipeline_name, "pipelines")
    return project, pipeline, int(run)


def parse_region(name: str) -> str:
    """`regions/{region}` -> region."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "regions" or not REGION_ID.fullmatch(parts[1]):
        raise _invalid("key ring", name)
    return parts[1]


def parse_key_version(name: str) -> tuple[str, int]:
    """`regions/{region}/keyVersions/{n}` -> (region, n)."""
    parts = name.split("/")
    if len(parts) != 4 or parts[2] != "keyVersions" or not is_id(parts[3]):
        raise _invalid("key version", name)
    return parse_region("/".join(parts[:2])), int(parts[3])


# -- formatting ----------------------------------------------------------------------


def project_name(project: str) -> str:
    return f"projects/{project}"


def file_name(project: str, secure_file: str) -> str:
    """`projects/{project}/secureFiles/{secure_file}`: storage's id, or (where a method accepts
    one) a display name."""
    return f"{project_name(project)}/secureFiles/{secure_file}"


def file_version_name(file: str, version: int) -> str:
    """`projects/{project}/secureFiles/{id}/versions/{version}` of the file named `file`."""
    return f"{file}/versions/{version}"


def parse_file_version(name: str) -> tuple[str, int]:
    """`projects/{p}/secureFiles/{id}/versions/{n}` -> (the file's name, n)."""
    file, sep, version = name.rpartition("/versions/")
    if not sep or not is_id(version):
        raise _invalid("file version", name)
    parse_child(file, "secureFiles")
    return file, int(version)


def library_name(project: str) -> str:
    return f"{project_name(project)}/library"


def pipeline_name(project: str, pipeline: int | str) -> str:
    return f"{project_name(project)}/pipelines/{pipeline}"


def run_name(project: str, pipeline: int | str, run: int | str) -> str:
    """A run; `pipeline` may be ANY_PIPELINE where a run is named by its number alone."""
    return f"{pipeline_name(project, pipeline)}/runs/{run}"


def approval_name(project: str, approval: int | str) -> str:
    return f"{project_name(project)}/approvals/{approval}"


def trust_name(project: str, trust: int | str) -> str:
    return f"{project_name(project)}/trusts/{trust}"


def region_name(region: str) -> str:
    """A region's key ring."""
    return f"regions/{region}"


def key_version_name(region: str, version: int | str) -> str:
    return f"{region_name(region)}/keyVersions/{version}"


# -- authz's named policies of a scope -------------------------------------------------
# A principal is data from a stranger: in a role assignment's name it is percent-encoded (every
# byte but letters, digits and `-._~:@+`), so a `/` in it can never add a segment, and a name is
# accepted only in that one spelling, so every assignment has exactly one name.

_PRINCIPAL_SAFE = ":@+"  # with quote()'s letters, digits and `-._~`: every valid principal reads as itself
ROLE_ASSIGNMENTS = "/roleAssignments/"


def role_assignment_name(scope: str, principal: str) -> str:
    """`{scope}/roleAssignments/{principal}`, the principal percent-encoded."""
    return f"{scope}{ROLE_ASSIGNMENTS}{urllib.parse.quote(principal, safe=_PRINCIPAL_SAFE)}"


def parse_role_assignment(name: str) -> tuple[str, str]:
    """`{scope}/roleAssignments/{principal}` -> (scope, principal); INVALID_ARGUMENT unless the
    principal is encoded exactly as role_assignment_name encodes it."""
    scope, sep, encoded = name.rpartition(ROLE_ASSIGNMENTS)
    try:
        principal = urllib.parse.unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise _invalid("role assignment", name) from None
    if not sep or not scope or not principal or role_assignment_name(scope, principal) != name:
        raise _invalid("role assignment", name)
    return scope, principal


PIPELINE_PERMISSIONS, ROLE_INHERITANCE = "pipelinePermissions", "roleInheritance"  # singletons of a file


def pipeline_permissions_name(file: str) -> str:
    """The singleton `projects/{p}/secureFiles/{id}/pipelinePermissions` of a file."""
    return f"{file}/{PIPELINE_PERMISSIONS}"


def role_inheritance_name(file: str) -> str:
    """The singleton `projects/{p}/secureFiles/{id}/roleInheritance` of a file."""
    return f"{file}/{ROLE_INHERITANCE}"


def parse_file_singleton(name: str, singleton: str) -> str:
    """`projects/{p}/secureFiles/{id}/{singleton}` -> the file's name `projects/{p}/secureFiles/{id}`."""
    file, sep, rest = name.rpartition(f"/{singleton}")
    if not sep or rest:
        raise _invalid(singleton, name)
    parse_child(file, "secureFiles")
    return file


def require_agreement(given: str, expected: str, field: str) -> None:
    """A request that names one resource twice (a parent beside the resource's own field): the
    field may be left empty, or must say the same (INVALID_ARGUMENT otherwise)."""
    if given and given != expected:
        shown = given if len(given) <= 80 else given[:77] + "..."
        raise InvalidArgument(f"{field} {shown!r} names another resource than {expected[:200]!r}",
                              reason="INVALID_RESOURCE_NAME")
