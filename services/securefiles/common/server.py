"""gRPC server bootstrap shared by the three services.

`create_server` builds and binds (port 0 picks a free port) without starting, as the
grpc examples do; `run_until_signalled` starts, reports SERVING, and shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from securefiles.common.audit import AuditLog
from securefiles.common.authentication import Authenticator
from securefiles.common.config import ServerSettings
from securefiles.common.files import write_private_file
from securefiles.common.interceptors import ServiceInterceptor
from securefiles.common.limits import CallerLimits, LimitSettings
from securefiles.common.metrics import register_database_pool, render
from securefiles.common.operations import OperationsEndpoint, ReadinessCheck
from securefiles.common.tls import MAX_MESSAGE_BYTES, TlsFiles, public_server_credentials, server_credentials
from securefiles.common.tracing import server_interceptors, shutdown_tracing

log = logging.getLogger("securefiles.server")
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"

Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]


@dataclass
class RunningServer:
    """A bound server, its port, and its health servicer."""

    server: grpc.aio.Server
    port: int  # public: server TLS
    health: HealthServicer
    service_names: tuple[str, ...]
    internal_port: int = 0  # internal: mutual TLS
    operations: OperationsEndpoint = field(default_factory=lambda: OperationsEndpoint({}))  # plain HTTP


def create_server(
    *,
    service: str,
    registrations: Sequence[Registration],
    service_names: Sequence[str],
    tls: TlsFiles,
    authenticator: Authenticator,
    address: str = "127.0.0.1:0",
    internal_address: str = "127.0.0.1:0",
    reflection_enabled: bool = False,
    max_concurrent_streams: int = 1024,
    audit: AuditLog | None = None,
    unaudited_methods: frozenset[str] = frozenset(),
    limits: LimitSettings | None = None,
    public_methods: frozenset[str] = frozenset(),
    readiness: Mapping[str, ReadinessCheck] | None = None,
) -> RunningServer:
    """Build a TLS server with health, optional reflection and our interceptor (auditing into
    `audit`); bind its public (server TLS) and internal (mutual TLS) ports. `readiness`: the
    checks behind `/readyz` on the operations port (bound when the server starts)."""
    server = grpc.aio.server(
        # Tracing (when on) outermost: its span covers ours.
        interceptors=[*server_interceptors(),
                      ServiceInterceptor(service, authenticator, audit, unaudited_methods,
                                         CallerLimits(limits) if limits is not None else None,
                                         public_methods)],
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.so_reuseport", 0),
        ],
    )
    for add, servicer in registrations:
        add(servicer, server)
    names = tuple(service_names)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if reflection_enabled:
        enable_reflection((*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    port = server.add_secure_port(address, public_server_credentials(tls))
    if port == 0:
        raise OSError(f"could not bind {address}")
    internal_port = server.add_secure_port(internal_address, server_credentials(tls))
    if internal_port == 0:
        raise OSError(f"could not bind {internal_address}")
    if audit is not None:
        register_database_pool(audit.engine)
    return RunningServer(server, port, health, names, internal_port, OperationsEndpoint(readiness or {}, render))


def enable_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Server reflection, v1 and v1alpha. grpcio-reflection ships only v1alpha; v1 has the same
    messages under another package name, so the same servicer answers both."""
    servicer = reflection_aio.ReflectionServicer((*service_names, REFLECTION_V1, reflection.SERVICE_NAME))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
    }),))


async def mark_serving(running: RunningServer) -> None:
    """Report SERVING for the server and each of its services."""
    await running.health.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in running.service_names:
        await running.health.set(name, health_pb2.HealthCheckResponse.SERVING)


async def run_until_signalled(
    running: RunningServer,
    settings: ServerSettings,
    grace_seconds: float = 5.0,
    on_stop: Callable[[], Any] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start, mark SERVING, write the bound ports if asked, and stop cleanly on SIGINT/SIGTERM
    (or when the launching `securefiles up`, `settings.parent_pid`, is gone). With `stop`, the
    server shares its process (in-process tests): it stops when that event is set, and leaves
    signals and the garbage collector to the process's owner."""
    port_file, internal_port_file, parent_pid = settings.port_file, settings.internal_port_file, settings.parent_pid
    http_port = await running.operations.start(settings.http_listen)
    await running.server.start()
    await mark_serving(running)
    running.operations.serving = True
    if stop is None:
        # Everything built at start lives as long as the process: out of the collector's sight,
        # each collection has less to walk (figures: tests/bench/RESULTS.md).
        gc.collect()
        gc.freeze()
    # The public port last: whoever waits for its file finds the others.
    if settings.http_port_file is not None:
        write_private_file(settings.http_port_file, str(http_port).encode())
    if internal_port_file is not None:
        write_private_file(internal_port_file, str(running.internal_port).encode())
    if port_file is not None:
        write_private_file(port_file, str(running.port).encode())
    log.info("serving", extra={"port": running.port, "internal_port": running.internal_port, "http_port": http_port,
                               "pid": os.getpid()})
    watchdog = None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watchdog = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()
    log.info("shutting down")
    running.operations.serving = False  # readiness fails first: load balancers stop sending
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace_seconds)
    await running.operations.stop()
    if on_stop is not None:
        result = on_stop()
        if asyncio.iscoroutine(result):
            await result
    await asyncio.to_thread(shutdown_tracing)  # the last spans leave before the process does


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.warning("launcher is gone; stopping")
    stop.set()
