"""Human durations as typed into flags: `90s`, `15min`, `8h`, `30d`, `4w`, `1h30min`.

Every part carries its unit. A bare number (`30`: seconds? days?) and `m` (minutes or months?)
are refused rather than guessed; minutes are `min`. Months and years are not units: they have
no fixed length.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"([0-9]{1,9})(min|s|h|d|w)")
MAX_SECONDS = 100 * 365 * 86400  # beyond this a date computed from it stops being representable
ACCEPTED = "s, min, h, d, w (e.g. 90s, 15min, 8h, 30d, 4w, 1h30min)"


def parse_duration(text: str) -> int:
    """Seconds in `text`; raises ValueError (a one-line message naming the accepted units) otherwise."""
    compact = text.strip().lower()
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"invalid duration {text!r}: {_why(compact)}; use a number and a unit: {ACCEPTED}")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {text!r}: longer than 100 years")
    return seconds


def _why(compact: str) -> str:
    if compact.isascii() and compact.isdigit():
        return "a number without a unit is ambiguous"
    if re.search(r"[0-9](mo|y)", compact):
        return "months and years have no fixed length"
    if re.fullmatch(r"([0-9]+[a-z]+)+", compact) and re.search(r"[0-9]m(?![a-z])", compact):
        return "'m' is ambiguous (minutes or months?), write 'min' for minutes"
    return "not a duration"
