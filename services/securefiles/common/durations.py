"""Human durations: `90s`, `15m`, `8h`, `30d`, `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in `text`; raises ValueError on anything else."""
    compact = text.strip().lower()
    if compact.isascii() and compact.isdigit():
        return int(compact)
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 15m, 8h, 30d)")
    return sum(int(n) * _UNITS[u] for n, u in parts)
