"""Prometheus metrics every service shares (the official client, its default registry).

RPCs use gRPC's usual names (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`, labelled by type, service, method and code); ours start with
`securefiles_`. Labels are bounded sets (method names, codes, reasons, states), never names of
files, principals or projects. Values read at scrape time come from collectors that may query
the database: the operations port renders off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.",
                       ["grpc_type", "grpc_service", "grpc_method"])
GRPC_HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, whatever their outcome.",
                       ["grpc_type", "grpc_service", "grpc_method", "grpc_code"])
GRPC_HANDLING = Histogram("grpc_server_handling_seconds", "Time the server took to handle an RPC.",
                          ["grpc_type", "grpc_service", "grpc_method"], buckets=_LATENCY_BUCKETS)
DECISIONS = Counter("securefiles_decisions_total",
                    "Audited decisions by action, outcome (ALLOW, DENY, FAIL) and reason (CODE/REASON).",
                    ["action", "outcome", "reason"])
AUDIT_APPEND = Histogram("securefiles_audit_append_seconds", "Time to append one entry to the audit chain.",
                         buckets=_LATENCY_BUCKETS)
RATE_LIMIT_REJECTIONS = Counter("securefiles_rate_limit_rejections_total",
                                "Calls refused by the per-caller limits, by reason.", ["reason"])
for _reason in ("RATE_LIMITED", "TOO_MANY_STREAMS", "AUTHENTICATION_THROTTLED"):
    RATE_LIMIT_REJECTIONS.labels(_reason)  # present at zero from the start


class RpcMetrics:
    """The three gRPC server metrics for one method; children are looked up once per method."""

    _cache: dict[tuple[str, str], RpcMetrics] = {}

    def __init__(self, grpc_type: str, method: str) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self._labels = (grpc_type, service, name)
        self._started = GRPC_STARTED.labels(*self._labels)
        self._handling = GRPC_HANDLING.labels(*self._labels)
        self._handled: dict[str, Any] = {}

    @classmethod
    def start(cls, grpc_type: str, method: str) -> tuple[RpcMetrics, float]:
        """Count a started RPC; returns its metrics and the start time to pass to `handled`."""
        metrics = cls._cache.get((grpc_type, method))
        if metrics is None:
            metrics = cls._cache[(grpc_type, method)] = cls(grpc_type, method)
        metrics._started.inc()
        return metrics, time.perf_counter()

    def handled(self, code: str, started: float) -> None:
        self._handling.observe(time.perf_counter() - started)
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = GRPC_HANDLED.labels(*self._labels, code)
        child.inc()


class _ScrapeTimeGauges(Collector):
    """Gauges computed when scraped by `read` (which may query the database)."""

    def __init__(self, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return list(self._read())


_scrape_time: dict[str, Collector] = {}


def register_scrape_time(key: str, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
    """Serve gauges computed at scrape time; a later registration under `key` replaces the earlier
    (a service rebuilt in one process)."""
    previous = _scrape_time.pop(key, None)
    if previous is not None:
        REGISTRY.unregister(previous)
    collector = _scrape_time[key] = _ScrapeTimeGauges(read)
    REGISTRY.register(collector)


def clear_scrape_time() -> None:
    """Forget every scrape-time collector (the services of one process stopped, the process goes on:
    in-process tests); the counters stay, as a process's do."""
    while _scrape_time:
        REGISTRY.unregister(_scrape_time.popitem()[1])


def register_database_pool(engine: Engine) -> None:
    """Connections of the service's database pool: checked out (in use) and idle."""
    pool: Any = engine.pool

    def read() -> Iterable[GaugeMetricFamily]:
        in_use = GaugeMetricFamily("securefiles_db_pool_connections", "Database pool connections by state.",
                                   labels=["state"])
        checked_out = int(pool.checkedout()) if hasattr(pool, "checkedout") else 0
        in_use.add_metric(["checked_out"], checked_out)
        in_use.add_metric(["idle"], int(pool.checkedin()) if hasattr(pool, "checkedin") else 0)
        size = GaugeMetricFamily("securefiles_db_pool_size", "Configured size of the database pool.")
        size.add_metric([], int(pool.size()) if hasattr(pool, "size") else 0)
        yield in_use
        yield size

    register_scrape_time("database_pool", read)


def render() -> tuple[bytes, str]:
    """The registry in Prometheus text format (blocking: collectors may query the database)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
