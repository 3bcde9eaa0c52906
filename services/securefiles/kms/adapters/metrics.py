"""kms's Prometheus metrics: the region's key versions by state, read at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily

from securefiles.common.metrics import register_scrape_time
from securefiles.kms.domain.key_ring import KeyState, KeyVersionStore


def register_key_version_gauges(store: KeyVersionStore, region: str) -> None:
    def read() -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("securefiles_kms_key_versions", "Key versions of the region's key ring by state.",
                                  labels=["region", "state"])
        states = Counter(record.state for record in store.list_versions(region))
        for state in KeyState:
            gauge.add_metric([region, state.value], states.get(state, 0))
        yield gauge

    register_scrape_time("kms_key_versions", read)
