"""`--output json` prints the proto's JSON names (`displayName`, `createTime`), as
`google.protobuf.json_format` would: for every resource the CLI prints, its keys are exactly the
`json_name`s of the message's fields, and the values are the message's own."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message

from securefiles.audit.v1 import audit_pb2
from securefiles.authz.v1 import authz_pb2
from securefiles.cli.audit_export import event_line
from securefiles.cli.keys import _version_object
from securefiles.cli.output import file_object, json_object
from securefiles.client import convert
from securefiles.kms.v1 import kms_pb2
from securefiles.storage.v1 import storage_pb2

TIME = "2026-05-01T14:03:00Z"

# (a message as the server sends it, how the CLI prints it)
PRINTED: list[tuple[Message, Callable[[Message], Any]]] = [
    (storage_pb2.SecureFile(
        name="projects/p/secureFiles/0b5c", secure_file_id="0b5c", display_name="signing.p12", size_bytes=12,
        sha256="ab" * 32, properties={"team_name": "ios"}, created_by="user:ann", version=2,
        key_version="regions/eu/keyVersions/3"),
     lambda m: file_object(convert.secure_file(m))),
    (storage_pb2.SecureFileVersion(version=2, size_bytes=12, sha256="ab" * 32, created_by="user:ann",
                                   key_version="regions/eu/keyVersions/3", current=True),
     lambda m: json_object(convert.secure_file_version(m))),
    (storage_pb2.Library(name="projects/p/library", allow_replace=True, keep_versions=3),
     lambda m: json_object(convert.library(m))),
    (authz_pb2.Pipeline(name="projects/p/pipelines/4", pipeline_id=4, display_name="ios-release"),
     lambda m: json_object(convert.pipeline(m))),
    (authz_pb2.PipelinePermissions(resource="projects/p/secureFiles/0b5c", all_pipelines=False, pipelines=[
        authz_pb2.Pipeline(name="projects/p/pipelines/4", pipeline_id=4, display_name="ios-release")]),
     lambda m: json_object(convert.pipeline_permissions(m))),
    (authz_pb2.Run(name="projects/p/pipelines/4/runs/7", run_id=7, pipeline="projects/p/pipelines/4",
                   branch="refs/heads/main", requested_by="user:ann", state=authz_pb2.Run.STATE_RUNNING,
                   trust="projects/p/trusts/gh", asserted_by="service:ci", claims={"repository": "org/app"}),
     lambda m: json_object(convert.run(m))),
    (authz_pb2.StartRunResponse(run=authz_pb2.Run(name="projects/p/pipelines/4/runs/7", run_id=7,
                                                  state=authz_pb2.Run.STATE_COMPLETED), job_token="eyJ.x.y"),
     lambda m: json_object(convert.started_run(m))),
    (kms_pb2.KeyVersion(name="regions/eu/keyVersions/2", region="eu", version=2, state=kms_pb2.KeyVersion.STATE_PRIMARY,
                        created_by="deployment:d-1", reason="quarterly"),
     lambda m: json_object(convert.key_version(m))),
    (storage_pb2.RewrapDataKeysResponse(
        before=[storage_pb2.KeyVersionCount(key_version="regions/eu/keyVersions/1", data_keys=12)],
        after=[storage_pb2.KeyVersionCount(key_version="regions/eu/keyVersions/2", data_keys=12)], rewrapped=12),
     lambda m: json_object(convert.rewrap_report(m))),
    (audit_pb2.AuditEvent(sequence=9, service="storage", principal="user:ann", action="GetSecureFile",
                          resource="projects/p/secureFiles/0b5c", decision="ALLOW", request_id="r-1",
                          details={"display_name": "a.p12"}, previous_hash="00" * 32, hash="11" * 32),
     lambda m: json_object(convert.audit_event(m))),
    (audit_pb2.AuditEvent(sequence=9, service="storage", action="GetSecureFile", details={"k": "v"}),
     lambda m: json.loads(event_line(convert.audit_event(m)))),
    (audit_pb2.VerifyAuditLogResponse(intact=False, events_checked=40, first_bad_sequence=12, problem="hash",
                                      unaccounted_entries=1),
     lambda m: json_object(convert.audit_verification(m))),
    (authz_pb2.Project(name="projects/mobile", region="eu"), lambda m: json_object(convert.project(m))),
    (authz_pb2.RoleInheritance(scope="projects/p/secureFiles/0b5c", inherit_from_library=True),
     lambda m: json_object(convert.role_inheritance(m))),
    (authz_pb2.IssueTokenResponse(token="eyJ.x.y", issued_by="user:admin"),
     lambda m: json_object(convert.new_token(m))),
    (authz_pb2.IssuedToken(name="tokens/ab12", token_id="ab12", subject="service:ci", kind="account",
                           issued_by="user:admin", revoked_by="user:ann"),
     lambda m: json_object(convert.issued_token(m))),
    (authz_pb2.AccessRequest(name="accessRequests/5", project="projects/p", requester="user:op1", reason="INC-7",
                             ttl=duration_pb2.Duration(seconds=3600), state=authz_pb2.AccessRequest.STATE_GRANTED,
                             approver="user:op2"),
     lambda m: json_object(convert.access_request(m))),
    (authz_pb2.Check(name="projects/p/secureFiles/0b5c/checks/3", check_id=3, resource="projects/p/secureFiles/0b5c",
                     type="approval", timeout=duration_pb2.Duration(seconds=172800), created_by="user:ann",
                     approval=authz_pb2.ApprovalSettings(approvers=["user:bob"], min_approvals=1,
                                                         instructions="look")),
     lambda m: json_object(convert.check(m))),
    (authz_pb2.Check(check_id=4, type="branch-control",
                     branch_control=authz_pb2.BranchControl(allowed_refs=["refs/heads/main"])),
     lambda m: json_object(convert.check(m))),
    (authz_pb2.Check(check_id=5, type="exclusive-lock", exclusive_lock=authz_pb2.ExclusiveLock()),
     lambda m: json_object(convert.check(m))),
    (authz_pb2.CheckSuite(run="projects/p/pipelines/4/runs/7", resource="projects/p/secureFiles/0b5c",
                          state=authz_pb2.CHECK_STATE_PENDING,
                          results=[authz_pb2.CheckResult(check_id=3, type="approval", reason="waits",
                                                         approval_id=9)]),
     lambda m: json_object(convert.check_suite(m))),
    (authz_pb2.Approval(name="projects/p/approvals/9", approval_id=9, run="projects/p/pipelines/4/runs/7",
                        resource="projects/p/secureFiles/0b5c", check_id=3, approvers=["user:bob"], min_approvals=1,
                        requested_by="user:alice", branch="refs/heads/main",
                        decisions=[authz_pb2.ApprovalDecision(approver="user:bob", approved=True, comment="ok")]),
     lambda m: json_object(convert.approval(m))),
    (authz_pb2.Group(name="group:release", members=["user:bob"]), lambda m: json_object(convert.group(m))),
    (authz_pb2.Trust(name="projects/p/trusts/1", trust_id=1, display_name="gh", pipeline="projects/p/pipelines/4",
                     issuer="https://token.actions.githubusercontent.com", audience="securefiles",
                     bound_claims={"repository": "org/app"}, branch_claim="ref", run_claims=["run_id", "run_attempt"],
                     requester_claim="actor", max_ttl=duration_pb2.Duration(seconds=2592000), jwks='{"keys": []}',
                     created_by="user:admin"),
     lambda m: json_object(convert.trust(m))),
]

# Keys only: a role's value is the word `--role` takes ("reader"), not the enum's name.
ROLES: list[tuple[Message, Callable[[Message], Any]]] = [
    (authz_pb2.RoleAssignment(scope="projects/p", principal="user:ann", role=authz_pb2.ROLE_READER),
     lambda m: json_object(convert.role_assignment(m))),
    (authz_pb2.ListRoleAssignmentsResponse(role_assignments=[authz_pb2.RoleAssignment(
        scope="projects/p", principal="user:ann", role=authz_pb2.ROLE_ADMINISTRATOR)], inherit_from_library=True),
     lambda m: json_object(convert.role_assignments(m))),
]


def _with_times(message: Message) -> Message:
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            getattr(message, field.name).FromJsonString(TIME)
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
            getattr(message, field.name).update({"type": "x509", "entry_count": 3})
    return message


@pytest.mark.parametrize(("message", "printed"), PRINTED, ids=[m.DESCRIPTOR.name for m, _ in PRINTED])
def test_json_output_uses_the_protos_json_names_and_values(message: Message, printed: Callable[[Message], Any]
                                                           ) -> None:
    message = _with_times(message)
    shown = printed(message)
    assert set(shown) == {field.json_name for field in message.DESCRIPTOR.fields}
    expected = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    for key, value in expected.items():
        assert _comparable(shown[key]) == _comparable(value), key


def _comparable(value: Any) -> Any:
    """json_format prints int64 as strings and leaves unset nested fields out; the CLI prints numbers
    and nulls."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return int(value) if isinstance(value, str) and value.isdigit() else value


def test_map_keys_are_data_and_parsed_metadata_is_its_typed_member() -> None:
    message = _with_times(storage_pb2.SecureFile(properties={"team_name": "ios"}, pkcs12=storage_pb2.Pkcs12Metadata(
        key_count=3, friendly_name="release")))
    shown = file_object(convert.secure_file(message))
    assert shown["properties"] == {"team_name": "ios"}
    assert shown["pkcs12"] == {"keyCount": 3, "friendlyName": "release"} and shown["x509"] is None
    assert "metadata" not in shown  # the untyped Struct is gone from the contract
    assert convert.secure_file(message).file_type == "pkcs12"
    assert shown["expireTime"] == TIME


def test_unset_times_are_null_and_unread_metadata_says_unknown() -> None:
    unread = convert.secure_file(storage_pb2.SecureFile(display_name="blob.bin"))
    shown = file_object(unread)
    assert shown["expireTime"] is None and shown["createTime"] is None
    assert unread.file_type == "unknown" and unread.facts == {}


def test_keys_list_adds_the_data_key_count_under_its_own_json_name() -> None:
    version = _with_times(kms_pb2.KeyVersion(name="regions/eu/keyVersions/2", version=2))
    shown = _version_object(convert.key_version(version), 12)
    count = storage_pb2.KeyVersionCount.DESCRIPTOR.fields_by_name["data_keys"].json_name
    assert set(shown) == {f.json_name for f in version.DESCRIPTOR.fields} | {count}
    assert shown[count] == 12


@pytest.mark.parametrize(("message", "printed"), ROLES, ids=[m.DESCRIPTOR.name for m, _ in ROLES])
def test_role_json_uses_the_protos_json_names_and_the_role_words(message: Message,
                                                                 printed: Callable[[Message], Any]) -> None:
    shown = printed(message)
    # A listing is printed whole (the client follows every page), so it has no next page token.
    assert set(shown) == {field.json_name for field in message.DESCRIPTOR.fields} - {"nextPageToken"}
    assignments = [shown] if "role" in shown else shown["roleAssignments"]
    assert {a["role"] for a in assignments} <= {"reader", "administrator"}
    assert set(assignments[0]) == {f.json_name for f in authz_pb2.RoleAssignment.DESCRIPTOR.fields}


def test_typed_metadata_prints_its_one_member_under_the_protos_json_names() -> None:
    message = storage_pb2.SecureFile(display_name="app.pem", x509=storage_pb2.X509Metadata(
        subject="CN=app", public_key_size=2048, count=1))
    message.x509.not_after.FromJsonString(TIME)
    shown = file_object(convert.secure_file(message))
    assert shown["x509"] == {"subject": "CN=app", "publicKeySize": 2048, "count": 1, "notAfter": TIME}
    assert shown["pkcs12"] is None and shown["sshPublicKey"] is None
