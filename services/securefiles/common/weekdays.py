"""Days of the week as checks name them: `mon` … `sun`, and ranges like `mon-fri`."""

from __future__ import annotations

from securefiles.common.errors import InvalidArgument

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> list[str]:
    """`mon-fri`, `mon,wed,fri`, `fri-mon` (wrapping) -> day names."""
    days: list[str] = []
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        first, sep, last = part.partition("-")
        if first[:3] not in DAYS or (sep and last[:3] not in DAYS):
            raise InvalidArgument(f"unknown day in {text!r}", reason="INVALID_CHECK")
        start = DAYS.index(first[:3])
        stop = DAYS.index(last[:3]) if sep else start
        span = range(start, stop + 1) if stop >= start else [*range(start, 7), *range(0, stop + 1)]
        days += [DAYS[i] for i in span]
    return days
