"""The AuditLogService every service serves over its own chain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from securefiles.audit.v1 import audit_pb2, audit_pb2_grpc
from securefiles.common.audit import AuditEntry, AuditLog, Head
from securefiles.common.call_context import current_principal
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.errors import InvalidArgument, PermissionDenied
from securefiles.common.principal import Principal
from securefiles.common.proto_time import to_timestamp
from securefiles.common.resource_names import is_id
from securefiles.common.server import Registration

ReaderCheck = Callable[[Principal], Awaitable[None]]
MAX_PAGE = 1000
# Witnessing chain heads is bookkeeping between services: an entry for each would change the
# head it witnesses, round after round. Every service leaves these out of its own audit.
WITNESS_METHODS = frozenset({"GetAuditHead", "WitnessAuditHead", "GetWitnessedHead"})
SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditLogService"].full_name


def audit_registration(log: AuditLog, require_reader: ReaderCheck, database: DatabaseThreads) -> Registration:
    """The AuditLogService over `log` (read on `database`'s threads), for `create_server`'s
    registrations (with SERVICE_NAME)."""
    return audit_pb2_grpc.add_AuditLogServiceServicer_to_server, AuditLogServicer(log, require_reader, database)


def head_message(head: Head) -> audit_pb2.AuditHead:
    message = audit_pb2.AuditHead(service=head.service, sequence=head.sequence, hash=head.hash)
    witnessed = to_timestamp(head.witnessed_at)
    if witnessed is not None:
        message.witness_time.CopyFrom(witnessed)
    return message


def _require_service() -> None:
    if current_principal().kind != "service":
        raise PermissionDenied("only services witness each other's audit chains", reason="SERVICE_IDENTITY_REQUIRED")


def event_message(entry: AuditEntry) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        sequence=entry.sequence, time=to_timestamp(entry.time), service=entry.service, principal=entry.principal,
        action=entry.action, resource=entry.resource, decision=entry.decision, reason=entry.reason,
        request_id=entry.request_id, details=entry.details, previous_hash=entry.previous_hash, hash=entry.hash,
    )


class AuditLogServicer(audit_pb2_grpc.AuditLogServiceServicer):
    """Operators read and verify the chain; nobody can write through the API."""

    def __init__(self, log: AuditLog, require_reader: ReaderCheck, database: DatabaseThreads) -> None:
        self._log = log
        self._require_reader = require_reader
        self._db = database

    async def ListAuditEvents(
        self, request: audit_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditEventsResponse:
        await self._require_reader(current_principal())
        if request.page_token and not is_id(request.page_token):
            raise InvalidArgument("page_token is not valid", reason="INVALID_PAGE_TOKEN")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in request.resource_prefix + request.principal):
            raise InvalidArgument("filters may not contain control characters", reason="INVALID_FILTER")
        if request.after_sequence < 0:
            raise InvalidArgument("after_sequence must not be negative", reason="INVALID_SEQUENCE")
        after = max(int(request.page_token or 0), request.after_sequence)
        limit = min(request.page_size or 100, MAX_PAGE)
        entries = await self._db.run(self._log.list, after, limit + 1, request.resource_prefix, request.principal)
        more = len(entries) > limit
        entries = entries[:limit]
        return audit_pb2.ListAuditEventsResponse(
            events=[event_message(e) for e in entries],
            next_page_token=str(entries[-1].sequence) if more and entries else "",
        )

    async def VerifyAuditLog(
        self, request: audit_pb2.VerifyAuditLogRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.VerifyAuditLogResponse:
        await self._require_reader(current_principal())
        witnessed = Head(self._log.service, request.witnessed_sequence, request.witnessed_hash) if (
            request.witnessed_sequence > 0) else None
        # A walk of the whole chain: a thread of its own, not one of the pool's for short calls.
        result = await asyncio.to_thread(self._log.verify, witnessed)
        return audit_pb2.VerifyAuditLogResponse(
            intact=result.intact, events_checked=result.checked, first_bad_sequence=result.first_bad_sequence,
            problem=result.problem, unaccounted_entries=result.unaccounted,
        )

    async def GetAuditHead(
        self, request: audit_pb2.GetAuditHeadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.AuditHead:
        _require_service()
        return head_message(await self._db.run(self._log.head))

    async def WitnessAuditHead(
        self, request: audit_pb2.WitnessAuditHeadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.AuditHead:
        _require_service()
        head = request.head
        if not head.service or len(head.service) > 64 or head.sequence < 0 or len(head.hash) > 64:
            raise InvalidArgument("head must name a service, a sequence and a hash", reason="INVALID_HEAD")
        await self._db.run(self._log.witness, Head(head.service, head.sequence, head.hash))
        return head_message(await self._db.run(self._log.head))

    async def GetWitnessedHead(
        self, request: audit_pb2.GetWitnessedHeadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.AuditHead:
        await self._require_reader(current_principal())
        witnessed = await self._db.run(self._log.latest_witness, request.service)
        return head_message(witnessed or Head(request.service, 0, ""))
