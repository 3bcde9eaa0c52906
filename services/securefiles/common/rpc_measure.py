"""The grpc_server_* metrics of every call (count by code, latency), and the serializer that lets
server streams send messages already in wire form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from securefiles.common.metrics import RpcMetrics


@contextmanager
def _measuring(grpc_type: str, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
    """One call's count and time, by the code it ends with (one rule for unary and streams)."""
    metrics, started = RpcMetrics.start(grpc_type, method)
    code = "UNKNOWN"
    try:
        yield
        code = "OK"
    except (asyncio.CancelledError, GeneratorExit):
        code = "CANCELLED"
        raise
    except BaseException:
        code = _code_of(context)
        raise
    finally:
        metrics.handled(code, started)


def measured_unary(
    behavior: Callable[..., Awaitable[Any]], grpc_type: str, method: str
) -> Callable[..., Awaitable[Any]]:
    """Count the RPC and its code, and time it (grpc_server_* metrics)."""
    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _measuring(grpc_type, method, context):
            return await behavior(request, context)

    return measured


def measured_stream(
    behavior: Callable[..., AsyncIterator[Any]], grpc_type: str, method: str
) -> Callable[..., AsyncIterator[Any]]:
    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        with _measuring(grpc_type, method, context):
            held: dict[str, Any] = {}  # no second reference to a chunk while gRPC sends it
            async for held["message"] in behavior(request, context):
                yield held.pop("message")

    return measured


def encoded_or(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """Server streams may yield messages already in wire form (bytes), sent as they are."""
    if serializer is None:
        return None

    def serialize(message: Any) -> bytes:
        return message if type(message) is bytes else serializer(message)

    return serialize


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status the call was aborted with (UNKNOWN if none was set)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN"
