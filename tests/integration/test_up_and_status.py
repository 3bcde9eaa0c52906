"""`securefiles up` and `status` as an operator uses them."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import LocalSystem

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes


def test_status_reports_every_service(system: LocalSystem) -> None:
    result = system.cli("status", "--output", "json")
    assert result.code == 0, result.stderr
    assert result.json() == {"authz": "SERVING", "kms-eu": "SERVING", "storage": "SERVING"}


def test_up_points_the_default_config_serves_reflection_and_stops_cleanly(fresh_system: LocalSystem) -> None:
    fresh_system.start("eu", 90.0, "--reflection")
    default = fresh_system.home / "xdg" / "securefiles" / "client.toml"
    assert default.resolve() == fresh_system.config_path.resolve()
    assert any("default client config:" in line and "now points here" in line for line in fresh_system.output)
    status = fresh_system.cli("status", env={"SECUREFILES_CONFIG": str(default)})
    assert status.code == 0, status.stderr

    stub = reflection_pb2_grpc.ServerReflectionStub(fresh_system.channel("storage"))
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=10)
    services = {s.name for r in responses for s in r.list_services_response.service}
    assert {"securefiles.storage.v1.SecureFileService", "grpc.health.v1.Health"} <= services
    # Reflection v1 (what current grpcurl and Postman ask first): the same messages under grpc.reflection.v1.
    v1 = fresh_system.channel("storage").stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    asked = [reflection_pb2.ServerReflectionRequest(list_services=""),
             reflection_pb2.ServerReflectionRequest(file_containing_symbol="securefiles.storage.v1.SecureFileService")]
    answers = list(v1(iter(asked), timeout=10))
    assert {"grpc.reflection.v1.ServerReflection", "securefiles.storage.v1.SecureFileService"} <= {
        s.name for s in answers[0].list_services_response.service}
    assert answers[1].file_descriptor_response.file_descriptor_proto  # the storage proto, to build calls from

    assert {p.suffix for p in (fresh_system.state_dir / "run").iterdir()} == {
        ".pid", ".port", ".internal-port", ".http-port"}
    fresh_system.stop()
    down = fresh_system.cli("status", "--output", "json")
    assert down.code == 1
    assert set(down.json().values()) == {"UNREACHABLE"}
    # A clean stop leaves no process ids or ports behind that name nothing.
    assert list((fresh_system.state_dir / "run").iterdir()) == []


def test_a_port_in_use_is_named_before_anything_starts(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = subprocess.run(
            [sys.executable, "-m", "securefiles", "up", "--state-dir", str(tmp_path / "state"), "--port-base",
             str(port), "--no-default-config"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 1
    assert f"port {port} is in use" in started.stderr and "--port-base" in started.stderr
    assert started.stderr.count("\n") == 1
    assert not list((tmp_path / "state" / "logs").iterdir())  # no service was started


def test_no_service_can_write_a_core_file(system: LocalSystem) -> None:
    """Storage holds file contents and kms unwrapped keys (and freed buffers stay in the heap): a
    crash must not put them on disk, so every service runs with a hard core-file limit of 0."""
    for service in ("storage", "authz", "kms-eu"):
        limits = (Path("/proc") / str(system.pid(service)) / "limits").read_text().splitlines()
        core = next(line for line in limits if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"], (service, core)
