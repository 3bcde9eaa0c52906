"""OpenTelemetry traces across the services: off by default; with an OTLP endpoint, one trace
runs from storage's download to authz's decision and kms's unwrap (W3C trace context), and
the services' log lines carry its trace id next to the request id."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.conftest import LocalSystem, job_token_for, unique

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes

DOWNLOAD = "/securefiles.storage.v1.SecureFileService/DownloadSecureFile"
AUTHORIZE = "/securefiles.authz.v1.AuthorizationService/AuthorizeUse"
UNWRAP = "/securefiles.kms.v1.KeyManagementService/DecryptDataKey"


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A tiny OTLP/gRPC trace receiver: keeps (service name, span) of every export."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: list[tuple[str, trace_pb2.Span]] = []

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[tuple[str, trace_pb2.Span]]:
        with self._lock:
            return list(self.spans)


@pytest.fixture
def receiver() -> Iterator[tuple[OtlpReceiver, int]]:
    collected = OtlpReceiver()
    server = grpc.server(ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collected, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collected, port
    server.stop(0)


def _log_lines(system: LocalSystem, name: str) -> list[dict]:
    lines = []
    for raw in (system.state_dir / "logs" / f"{name}.log").read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


@pytest.mark.slow
def test_one_trace_runs_from_storage_to_authz_and_kms(fresh_system: LocalSystem, receiver, tmp_path: Path) -> None:
    collected, port = receiver
    fresh_system.extra_env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                                   "OTEL_BSP_SCHEDULE_DELAY": "100"})
    fresh_system.start()
    source = tmp_path / "signing.p12"
    source.write_bytes(b"traced" * 100)
    name = unique("traced")
    with fresh_system.client() as admin:
        admin.upload_file(source, name)
    with fresh_system.client(token=job_token_for(fresh_system, name)) as job:
        job.download_secure_file(name, tmp_path / "out")

    def trace_of_download() -> dict[str, list[tuple[str, trace_pb2.Span]]] | None:
        spans = collected.snapshot()
        for service, span in spans:
            served = span.kind == trace_pb2.Span.SPAN_KIND_SERVER
            if service == "securefiles-storage" and span.name == DOWNLOAD and served:
                same = [(s, x) for s, x in spans if x.trace_id == span.trace_id]
                names = {(s, x.name) for s, x in same}
                if {("securefiles-authz", AUTHORIZE), ("securefiles-kms-eu", UNWRAP)} <= names:
                    return {"trace": same, "root": [(service, span)]}
        return None

    deadline = time.monotonic() + 30
    found = trace_of_download()
    while found is None and time.monotonic() < deadline:
        time.sleep(0.1)
        found = trace_of_download()
    assert found is not None, sorted({(s, x.name) for s, x in collected.snapshot()})
    spans = found["trace"]
    (_, root), = found["root"]
    by_id = {span.span_id: (service, span) for service, span in spans}
    for callee, method in (("securefiles-authz", AUTHORIZE), ("securefiles-kms-eu", UNWRAP)):
        (server_span,) = [x for s, x in spans if s == callee and x.name == method]
        assert server_span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        # Its parent is storage's outgoing call, made while storage served the download.
        caller, client_span = by_id[server_span.parent_span_id]
        assert caller == "securefiles-storage" and client_span.kind == trace_pb2.Span.SPAN_KIND_CLIENT
        assert client_span.name == method and client_span.parent_span_id == root.span_id
    # No probe or health check is traced; no attribute carries the job token.
    assert not any("grpc.health" in x.name for _, x in collected.snapshot())
    assert not any("Bearer" in str(x.attributes) for _, x in collected.snapshot())

    trace_id = root.trace_id.hex()
    access = [line for line in _log_lines(fresh_system, "storage")
              if line.get("message") == "rpc" and line.get("method") == DOWNLOAD]
    assert access and access[-1]["trace_id"] == trace_id and access[-1]["request_id"]
    decided = [line for line in _log_lines(fresh_system, "authz")
               if line.get("message") == "rpc" and line.get("method") == AUTHORIZE]
    assert decided[-1]["trace_id"] == trace_id
    # The request id travels too, and is on the span for finding one from the other.
    assert decided[-1]["request_id"] == access[-1]["request_id"]
    assert any(a.key == "securefiles.request_id" and a.value.string_value == access[-1]["request_id"]
               for a in root.attributes)


def test_tracing_is_off_by_default(system: LocalSystem, tmp_path: Path) -> None:
    name = unique("untraced")
    with system.client() as admin:
        admin.upload_file(b"plain" * 10, name=name)
    lines = [line for line in _log_lines(system, "storage") if line.get("message") == "rpc"]
    assert lines and all(line.get("request_id") for line in lines)
    assert not any("trace_id" in line for line in lines)
