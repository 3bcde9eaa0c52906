"""HTTP probes on each service's operations port: liveness, and readiness that says which
dependency is missing (database, peers, the region's primary key)."""

from __future__ import annotations

import os
import signal
import socket
import time

import httpx
import pytest

from tests.conftest import LocalSystem

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes

SERVICES = ("storage", "authz", "kms-eu")


def _get(system: LocalSystem, name: str, path: str) -> httpx.Response:
    return httpx.get(system.operations_url(name) + path, timeout=10)


def _wait_for_readiness(system: LocalSystem, name: str, status: int, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = _get(system, name, "/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_every_service_is_live_and_ready_with_the_checks_it_depends_on(system: LocalSystem) -> None:
    expected = {
        "storage": {"database", "authz", "kms-eu"},
        "authz": {"database"},
        "kms-eu": {"database", "authz", "primary_key"},
    }
    for name in SERVICES:
        live = _get(system, name, "/healthz")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        ready = _get(system, name, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok", "checks": dict.fromkeys(expected[name], "ok")}
        assert ready.headers["cache-control"] == "no-store"


def test_up_prints_the_operations_ports(system: LocalSystem) -> None:
    line = next(line for line in system.output if line.startswith("http "))
    for name in SERVICES:
        assert f"{name}={system.operations_url(name)}" in line


def test_the_operations_port_answers_only_what_it_serves(system: LocalSystem) -> None:
    base = system.operations_url("storage")
    assert httpx.get(base + "/nothing-here", timeout=10).status_code == 404
    assert httpx.post(base + "/readyz", timeout=10).status_code == 405
    head = httpx.head(base + "/healthz", timeout=10)
    assert head.status_code == 200 and head.content == b""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        # A head past 8 KiB is not read into memory: the connection is closed without an answer.
        raw.sendall(b"GET /healthz HTTP/1.1\r\nX-Filler: " + b"a" * 20_000 + b"\r\n\r\n")
        assert raw.recv(100) == b""


@pytest.mark.slow
def test_readiness_names_the_peer_that_is_down_while_liveness_holds(fresh_system: LocalSystem) -> None:
    fresh_system.start()
    authz = fresh_system.pid("authz")
    os.kill(authz, signal.SIGSTOP)  # hangs, as a wedged peer does; `up` does not restart it
    try:
        storage = _wait_for_readiness(fresh_system, "storage", 503)
        assert storage.status_code == 503
        assert storage.json()["checks"] == {"database": "ok", "authz": "failing", "kms-eu": "ok"}
        kms = _get(fresh_system, "kms-eu", "/readyz")
        assert kms.status_code == 503 and kms.json()["checks"]["authz"] == "failing"
        assert _get(fresh_system, "storage", "/healthz").status_code == 200
    finally:
        os.kill(authz, signal.SIGCONT)
    assert _wait_for_readiness(fresh_system, "storage", 200).status_code == 200

    # A region without a primary key version cannot wrap data keys: its kms is not ready.
    fresh_system.execute("kms-eu", "UPDATE key_versions SET state = 'ENABLED' WHERE state = 'PRIMARY'")
    kms = _get(fresh_system, "kms-eu", "/readyz")
    assert kms.status_code == 503
    assert kms.json()["checks"] == {"database": "ok", "authz": "ok", "primary_key": "failing"}
