"""The result type and the small helpers every metadata parser shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_TEXT_CHARS = 1024
"""Free text taken from a file (subjects, names, aliases, comments) is cut to this length."""

MAX_CERTIFICATES = 1000
"""No parser reads more certificates than this from one file."""


@dataclass(frozen=True)
class FileMetadata:
    """Non-secret facts about a file, stored with it.

    `metadata` is JSON-serialisable and always has a "type"; `expires_at` is timezone-aware UTC or None.
    """

    metadata: dict[str, Any]
    expires_at: datetime | None


class ParseError(Exception):
    """A short, fixed message for the user: never input bytes, never a stack trace."""


def rfc3339(moment: datetime) -> str:
    """`2026-11-25T21:46:13Z`; naive datetimes are taken as UTC (as plistlib returns them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def as_utc(moment: datetime) -> datetime:
    """Aware UTC, whole seconds (what `rfc3339` shows)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


_CONTROL_CHARACTERS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], "\ufffd")


def clean_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut to `limit` characters; control characters (NUL breaks PostgreSQL JSON) and lone surrogates
    (not UTF-8) become U+FFFD, so the value stores and displays safely."""
    value = value[:limit].translate(_CONTROL_CHARACTERS)
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def hex_pairs(data: bytes) -> str:
    """`AB:CD:…`, as certificate fingerprints are usually shown."""
    return ":".join(f"{byte:02X}" for byte in data)
