"""gRPC face of break-glass access (mixed into the authz servicer)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from securefiles.authz.domain.break_glass import AccessRequest, BreakGlass
from securefiles.authz.domain.service import Authorization
from securefiles.authz.v1 import authz_pb2
from securefiles.common.call_context import audit_note, current_principal
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import FailedPrecondition
from securefiles.common.paging import keyset_page, sort_key
from securefiles.common.proto_time import duration_seconds, to_timestamp
from securefiles.common.resource_names import project_name
from securefiles.common.unit_of_work import UnitsOfWork


def access_request_message(r: AccessRequest) -> authz_pb2.AccessRequest:
    return authz_pb2.AccessRequest(
        name=r.name, project=project_name(r.project), requester=r.requester, reason=r.reason,
        ttl=Duration(seconds=r.ttl_seconds), state=authz_pb2.AccessRequest.State.Value(f"STATE_{r.state.value}"),
        approver=r.approver, create_time=to_timestamp(r.created_at), grant_time=to_timestamp(r.granted_at),
        expire_time=to_timestamp(r.expire_at), revoked_by=r.revoked_by,
    )


class BreakGlassServicerMixin:
    _authz: Authorization
    _db: DatabaseThreads
    _changes: UnitsOfWork

    @property
    def _break_glass(self) -> BreakGlass:
        if self._authz.break_glass is None:
            raise FailedPrecondition("break-glass access is not configured", reason="BREAK_GLASS_DISABLED")
        return self._authz.break_glass

    async def RequestAccess(self, request: authz_pb2.RequestAccessRequest, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> authz_pb2.AccessRequest:
        created = await self._changes.run_noted(
            lambda r: audit_note(r.name, project=r.project, reason=r.reason, break_glass="requested"),
            self._break_glass.request, current_principal(), request.project, request.reason,
            duration_seconds(request.ttl, 0))
        return access_request_message(created)

    async def _note_request(self, name: str) -> None:
        """The entry (the change's, or the refusal) names the request's project and requester."""
        found = await self._db.run(self._break_glass.find, name)
        if found is not None:
            audit_note(found.name, project=found.project, requester=found.requester, state=found.state.value)

    async def ApproveAccess(self, request: authz_pb2.ApproveAccessRequest, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> authz_pb2.AccessRequest:
        await self._note_request(request.name)
        granted = await self._changes.run_noted(
            lambda r: audit_note(r.name, project=r.project, requester=r.requester, break_glass="granted"),
            self._break_glass.approve, current_principal(), request.name)
        return access_request_message(granted)

    async def RevokeAccess(self, request: authz_pb2.RevokeAccessRequest, context: grpc.aio.ServicerContext[Any, Any]
                           ) -> authz_pb2.AccessRequest:
        await self._note_request(request.name)
        revoked = await self._changes.run_noted(
            lambda r: audit_note(r.name, project=r.project, break_glass="revoked"),
            self._break_glass.revoke, current_principal(), request.name)
        return access_request_message(revoked)

    async def ListAccessRequests(self, request: authz_pb2.ListAccessRequestsRequest,
                                 context: grpc.aio.ServicerContext[Any, Any]) -> authz_pb2.ListAccessRequestsResponse:
        requests = await self._db.run(self._break_glass.list, current_principal())
        page, token = keyset_page(requests, lambda r: sort_key(r.request_id), "accessRequests", "",
                                  request.page_size, request.page_token)
        return authz_pb2.ListAccessRequestsResponse(access_requests=[access_request_message(r) for r in page],
                                                    next_page_token=token)

    async def AuthorizeBreakGlass(self, request: authz_pb2.AuthorizeBreakGlassRequest,
                                  context: grpc.aio.ServicerContext[Any, Any]) -> authz_pb2.AccessRequest:
        self._authz.require_storage(current_principal())
        grant = await self._db.run(self._break_glass.authorize, request.principal, request.resource)
        audit_note(request.resource, principal=request.principal, access_request=grant.name, break_glass="used")
        return access_request_message(grant)
