"""Server-side time per RPC from the services' JSON access logs (`duration_ms` of each `rpc` line).

Shows how an end-to-end figure splits across the hops (storage → authz, storage → kms)
without touching the services: remember the log sizes before a phase, read what it added.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from tests.bench.report import Figure
from tests.conftest import LocalSystem

Offsets = dict[Path, int]


def _logs(system: LocalSystem) -> list[Path]:
    return sorted((system.state_dir / "logs").glob("*.log"))


def offsets(system: LocalSystem) -> Offsets:
    """Where each service log ends now."""
    return {path: path.stat().st_size for path in _logs(system)}


def durations(system: LocalSystem, since: Offsets) -> dict[tuple[str, str], list[float]]:
    """(service log, method) → server-side milliseconds of every RPC logged after `since`."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in _logs(system):
        with path.open("rb") as handle:
            handle.seek(since.get(path, 0))
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("message") == "rpc" and "duration_ms" in entry:
                    method = str(entry.get("method", "")).rsplit("/", 1)[-1]
                    found[(path.stem, method)].append(float(entry["duration_ms"]))
    return found


def hop_figures(phase: str, system: LocalSystem, since: Offsets, min_calls: int) -> list[Figure]:
    """p50 server time of every method called at least `min_calls` times in the phase."""
    figures = []
    for (service, method), values in sorted(durations(system, since).items()):
        if len(values) >= min_calls:
            figures.append(Figure(f"{phase}: {service} {method} (server)", statistics.median(values), "ms",
                                  spread=f"p50 of {len(values)} calls, from the service log", detail=True))
    return figures
