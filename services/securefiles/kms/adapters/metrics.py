"""kms's Prometheus metrics: the region's key versions by state, read at scrape time."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from securefiles.common.metrics import register_scrape_time
from securefiles.kms.domain.key_ring import KeyState, KeyVersionStore


def key_version_gauge(store: KeyVersionStore, region: str) -> GaugeMetricFamily:
    """Versions by state, counted by the store (a ring gains a version on every deploy)."""
    gauge = GaugeMetricFamily("securefiles_kms_key_versions", "Key versions of the region's key ring by state.",
                              labels=["region", "state"])
    states = store.count_by_state(region)
    for state in KeyState:
        gauge.add_metric([region, state.value], states.get(state, 0))
    return gauge


def register_key_version_gauges(store: KeyVersionStore, region: str) -> None:
    register_scrape_time("kms_key_versions", lambda: [key_version_gauge(store, region)])
