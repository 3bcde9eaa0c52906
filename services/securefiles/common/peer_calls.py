"""Calls from one service to another, over mutual TLS: what every service client shares.

Every call has a deadline (never later than the caller's), carries the request id, and
turns a failed call into a domain error that keeps the remote ErrorInfo reason.
Connection failures become UNAVAILABLE: callers fail closed.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.common.deadlines import outbound_timeout
from securefiles.common.errors import Unavailable
from securefiles.common.request_ids import outbound_metadata
from securefiles.common.rich_status import error_info_of, from_rpc_error
from securefiles.common.tls import TlsFiles, channel_credentials, channel_options
from securefiles.common.tracing import client_interceptors

DEFAULT_TIMEOUT = 10.0
_TRANSPORT_FAILURES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def secure_channel(target: str, tls: TlsFiles, server_name: str = "") -> grpc.aio.Channel:
    """An aio channel presenting this service's certificate."""
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=channel_options(target, server_name),
                                   interceptors=client_interceptors() or None)  # W3C trace context, if tracing


async def call_peer(method: grpc.aio.UnaryUnaryMultiCallable[Any, Any], request: object, service: str,
                    timeout: float) -> object:
    """One unary call to `service`; its refusal keeps the peer's reason, its absence is
    UNAVAILABLE `<SERVICE>_UNAVAILABLE`."""
    try:
        return await method(request, timeout=outbound_timeout(timeout), metadata=outbound_metadata())
    except grpc.aio.AioRpcError as error:
        if error.code() in _TRANSPORT_FAILURES and error_info_of(error) is None:
            raise Unavailable(f"{service} is unavailable", reason=f"{service.upper()}_UNAVAILABLE") from None
        raise from_rpc_error(error, f"{service}.securefiles") from None


async def require_serving(channel: grpc.aio.Channel, service: str, timeout: float = 2.0) -> None:
    """Readiness of a peer: its gRPC health service says SERVING; else UNAVAILABLE."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.aio.AioRpcError:
        raise Unavailable(f"{service} is unavailable", reason="PEER_UNAVAILABLE") from None
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unavailable(f"{service} is not serving", reason="PEER_UNAVAILABLE")
