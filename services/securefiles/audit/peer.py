"""Another service's audit chain, as its peers call it: to witness its head and have it witness ours."""

from __future__ import annotations

import grpc

from securefiles.audit.v1 import audit_pb2, audit_pb2_grpc
from securefiles.common.audit import Head
from securefiles.common.peer_calls import call_peer


class AuditPeer:
    """Another service's audit chain, to witness its head and have it witness ours."""

    def __init__(self, service: str, channel: grpc.aio.Channel, timeout: float) -> None:
        self.service = service
        self._stub = audit_pb2_grpc.AuditLogServiceStub(channel)
        self._timeout = timeout

    async def head(self) -> Head:
        response = await call_peer(self._stub.GetAuditHead, audit_pb2.GetAuditHeadRequest(), self.service,
                                   self._timeout)
        assert isinstance(response, audit_pb2.AuditHead)
        return Head(self.service, response.sequence, response.hash)

    async def witness(self, head: Head) -> None:
        request = audit_pb2.WitnessAuditHeadRequest(head=audit_pb2.AuditHead(
            service=head.service, sequence=head.sequence, hash=head.hash))
        await call_peer(self._stub.WitnessAuditHead, request, self.service, self._timeout)
