"""Storage's Prometheus metrics: what its domain reports, and data keys per key version."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from securefiles.common.metrics import register_scrape_time

PARSE_TIMEOUTS = Counter("securefiles_metadata_parse_timeouts_total",
                         "Uploads whose metadata parsing ran out of time (kept with a parse_error).")
REWRAPPED = Counter("securefiles_rewrap_data_keys_total",
                    "Data keys the rewrap moved to the region's primary key version (or failed to).",
                    ["region", "result"])
EXPIRY_CHECKS = Counter("securefiles_expiry_checks_total", "Runs of the expiry alert job.")
EXPIRY_ALERTS = Counter("securefiles_expiry_alerts_total", "Expiry alerts delivered, or failed (retried).",
                        ["result"])


class PrometheusEvents:
    """`OperationalEvents` (and the expiry job's runs) as counters, present from the start at zero."""

    def __init__(self, regions: Iterable[str]) -> None:
        for region in regions:
            for result in ("rewrapped", "failed"):
                REWRAPPED.labels(region, result)
        for result in ("sent", "failed"):
            EXPIRY_ALERTS.labels(result)

    def metadata_parse_timed_out(self) -> None:
        PARSE_TIMEOUTS.inc()

    def data_keys_rewrapped(self, region: str, rewrapped: int, failed: int) -> None:
        REWRAPPED.labels(region, "rewrapped").inc(rewrapped)
        REWRAPPED.labels(region, "failed").inc(failed)

    def expiry_run(self, alerts: int, failures: int) -> None:
        EXPIRY_ALERTS.labels("sent").inc(alerts)
        EXPIRY_ALERTS.labels("failed").inc(failures)
        EXPIRY_CHECKS.inc()  # last: whoever waits for a run sees its alerts counted


def register_data_key_gauges(count_data_keys: Callable[[str | None], Mapping[tuple[str, int], int]]) -> None:
    """`securefiles_data_keys{region, key_version}`: data keys each key version still wraps (a
    rewrap drains the old versions into the primary), read at scrape time (in the scrape's
    thread: `count_data_keys` blocks)."""

    def read() -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("securefiles_data_keys", "Data keys (one per file version) by wrapping key version.",
                                  labels=["region", "key_version"])
        for (region, version), count in sorted(count_data_keys(None).items()):
            gauge.add_metric([region, str(version)], count)
        yield gauge

    register_scrape_time("storage_data_keys", read)
