"""What the Python client returns: frozen dataclasses, not generated messages.

Field names are the proto's field names, so `securefiles … --output json` prints the proto's
JSON names (`display_name` -> `displayName`). Times are aware UTC datetimes, None when unset;
enum values are their names (`"STATE_RUNNING"`). Conversion from the messages: `client.convert`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FILE_TYPES = ("x509", "pkcs12", "provisioning_profile", "android_keystore", "ssh_private_key", "ssh_public_key",
              "unknown")


class _Parsed:
    """What was parsed from a file's content: the one typed metadata member that is set."""

    @property
    def file_type(self) -> str:
        """`x509`, `pkcs12`, … (the member set), or `unknown`."""
        return next((kind for kind in FILE_TYPES if getattr(self, kind, None) is not None), "unknown")

    @property
    def facts(self) -> Mapping[str, Any]:
        """The set member's facts in their JSON form (empty when none)."""
        found: Mapping[str, Any] | None = getattr(self, self.file_type, None)
        return found or {}


@dataclass(frozen=True)
class SecureFile(_Parsed):
    """A secure file's metadata (people never get its content)."""

    name: str
    secure_file_id: str
    display_name: str
    size_bytes: int
    sha256: str
    properties: Mapping[str, str]
    create_time: dt.datetime | None
    update_time: dt.datetime | None
    created_by: str
    version: int
    key_version: str
    expire_time: dt.datetime | None
    etag: str = ""  # AIP-154: changes with the resource; send it back to update only an unchanged one
    # The typed metadata (issue #18 item 6): the one member of the file_metadata oneof that is set,
    # in its JSON form (the proto's JSON names); the others are None.
    x509: Mapping[str, Any] | None = None
    pkcs12: Mapping[str, Any] | None = None
    provisioning_profile: Mapping[str, Any] | None = None
    android_keystore: Mapping[str, Any] | None = None
    ssh_private_key: Mapping[str, Any] | None = None
    ssh_public_key: Mapping[str, Any] | None = None
    unknown: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SecureFileVersion(_Parsed):
    """One kept version of a file."""

    version: int
    size_bytes: int
    sha256: str
    create_time: dt.datetime | None
    created_by: str
    key_version: str
    current: bool
    expire_time: dt.datetime | None
    name: str = ""  # projects/{project}/secureFiles/{id}/versions/{version}
    # The typed metadata (issue #18 item 6): the one member of the file_metadata oneof that is set,
    # in its JSON form (the proto's JSON names); the others are None.
    x509: Mapping[str, Any] | None = None
    pkcs12: Mapping[str, Any] | None = None
    provisioning_profile: Mapping[str, Any] | None = None
    android_keystore: Mapping[str, Any] | None = None
    ssh_private_key: Mapping[str, Any] | None = None
    ssh_public_key: Mapping[str, Any] | None = None
    unknown: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Library:
    """A project's library settings."""

    name: str
    allow_replace: bool
    keep_versions: int
    etag: str = ""  # AIP-154: changes with the resource; send it back to update only an unchanged one


@dataclass(frozen=True)
class Pipeline:
    """A pipeline of a project; its runs may use the files it is authorized on."""

    name: str
    pipeline_id: int
    display_name: str
    create_time: dt.datetime | None
    etag: str = ""  # AIP-154: changes with the resource; send it back to update only an unchanged one


@dataclass(frozen=True)
class PipelinePermissions:
    """Which pipelines may use a file (`all_pipelines`: open access); `name` is the file's
    `…/pipelinePermissions`."""

    name: str
    resource: str
    all_pipelines: bool
    pipelines: tuple[Pipeline, ...]


@dataclass(frozen=True)
class Run:
    """A pipeline run; its job token works while it runs."""

    name: str
    run_id: int
    pipeline: str
    branch: str
    requested_by: str
    state: str
    create_time: dt.datetime | None
    expire_time: dt.datetime | None
    complete_time: dt.datetime | None
    trust: str
    asserted_by: str
    claims: Mapping[str, str]

    @property
    def state_word(self) -> str:
        """The state as people read it (tables, messages): `STATE_RUNNING` -> `RUNNING`."""
        return self.state.removeprefix("STATE_")


@dataclass(frozen=True)
class StartedRun:
    """A run started by hand, and its job token."""

    run: Run
    job_token: str


@dataclass(frozen=True)
class KeyVersion:
    """A version of a region's key; `state` is the proto's STATE_PRIMARY, STATE_ENABLED, STATE_DISABLED or
    STATE_DESTROYED (as `--output json` prints it)."""

    name: str
    region: str
    version: int
    state: str
    create_time: dt.datetime | None
    created_by: str
    reason: str

    @property
    def state_word(self) -> str:
        """The state as people read it: PRIMARY, ENABLED, DISABLED or DESTROYED."""
        return self.state.removeprefix("STATE_")


@dataclass(frozen=True)
class KeyVersionCount:
    """How many data keys a key version wraps."""

    key_version: str
    data_keys: int


@dataclass(frozen=True)
class RewrapReport:
    """Data keys per key version before and after a rewrap, and how many moved or failed."""

    before: tuple[KeyVersionCount, ...]
    after: tuple[KeyVersionCount, ...]
    rewrapped: int
    failed: int


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a service's hash-chained audit log."""

    sequence: int
    time: dt.datetime | None
    service: str
    principal: str
    action: str
    resource: str
    decision: str
    reason: str
    request_id: str
    details: Mapping[str, str]
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """The newest entry of a service's chain as another service witnessed it."""

    service: str
    sequence: int
    hash: str
    witness_time: dt.datetime | None


@dataclass(frozen=True)
class AuditVerification:
    """Whether a chain is intact (and where it broke), and entries past the witnessed head it cannot account for."""

    intact: bool
    events_checked: int
    first_bad_sequence: int
    problem: str
    unaccounted_entries: int


@dataclass(frozen=True)
class Project:
    """A project, homed in one region."""

    name: str
    region: str
    create_time: dt.datetime | None


@dataclass(frozen=True)
class RoleAssignment:
    """A principal's role on a scope; `role` is the word `--role` takes (reader, user, creator, …);
    `name` is `{scope}/roleAssignments/{principal}`, the principal percent-encoded."""

    name: str
    scope: str
    principal: str
    role: str


@dataclass(frozen=True)
class RoleAssignments:
    """The roles given on one scope and, for a file, whether the library's apply too."""

    role_assignments: tuple[RoleAssignment, ...]
    inherit_from_library: bool


@dataclass(frozen=True)
class RoleInheritance:
    """Whether the library's roles apply to a file; `name` is the file's `…/roleInheritance`."""

    name: str
    scope: str
    inherit_from_library: bool


@dataclass(frozen=True)
class NewToken:
    """A token just issued (the only time its secret is shown)."""

    token: str
    expire_time: dt.datetime | None
    issued_by: str


@dataclass(frozen=True)
class IssuedToken:
    """What is known of an issued token (never its secret)."""

    name: str
    token_id: str
    subject: str
    kind: str
    issued_by: str
    create_time: dt.datetime | None
    expire_time: dt.datetime | None
    revoke_time: dt.datetime | None
    revoked_by: str


@dataclass(frozen=True)
class AccessRequest:
    """A break-glass request for time-bound access to a project; `state` STATE_PENDING, STATE_GRANTED,
    STATE_REVOKED or STATE_EXPIRED."""

    name: str
    project: str
    requester: str
    reason: str
    ttl: dt.timedelta | None
    state: str
    approver: str
    create_time: dt.datetime | None
    grant_time: dt.datetime | None
    expire_time: dt.datetime | None
    revoked_by: str

    @property
    def state_word(self) -> str:
        """The state as people read it (tables, messages): `STATE_GRANTED` -> `GRANTED`."""
        return self.state.removeprefix("STATE_")


@dataclass(frozen=True)
class BranchControl:
    allowed_refs: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalSettings:
    approvers: tuple[str, ...]
    min_approvals: int
    allow_requester: bool
    instructions: str


@dataclass(frozen=True)
class BusinessHours:
    time_zone: str
    days: tuple[str, ...]
    start_time: str
    end_time: str


@dataclass(frozen=True)
class ExclusiveLock:
    """One run at a time holds the file."""


@dataclass(frozen=True)
class Check:
    """A check on a file; exactly one of its settings is set, the one its `type` names."""

    name: str
    check_id: int
    resource: str
    type: str
    timeout: dt.timedelta | None
    create_time: dt.datetime | None
    created_by: str
    branch_control: BranchControl | None
    approval: ApprovalSettings | None
    business_hours: BusinessHours | None
    exclusive_lock: ExclusiveLock | None
    etag: str = ""  # AIP-154: changes with the resource; send it back to update only an unchanged one


@dataclass(frozen=True)
class CheckResult:
    """One check's state for a run; `approval_id` when it waits for an approval."""

    check_id: int
    type: str
    state: str
    reason: str
    approval_id: int

    @property
    def state_word(self) -> str:
        """The state as people read it (tables, messages): `CHECK_STATE_PENDING` -> `PENDING`."""
        return self.state.removeprefix("CHECK_STATE_")


@dataclass(frozen=True)
class CheckSuite:
    """A run's checks on one file and their overall state."""

    run: str
    resource: str
    state: str
    results: tuple[CheckResult, ...]
    create_time: dt.datetime | None

    @property
    def state_word(self) -> str:
        """The state as people read it (tables, messages): `CHECK_STATE_PENDING` -> `PENDING`."""
        return self.state.removeprefix("CHECK_STATE_")


@dataclass(frozen=True)
class ApprovalDecision:
    approver: str
    approved: bool
    comment: str
    decide_time: dt.datetime | None


@dataclass(frozen=True)
class Approval:
    """An approval a run waits for."""

    name: str
    approval_id: int
    run: str
    resource: str
    check_id: int
    approvers: tuple[str, ...]
    min_approvals: int
    allow_requester: bool
    instructions: str
    requested_by: str
    state: str
    decisions: tuple[ApprovalDecision, ...]
    create_time: dt.datetime | None
    expire_time: dt.datetime | None
    branch: str

    @property
    def state_word(self) -> str:
        """The state as people read it (tables, messages): `CHECK_STATE_PENDING` -> `PENDING`."""
        return self.state.removeprefix("CHECK_STATE_")


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Trust:
    """Which CI provider's OIDC tokens run as a pipeline (`jwks`, `ca_certificates`: static keys or CAs, if any)."""

    name: str
    trust_id: int
    display_name: str
    pipeline: str
    issuer: str
    audience: str
    bound_claims: Mapping[str, str]
    branch_claim: str
    ref_type_claim: str
    run_claims: tuple[str, ...]
    requester_claim: str
    max_ttl: dt.timedelta | None
    jwks: str
    ca_certificates: str
    created_by: str
    create_time: dt.datetime | None


@dataclass(frozen=True)
class SignInConfig:
    """Where people sign in (`enabled` False: sign-in is not configured)."""

    enabled: bool
    issuer: str
    client_id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class SignedIn:
    """A person's session token, for the ID token their provider gave them."""

    token: str
    expire_time: dt.datetime | None
    principal: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class AuditPage:
    """One page of a service's audit log, oldest first; `next_page_token` empty on the last."""

    events: tuple[AuditEvent, ...]
    next_page_token: str
