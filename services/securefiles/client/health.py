"""Is a service serving? The standard gRPC health check, asked over a channel the caller holds."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving_status(channel: grpc.Channel, timeout: float) -> str:
    """SERVING, NOT_SERVING, … as the service answers; raises grpc.RpcError when it does not."""
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def is_serving(channel: grpc.Channel, timeout: float) -> bool:
    """True when the service answers SERVING within `timeout` seconds."""
    try:
        return serving_status(channel, timeout) == "SERVING"
    except grpc.RpcError:
        return False
