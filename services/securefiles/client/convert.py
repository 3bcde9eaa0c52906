"""Generated messages -> the client's own types (`client.types`): one function per resource."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from securefiles.audit.v1 import audit_pb2
from securefiles.authz.v1 import authz_pb2
from securefiles.client import types
from securefiles.kms.v1 import kms_pb2
from securefiles.storage.v1 import storage_pb2


def time(message: Message, field: str) -> dt.datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    if not stamp.seconds and not stamp.nanos:
        return None
    value: dt.datetime = stamp.ToDatetime(dt.UTC)
    return value


def duration(message: Message, field: str) -> dt.timedelta | None:
    """A Duration field as a timedelta; None when unset."""
    if not message.HasField(field):
        return None
    value: dt.timedelta = getattr(message, field).ToTimedelta()
    return value


def enum_name(message: Message, field: str) -> str:
    """An enum field's value by name (`"STATE_RUNNING"`), as the proto JSON spells it."""
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    number = getattr(message, field)
    value = descriptor.values_by_number.get(number) if descriptor is not None else None
    return value.name if value is not None else str(number)


def secure_file(f: storage_pb2.SecureFile) -> types.SecureFile:
    return types.SecureFile(
        name=f.name, secure_file_id=f.secure_file_id, display_name=f.display_name, size_bytes=f.size_bytes,
        sha256=f.sha256, properties=dict(f.properties), create_time=time(f, "create_time"),
        update_time=time(f, "update_time"), created_by=f.created_by, version=f.version, key_version=f.key_version,
        expire_time=time(f, "expire_time"), etag=f.etag,
        **typed_metadata(f))


def secure_file_version(v: storage_pb2.SecureFileVersion) -> types.SecureFileVersion:
    return types.SecureFileVersion(
        name=v.name, version=v.version, size_bytes=v.size_bytes, sha256=v.sha256, create_time=time(v, "create_time"),
        created_by=v.created_by, key_version=v.key_version, current=v.current,
        expire_time=time(v, "expire_time"), **typed_metadata(v))


def typed_metadata(f: storage_pb2.SecureFile | storage_pb2.SecureFileVersion) -> dict[str, dict[str, Any]]:
    """The member of the `file_metadata` oneof that is set, in its JSON form, by its field name."""
    member = f.WhichOneof("file_metadata")
    return {} if member is None else {member: json_format.MessageToDict(getattr(f, member))}


def library(lib: storage_pb2.Library) -> types.Library:
    return types.Library(name=lib.name, allow_replace=lib.allow_replace, keep_versions=lib.keep_versions,
                         etag=lib.etag)


def pipeline(p: authz_pb2.Pipeline) -> types.Pipeline:
    return types.Pipeline(name=p.name, pipeline_id=p.pipeline_id, display_name=p.display_name,
                          create_time=time(p, "create_time"), etag=p.etag)


def pipeline_permissions(p: authz_pb2.PipelinePermissions) -> types.PipelinePermissions:
    return types.PipelinePermissions(name=p.name, resource=p.resource, all_pipelines=p.all_pipelines,
                                     pipelines=tuple(map(pipeline, p.pipelines)))


def run(r: authz_pb2.Run) -> types.Run:
    return types.Run(
        name=r.name, run_id=r.run_id, pipeline=r.pipeline, branch=r.branch, requested_by=r.requested_by,
        state=enum_name(r, "state"), create_time=time(r, "create_time"), expire_time=time(r, "expire_time"),
        complete_time=time(r, "complete_time"), trust=r.trust, asserted_by=r.asserted_by, claims=dict(r.claims))


def started_run(started: authz_pb2.StartRunResponse) -> types.StartedRun:
    return types.StartedRun(run=run(started.run), job_token=started.job_token)


def key_version(v: kms_pb2.KeyVersion) -> types.KeyVersion:
    return types.KeyVersion(name=v.name, region=v.region, version=v.version, state=enum_name(v, "state"),
                            create_time=time(v, "create_time"), created_by=v.created_by, reason=v.reason)


def key_version_count(c: storage_pb2.KeyVersionCount) -> types.KeyVersionCount:
    return types.KeyVersionCount(key_version=c.key_version, data_keys=c.data_keys)


def rewrap_report(r: storage_pb2.RewrapDataKeysResponse) -> types.RewrapReport:
    return types.RewrapReport(before=tuple(map(key_version_count, r.before)),
                              after=tuple(map(key_version_count, r.after)), rewrapped=r.rewrapped, failed=r.failed)


def audit_event(e: audit_pb2.AuditEvent) -> types.AuditEvent:
    return types.AuditEvent(
        sequence=e.sequence, time=time(e, "time"), service=e.service, principal=e.principal, action=e.action,
        resource=e.resource, decision=e.decision, reason=e.reason, request_id=e.request_id, details=dict(e.details),
        previous_hash=e.previous_hash, hash=e.hash)


def audit_head(h: audit_pb2.AuditHead) -> types.AuditHead:
    return types.AuditHead(service=h.service, sequence=h.sequence, hash=h.hash,
                           witness_time=time(h, "witness_time"))


def audit_verification(r: audit_pb2.VerifyAuditLogResponse) -> types.AuditVerification:
    return types.AuditVerification(intact=r.intact, events_checked=r.events_checked,
                                   first_bad_sequence=r.first_bad_sequence, problem=r.problem,
                                   unaccounted_entries=r.unaccounted_entries)


# The words `--role` takes, by authz's numbers (`SecureFilesClient.assign_role` reads them the other way).
ROLE_WORDS = {authz_pb2.ROLE_READER: "reader", authz_pb2.ROLE_USER: "user", authz_pb2.ROLE_CREATOR: "creator",
              authz_pb2.ROLE_ADMINISTRATOR: "administrator", authz_pb2.ROLE_OPERATOR: "operator",
              authz_pb2.ROLE_ORCHESTRATOR: "orchestrator"}


def project(p: authz_pb2.Project) -> types.Project:
    return types.Project(name=p.name, region=p.region, create_time=time(p, "create_time"))


def role_assignment(a: authz_pb2.RoleAssignment) -> types.RoleAssignment:
    return types.RoleAssignment(name=a.name, scope=a.scope, principal=a.principal,
                                role=ROLE_WORDS.get(a.role, enum_name(a, "role").lower()))


def role_assignments(r: authz_pb2.ListRoleAssignmentsResponse) -> types.RoleAssignments:
    return types.RoleAssignments(role_assignments=tuple(map(role_assignment, r.role_assignments)),
                                 inherit_from_library=r.inherit_from_library)


def role_inheritance(r: authz_pb2.RoleInheritance) -> types.RoleInheritance:
    return types.RoleInheritance(name=r.name, scope=r.scope, inherit_from_library=r.inherit_from_library)


def new_token(t: authz_pb2.IssueTokenResponse) -> types.NewToken:
    return types.NewToken(token=t.token, expire_time=time(t, "expire_time"), issued_by=t.issued_by)


def issued_token(t: authz_pb2.IssuedToken) -> types.IssuedToken:
    return types.IssuedToken(
        name=t.name, token_id=t.token_id, subject=t.subject, kind=t.kind, issued_by=t.issued_by,
        create_time=time(t, "create_time"), expire_time=time(t, "expire_time"), revoke_time=time(t, "revoke_time"),
        revoked_by=t.revoked_by)


def access_request(r: authz_pb2.AccessRequest) -> types.AccessRequest:
    return types.AccessRequest(
        name=r.name, project=r.project, requester=r.requester, reason=r.reason, ttl=duration(r, "ttl"),
        state=enum_name(r, "state"), approver=r.approver, create_time=time(r, "create_time"),
        grant_time=time(r, "grant_time"), expire_time=time(r, "expire_time"), revoked_by=r.revoked_by)


def check(c: authz_pb2.Check) -> types.Check:
    kind = c.WhichOneof("settings")
    b, a, h = c.branch_control, c.approval, c.business_hours
    return types.Check(
        name=c.name, check_id=c.check_id, resource=c.resource, type=c.type, timeout=duration(c, "timeout"),
        create_time=time(c, "create_time"), created_by=c.created_by,
        branch_control=types.BranchControl(tuple(b.allowed_refs)) if kind == "branch_control" else None,
        approval=types.ApprovalSettings(tuple(a.approvers), a.min_approvals, a.allow_requester, a.instructions)
        if kind == "approval" else None,
        business_hours=types.BusinessHours(h.time_zone, tuple(h.days), h.start_time, h.end_time)
        if kind == "business_hours" else None,
        exclusive_lock=types.ExclusiveLock() if kind == "exclusive_lock" else None, etag=c.etag)


def check_suite(s: authz_pb2.CheckSuite) -> types.CheckSuite:
    return types.CheckSuite(
        run=s.run, resource=s.resource, state=enum_name(s, "state"),
        results=tuple(types.CheckResult(check_id=r.check_id, type=r.type, state=enum_name(r, "state"),
                                        reason=r.reason, approval_id=r.approval_id) for r in s.results),
        create_time=time(s, "create_time"))


def approval(a: authz_pb2.Approval) -> types.Approval:
    return types.Approval(
        name=a.name, approval_id=a.approval_id, run=a.run, resource=a.resource, check_id=a.check_id,
        approvers=tuple(a.approvers), min_approvals=a.min_approvals, allow_requester=a.allow_requester,
        instructions=a.instructions, requested_by=a.requested_by, state=enum_name(a, "state"),
        decisions=tuple(types.ApprovalDecision(approver=d.approver, approved=d.approved, comment=d.comment,
                                               decide_time=time(d, "decide_time")) for d in a.decisions),
        create_time=time(a, "create_time"), expire_time=time(a, "expire_time"), branch=a.branch)


def group(g: authz_pb2.Group) -> types.Group:
    return types.Group(name=g.name, members=tuple(g.members))


def trust(t: authz_pb2.Trust) -> types.Trust:
    return types.Trust(
        name=t.name, trust_id=t.trust_id, display_name=t.display_name, pipeline=t.pipeline, issuer=t.issuer,
        audience=t.audience, bound_claims=dict(sorted(t.bound_claims.items())), branch_claim=t.branch_claim,
        ref_type_claim=t.ref_type_claim, run_claims=tuple(t.run_claims), requester_claim=t.requester_claim,
        max_ttl=duration(t, "max_ttl"), jwks=t.jwks, ca_certificates=t.ca_certificates, created_by=t.created_by,
        create_time=time(t, "create_time"))


def sign_in_config(c: authz_pb2.SignInConfig) -> types.SignInConfig:
    return types.SignInConfig(enabled=c.enabled, issuer=c.issuer, client_id=c.client_id, scopes=tuple(c.scopes))


def signed_in(s: authz_pb2.SignInResponse) -> types.SignedIn:
    return types.SignedIn(token=s.token, expire_time=time(s, "expire_time"), principal=s.principal,
                          groups=tuple(s.groups))


def audit_page(p: audit_pb2.ListAuditEventsResponse) -> types.AuditPage:
    return types.AuditPage(events=tuple(map(audit_event, p.events)), next_page_token=p.next_page_token)
