"""OpenTelemetry traces: off unless an OTLP endpoint is configured.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `SECUREFILES_OTLP_ENDPOINT`) set, a service exports its
spans by OTLP/gRPC; the official gRPC instrumentation makes a span of every RPC it serves and
every call it makes to another service, and carries W3C trace context (`traceparent`) across,
so one trace runs storage -> authz / kms. The exporter's other settings are OpenTelemetry's own
(`OTEL_EXPORTER_OTLP_CERTIFICATE`, `_HEADERS`, `_INSECURE`, `OTEL_BSP_*`). Off, nothing is
intercepted and nothing is sent. Spans carry method names and codes, never payloads or tokens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_provider: TracerProvider | None = None


def otlp_endpoint(env: Mapping[str, str]) -> str:
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "SECUREFILES_OTLP_ENDPOINT", "")


def configure_tracing(service: str, env: Mapping[str, str] | None = None,
                      exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process if an endpoint is configured (or an `exporter` given, as
    tests do); returns whether it is on. Call once at start, before building the server."""
    global _provider
    env = os.environ if env is None else env
    endpoint = otlp_endpoint(env)
    if exporter is None and not endpoint:
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({
        "service.name": env.get("OTEL_SERVICE_NAME") or f"securefiles-{service}",
        "service.namespace": "securefiles",
    }))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider = provider
    return True


def shutdown_tracing() -> None:
    """Flush the spans still queued (at a clean stop)."""
    if _provider is not None:
        _provider.shutdown()


def _not_health(details: Any) -> bool:
    # Probes ask every few seconds: their spans would bury the ones people look for.
    return not filters.health_check()(details)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The instrumentation's server interceptor (outermost), or none when tracing is off."""
    if _provider is None:
        return []
    return [aio_server_interceptor(tracer_provider=_provider, filter_=_not_health)]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The instrumentation's client interceptors for a channel to another service, or none."""
    if _provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=_provider, filter_=_not_health))
