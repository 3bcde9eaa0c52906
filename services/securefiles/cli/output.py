"""Printing results for people (tables) and scripts (`--output json`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from securefiles.client.types import SecureFile


def json_name(field: str) -> str:
    """A proto field's JSON name as protoc derives it: `display_name` -> `displayName`."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_object(value: Any) -> Any:
    """One of the client's types as `--output json` prints it: the proto's JSON names for keys
    (map keys and parsed metadata are data and stay as they are), times in RFC 3339, null when unset."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {json_name(f.name): json_object(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return when(value)
    if isinstance(value, dt.timedelta):  # a Duration as the JSON mapping writes it: "3600s", "0.5s"
        seconds = value.total_seconds()
        return f"{int(seconds)}s" if seconds.is_integer() else f"{seconds}s"
    if isinstance(value, Mapping):
        return {key: json_object(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [json_object(inner) for inner in value]
    return value


def when(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC to the second, the form every JSON time of the CLI takes."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def file_object(f: SecureFile) -> dict[str, Any]:
    """The JSON shape of a secure file: the proto's JSON names, its parsed facts under their type."""
    obj: dict[str, Any] = json_object(f)
    return obj


def terminal_safe(text: str) -> str:
    """Text from the server shown on a terminal: control and format characters (escape
    sequences, bidi overrides) appear escaped instead of acting."""
    return "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf") else ch.encode("unicode_escape").decode("ascii")
        for ch in text)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    # Cells hold what the server says (names, parsed certificate subjects): shown, never acted on.
    cells = [[str(h) for h in headers]] + [[terminal_safe("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
