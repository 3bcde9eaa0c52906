"""Authorization concepts: roles, scopes, projects, pipelines, runs, pipeline permissions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from securefiles.common.etags import etag
from securefiles.common.resource_names import file_name, pipeline_name, project_name, run_name

ORGANIZATION = "organization"


class Role(IntEnum):
    """Library roles are ordered: each includes the ones below it."""

    READER = 1
    USER = 2
    CREATOR = 3
    ADMINISTRATOR = 4
    OPERATOR = 5  # organization scope only; not part of the library order
    # Starts runs by hand (asserting branch and requester); organization or library scope, not
    # part of the library order and not implied by ADMINISTRATOR.
    ORCHESTRATOR = 6


# Roles outside the library order: each grants only its own permission.
SPECIAL_ROLES = frozenset({Role.OPERATOR, Role.ORCHESTRATOR})


class Permission(Enum):
    VIEW = Role.READER
    USE = Role.USER
    CREATE = Role.CREATOR
    ADMINISTER = Role.ADMINISTRATOR
    OPERATE = Role.OPERATOR
    ORCHESTRATE = Role.ORCHESTRATOR

    @property
    def minimum_role(self) -> Role:
        return Role(self.value)


@dataclass(frozen=True)
class Scope:
    """`organization`, a library (`projects/{p}`) or a file (`projects/{p}/secureFiles/{id}`)."""

    kind: str  # "organization" | "library" | "file"
    project: str = ""
    file_id: str = ""

    @property
    def name(self) -> str:
        if self.kind == "organization":
            return ORGANIZATION
        if self.kind == "library":
            return project_name(self.project)
        return file_name(self.project, self.file_id)

    @property
    def library(self) -> Scope:
        return Scope("library", self.project)


@dataclass(frozen=True)
class RoleAssignment:
    scope: str
    principal: str
    role: Role


@dataclass(frozen=True)
class Project:
    project_id: str
    region: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Pipeline:
    project: str
    pipeline_id: int
    display_name: str
    created_at: dt.datetime

    @property
    def name(self) -> str:
        return pipeline_name(self.project, self.pipeline_id)

    @property
    def etag(self) -> str:
        """AIP-154; a pipeline is not changed after it is made, so this stays until it is deleted."""
        return etag(self.name, self.display_name)


class RunState(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Run:
    project: str
    run_id: int
    pipeline_id: int
    branch: str
    requested_by: str
    state: RunState
    created_at: dt.datetime
    expire_at: dt.datetime
    completed_at: dt.datetime | None
    token_id: str
    trust_id: int | None = None  # the trust whose OIDC token started it
    asserted_by: str = ""  # started by hand: who asserted its branch and requester
    claims: tuple[tuple[str, str], ...] = ()  # the signed claims it came from

    @property
    def name(self) -> str:
        return run_name(self.project, self.pipeline_id, self.run_id)


@dataclass(frozen=True)
class PipelinePermissions:
    resource: str
    all_pipelines: bool
    pipeline_ids: tuple[int, ...]

    def allows(self, pipeline_id: int) -> bool:
        return self.all_pipelines or pipeline_id in self.pipeline_ids
