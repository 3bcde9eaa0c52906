"""gRPC face of checks, check suites and approvals (mixed into the authz servicer)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.duration_pb2 import Duration

from securefiles.authz.domain.check_kinds import ApprovalCheck, BranchControl, BusinessHours
from securefiles.authz.domain.checks import Approval, Check, CheckSuite, CheckType, State
from securefiles.authz.domain.model import Run
from securefiles.authz.domain.service import Authorization
from securefiles.authz.v1 import authz_pb2
from securefiles.common.call_context import audit_note, current_principal
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import InvalidArgument
from securefiles.common.paging import (
    PageRequest,
    int_key,
    keyset_page,
    next_page_token,
    page_request,
    sort_key,
)
from securefiles.common.principal import Principal
from securefiles.common.proto_time import duration_seconds, to_timestamp
from securefiles.common.resource_names import ANY_PIPELINE, parse_project, require_agreement, run_name
from securefiles.common.unit_of_work import UnitsOfWork

_SETTINGS_FIELD = {
    CheckType.BRANCH_CONTROL: "branch_control", CheckType.APPROVAL: "approval",
    CheckType.BUSINESS_HOURS: "business_hours", CheckType.EXCLUSIVE_LOCK: "exclusive_lock",
}
_TYPE_OF_FIELD = {field: check_type for check_type, field in _SETTINGS_FIELD.items()}


def _state(state: State) -> int:
    return authz_pb2.CheckState.Value(f"CHECK_STATE_{state.value}")


def check_message(c: Check) -> authz_pb2.Check:
    message = authz_pb2.Check(
        name=c.name, check_id=c.check_id, resource=c.resource, type=c.type.value,
        timeout=Duration(seconds=c.timeout_seconds), create_time=to_timestamp(c.created_at), created_by=c.created_by,
        etag=c.etag,
    )
    kind = c.kind
    if isinstance(kind, BranchControl):
        message.branch_control.allowed_refs.extend(kind.allowed_refs)
    elif isinstance(kind, ApprovalCheck):
        message.approval.CopyFrom(authz_pb2.ApprovalSettings(
            approvers=kind.approvers, min_approvals=kind.min_approvals, allow_requester=kind.allow_requester,
            instructions=kind.instructions))
    elif isinstance(kind, BusinessHours):
        message.business_hours.CopyFrom(authz_pb2.BusinessHours(
            time_zone=kind.time_zone, days=kind.days, start_time=kind.start_time, end_time=kind.end_time))
    else:
        message.exclusive_lock.SetInParent()
    return message


def _settings_of(check: authz_pb2.Check) -> tuple[CheckType, dict[str, Any]]:
    field = check.WhichOneof("settings")
    if field is None:
        raise InvalidArgument("a check needs one of branch_control, approval, business_hours, exclusive_lock",
                              reason="INVALID_CHECK")
    check_type = _TYPE_OF_FIELD[field]
    if check_type is CheckType.BRANCH_CONTROL:
        return check_type, {"allowed_refs": list(check.branch_control.allowed_refs)}
    if check_type is CheckType.APPROVAL:
        a = check.approval
        return check_type, {"approvers": list(a.approvers), "min_approvals": a.min_approvals,
                            "allow_requester": a.allow_requester, "instructions": a.instructions}
    if check_type is CheckType.BUSINESS_HOURS:
        b = check.business_hours
        return check_type, {"time_zone": b.time_zone, "days": list(b.days), "start_time": b.start_time,
                            "end_time": b.end_time}
    return check_type, {}


def suite_message(s: CheckSuite, pipeline_id: int | None = None) -> authz_pb2.CheckSuite:
    run = run_name(s.project, pipeline_id or ANY_PIPELINE, s.run_id)
    return authz_pb2.CheckSuite(
        run=run, resource=s.resource, state=_state(s.state), create_time=to_timestamp(s.created_at),  # type: ignore[arg-type]
        results=[authz_pb2.CheckResult(check_id=r.check_id, type=r.type.value, state=_state(r.state),  # type: ignore[arg-type]
                                       reason=r.reason, approval_id=r.approval_id) for r in s.results],
    )


def approval_message(a: Approval, run: Run | None = None) -> authz_pb2.Approval:
    pipeline = run.pipeline_id if run is not None else ANY_PIPELINE
    return authz_pb2.Approval(
        name=a.name, approval_id=a.approval_id, run=run_name(a.project, pipeline, a.run_id),
        branch=run.branch if run is not None else "",
        resource=a.resource, check_id=a.check_id, approvers=list(a.approvers), min_approvals=a.min_approvals,
        allow_requester=a.allow_requester, instructions=a.instructions, requested_by=a.requested_by,
        state=_state(a.state), create_time=to_timestamp(a.created_at), expire_time=to_timestamp(a.expire_at),  # type: ignore[arg-type]
        decisions=[authz_pb2.ApprovalDecision(approver=d.approver, approved=d.approved, comment=d.comment,
                                              decide_time=to_timestamp(d.decided_at)) for d in a.decisions],
    )


def _note_decided(decided: Approval) -> None:
    audit_note(decided.name, state=decided.state.value, file=decided.resource)


class ChecksServicerMixin:
    _authz: Authorization
    _db: DatabaseThreads
    _changes: UnitsOfWork

    async def CreateCheck(self, request: authz_pb2.CreateCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
                          ) -> authz_pb2.Check:
        require_agreement(request.check.resource, request.parent, "check.resource")
        check_type, settings = _settings_of(request.check)
        created = await self._changes.run_noted(
            lambda c: audit_note(c.name, type=c.type.value), self._authz.checks.create_check,
            current_principal(), request.parent, check_type, settings,
            duration_seconds(request.check.timeout, 0))
        return check_message(created)

    async def ListChecks(self, request: authz_pb2.ListChecksRequest, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> authz_pb2.ListChecksResponse:
        checks = await self._db.run(self._authz.checks.list_checks, current_principal(), request.parent)
        page, token = keyset_page(checks, lambda c: sort_key(c.check_id), request.parent, "", request.page_size,
                                  request.page_token)
        return authz_pb2.ListChecksResponse(checks=[check_message(c) for c in page], next_page_token=token)

    async def DeleteCheck(self, request: authz_pb2.DeleteCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
                          ) -> empty_pb2.Empty:
        await self._changes.run(self._authz.checks.delete_check, current_principal(), request.name)
        return empty_pb2.Empty()

    async def EvaluateChecks(self, request: authz_pb2.EvaluateChecksRequest, context: grpc.aio.ServicerContext[Any, Any]
                             ) -> authz_pb2.EvaluateChecksResponse:
        suites = await self._changes.run(self._authz.request_checks, current_principal(), request.run,
                                    list(request.resources))
        return authz_pb2.EvaluateChecksResponse(suites=[suite_message(s) for s in suites])

    async def ListApprovals(self, request: authz_pb2.ListApprovalsRequest, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> authz_pb2.ListApprovalsResponse:
        project = parse_project(request.parent)
        wanted = page_request(request.parent, f"pending={int(request.pending_only)}", request.page_size,
                              request.page_token, int_key)
        messages, resume_after = await self._db.run(self._approval_page, current_principal(), project,
                                                    request.pending_only, wanted)
        return authz_pb2.ListApprovalsResponse(approvals=messages,
                                               next_page_token=next_page_token(wanted, resume_after))

    def _approval_page(self, caller: Principal, project: str, pending_only: bool, wanted: PageRequest[int]
                       ) -> tuple[list[authz_pb2.Approval], int | None]:
        """A page of approvals with their runs (one read for the page), in a database thread."""
        page, resume_after = self._authz.checks.list_approvals(caller, project, pending_only, wanted.after,
                                                               wanted.limit)
        described = self._authz.pipelines.get_runs(project, {a.run_id for a in page})
        return [approval_message(a, described.get(a.run_id)) for a in page], resume_after

    async def Approve(self, request: authz_pb2.ApproveRequest, context: grpc.aio.ServicerContext[Any, Any]
                      ) -> authz_pb2.Approval:
        decided = await self._changes.run_noted(_note_decided, self._authz.checks.decide, current_principal(),
                                                request.name, True,
                                                request.comment)
        # The run is read in a database thread, as every read is: a locked database must not stall the loop.
        run = await self._db.run(self._authz.pipelines.get_run, decided.project, decided.run_id)
        return approval_message(decided, run)

    async def Reject(self, request: authz_pb2.RejectRequest, context: grpc.aio.ServicerContext[Any, Any]
                     ) -> authz_pb2.Approval:
        decided = await self._changes.run_noted(_note_decided, self._authz.checks.decide, current_principal(),
                                                request.name, False,
                                                request.comment)
        # The run is read in a database thread, as every read is: a locked database must not stall the loop.
        run = await self._db.run(self._authz.pipelines.get_run, decided.project, decided.run_id)
        return approval_message(decided, run)

    async def ListGroups(self, request: authz_pb2.ListGroupsRequest, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> authz_pb2.ListGroupsResponse:
        groups = await self._db.run(self._authz.checks.list_groups, current_principal())
        page, token = keyset_page(list(groups.items()), lambda g: g[0], "groups", "", request.page_size,
                                  request.page_token)
        return authz_pb2.ListGroupsResponse(
            groups=[authz_pb2.Group(name=name, members=members) for name, members in page], next_page_token=token)

    async def SetGroupMember(self, request: authz_pb2.SetGroupMemberRequest, context: grpc.aio.ServicerContext[Any, Any]
                             ) -> authz_pb2.Group:
        members = await self._changes.run(self._authz.checks.set_group_member,
            current_principal(), request.group, request.principal, request.member)
        return authz_pb2.Group(name=request.group, members=members)
