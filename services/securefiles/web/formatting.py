"""How values look on the pages (template filters). Everything returned is plain text: the
templates escape it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

WARN_DAYS = 30


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def when(stamp: Timestamp | None) -> str:
    """`2026-05-01 14:03 UTC`, or an empty string for an unset time."""
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return ""
    return stamp.ToDatetime(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def expiry(stamp: Timestamp | None, now: dt.datetime | None = None) -> dict[str, str]:
    """{"kind": none|ok|soon|expired, "label": …}: soon within 30 days; said in words, not colour alone."""
    if stamp is None or stamp.seconds == 0:
        return {"kind": "none", "label": "—"}
    at = stamp.ToDatetime(dt.UTC)
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


def file_type(secure_file: Message) -> str:
    """The parsed type of a file (`x509`, `pkcs12`, …): the member of `file_metadata` that is set."""
    return secure_file.WhichOneof("file_metadata") or "unknown"


def facts(secure_file: Message) -> list[tuple[str, str]]:
    """A file's parsed metadata (its type, then the typed facts) as (label, value) rows, nested keys
    joined with ' / '."""
    kind = file_type(secure_file)
    typed = MessageToDict(getattr(secure_file, kind), preserving_proto_field_name=True) \
        if secure_file.HasField(kind) else {}
    return [(label.replace("_", " "), value) for label, value in _flatten("", {"type": kind, **typed})]


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(f"{prefix} / {key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
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
    "when": when, "expiry": expiry, "size": size, "facts": facts, "file_type": file_type, "resource_id": resource_id,
}
