"""Prometheus metrics on each service's operations port: RPCs by method and code (gRPC's usual
names), decisions by outcome and reason, audit append latency, key versions by state, data keys
per key version, rewrap progress, rate-limit rejections and the database pool."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client import PermissionDenied
from tests.conftest import LocalSystem, bearer, job_token_for, unique, user_token

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes

STORAGE = "securefiles.storage.v1.SecureFileService"


def scrape(system: LocalSystem, name: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of one service's /metrics."""
    response = httpx.get(system.operations_url(name) + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(system: LocalSystem, name: str, settled: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """Scrape until `settled` holds (an aborted call is counted just after its status left)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(system, name)
        if settled(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_rpcs_decisions_and_audit_appends_are_counted(system: LocalSystem, tmp_path: Path) -> None:
    source = tmp_path / "signing.p12"
    source.write_bytes(b"metrics" * 100)
    name = unique("metrics")
    storage_before, authz_before = scrape(system, "storage"), scrape(system, "authz")
    with system.client() as admin:
        admin.upload_file(source, name)
    token = job_token_for(system, name)
    with system.client(token=token) as job:
        job.download_secure_file(name, tmp_path / "out")
    outsider = job_token_for(system)  # a pipeline not authorized on the file
    with system.client(token=outsider) as job, pytest.raises(PermissionDenied):
        job.download_secure_file(name, tmp_path / "denied", retry_count=0)

    def grew(samples: dict, before: dict, metric: str, **labels: str) -> float:
        return value(samples, metric, **labels) - value(before, metric, **labels)

    upload = {"grpc_type": "client_stream", "grpc_service": STORAGE, "grpc_method": "UploadSecureFile"}
    download = {"grpc_type": "server_stream", "grpc_service": STORAGE, "grpc_method": "DownloadSecureFile"}
    storage = scrape_until(system, "storage", lambda s: grew(
        s, storage_before, "grpc_server_handled_total", **download, grpc_code="PERMISSION_DENIED") >= 1)
    authz = scrape(system, "authz")
    assert grew(storage, storage_before, "grpc_server_started_total", **upload) == 1
    assert grew(storage, storage_before, "grpc_server_handled_total", **upload, grpc_code="OK") == 1
    assert grew(storage, storage_before, "grpc_server_handling_seconds_count", **upload) == 1
    assert grew(storage, storage_before, "grpc_server_handled_total", **download, grpc_code="OK") == 1
    assert grew(storage, storage_before, "grpc_server_handled_total", **download,
                grpc_code="PERMISSION_DENIED") == 1
    # The decision, where it is made: authz allowed one use and denied the other, with the reason.
    assert grew(authz, authz_before, "securefiles_decisions_total", action="AuthorizeUse", outcome="ALLOW",
                reason="") == 1
    assert grew(authz, authz_before, "securefiles_decisions_total", action="AuthorizeUse", outcome="DENY",
                reason="PERMISSION_DENIED/PIPELINE_NOT_AUTHORIZED") == 1
    assert grew(storage, storage_before, "securefiles_decisions_total", action="UploadSecureFile",
                outcome="ALLOW", reason="") == 1
    assert grew(storage, storage_before, "securefiles_audit_append_seconds_count") >= 3
    assert value(storage, "securefiles_db_pool_size") >= 1
    assert ("securefiles_db_pool_connections", frozenset({("state", "checked_out")})) in storage
    # No label carries a file's name or a caller's identity.
    assert not any(name in str(labels) or "user:" in str(labels) for _, labels in storage)


@pytest.mark.slow
def test_rate_limit_rejections_are_counted(fresh_system: LocalSystem) -> None:
    # Tight limits (5/s, burst 10): a flood is refused however slow this machine is.
    system = fresh_system
    system.extra_env.update({"SECUREFILES_REQUESTS_PER_SECOND": "5", "SECUREFILES_REQUEST_BURST": "10"})
    system.start()
    before = scrape(system, "authz")
    person = user_token(system, f"user:{unique('flood')}")
    keys = authz_pb2.GetSigningKeysRequest()

    with system.channel("authz") as channel:
        stub = authz_pb2_grpc.AuthorizationServiceStub(channel)

        def one(_: int) -> str:
            try:
                stub.GetSigningKeys(keys, metadata=bearer(person), timeout=10)
            except grpc.RpcError as error:
                return error.code().name
            return "OK"

        with ThreadPoolExecutor(4) as pool:
            refused = list(pool.map(one, range(60))).count("RESOURCE_EXHAUSTED")
    assert refused > 0
    labels = {"grpc_type": "unary", "grpc_service": "securefiles.authz.v1.AuthorizationService",
              "grpc_method": "GetSigningKeys", "grpc_code": "RESOURCE_EXHAUSTED"}
    after = scrape_until(system, "authz", lambda s: value(s, "grpc_server_handled_total", **labels) - value(
        before, "grpc_server_handled_total", **labels) >= refused)
    assert value(after, "grpc_server_handled_total", **labels) - value(
        before, "grpc_server_handled_total", **labels) == refused
    assert value(after, "securefiles_rate_limit_rejections_total", reason="RATE_LIMITED") - value(
        before, "securefiles_rate_limit_rejections_total", reason="RATE_LIMITED") == refused


@pytest.mark.slow
def test_key_versions_data_keys_and_rewrap_progress(fresh_system: LocalSystem, tmp_path: Path) -> None:
    system = fresh_system
    system.start()
    source = tmp_path / "file"
    source.write_bytes(b"x" * 1000)
    with system.client() as admin:
        for index in range(3):
            admin.upload_file(source, f"file-{index}")
    kms, storage = scrape(system, "kms-eu"), scrape(system, "storage")
    assert value(kms, "securefiles_kms_key_versions", region="eu", state="PRIMARY") == 1
    assert value(kms, "securefiles_kms_key_versions", region="eu", state="ENABLED") == 0
    assert value(storage, "securefiles_data_keys", region="eu", key_version="1") == 3

    with system.client() as operator:
        operator.rotate_key(reason="metrics")
        kms = scrape(system, "kms-eu")
        assert value(kms, "securefiles_kms_key_versions", region="eu", state="PRIMARY") == 1
        assert value(kms, "securefiles_kms_key_versions", region="eu", state="ENABLED") == 1
        operator.rewrap_data_keys()
    storage = scrape(system, "storage")
    assert value(storage, "securefiles_data_keys", region="eu", key_version="2") == 3
    assert value(storage, "securefiles_data_keys", region="eu", key_version="1") == 0
    assert value(storage, "securefiles_rewrap_data_keys_total", region="eu", result="rewrapped") == 3
    assert value(storage, "securefiles_rewrap_data_keys_total", region="eu", result="failed") == 0


_SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def test_the_grafana_dashboard_queries_only_metrics_the_services_export(system: LocalSystem) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "deploy" / "grafana" / "securefiles-dashboard.json")
                           .read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(?:grpc_server|securefiles)_\w+", target["expr"])}
    exported = set()
    for service in ("storage", "authz", "kms-eu"):  # families (present before their first sample) and samples
        text = httpx.get(system.operations_url(service) + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            # A family is named without its samples' suffixes (a counter's `_total`, a histogram's
            # `_bucket`…): before its first sample (no decision made yet) only the family is there.
            exported |= {family.name} | {family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, ())}
            exported |= {sample.name for sample in family.samples}
    assert len(queried) >= 10
    assert queried <= exported, queried - exported
