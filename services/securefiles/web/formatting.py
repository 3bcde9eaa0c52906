"""How values look on the pages (template filters). Everything returned is plain text: the
templates escape it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

WARN_DAYS = 30


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def when(at: dt.datetime | None) -> str:
    """`2026-05-01 14:03 UTC`, or an empty string for an unset time."""
    if at is None:
        return ""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def expiry(at: dt.datetime | None, now: dt.datetime | None = None) -> dict[str, str]:
    """{"kind": none|ok|soon|expired, "label": …}: soon within 30 days; said in words, not colour alone."""
    if at is None:
        return {"kind": "none", "label": "—"}
    at = at.astimezone(dt.UTC)
    left = at - (now or _now())
    if left.total_seconds() <= 0:
        return {"kind": "expired", "label": f"expired {at:%Y-%m-%d}"}
    days = left.days
    if days < WARN_DAYS:
        return {"kind": "soon", "label": f"expires {at:%Y-%m-%d} (in {days} day{'s' if days != 1 else ''})"}
    return {"kind": "ok", "label": f"{at:%Y-%m-%d}"}


def size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def facts(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A file's parsed metadata as (label, value) rows, nested keys joined with ' / ' and spelled as
    words (`entry_count` and `entryCount` both read `entry count`)."""
    return [(_words(label), value) for label, value in _flatten("", dict(metadata))]


def file_facts(secure_file: Any) -> list[tuple[str, str]]:
    """A client `SecureFile`'s type, then its typed facts, as rows."""
    return facts({"type": secure_file.file_type, **secure_file.facts})


def _words(label: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", label).replace("_", " ").lower()


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(f"{prefix} / {key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            yield prefix, ", ".join(str(v) for v in value)
        else:
            for index, inner in enumerate(value, 1):
                yield from _flatten(f"{prefix} {index}", inner)
    elif isinstance(value, float) and value.is_integer():
        yield prefix, str(int(value))
    else:
        yield prefix, str(value)


def resource_id(name: str) -> str:
    """The last segment of a resource name."""
    return name.rsplit("/", 1)[-1]


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when, "expiry": expiry, "size": size, "facts": file_facts, "resource_id": resource_id,
}
