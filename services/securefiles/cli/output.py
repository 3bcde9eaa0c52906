"""Printing results for people (tables) and scripts (`--output json`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from securefiles.authz.v1 import authz_pb2
from securefiles.client.types import SecureFile


def rfc3339(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata_object(metadata: struct_pb2.Struct) -> dict[str, Any]:
    """Parsed metadata as JSON (whole numbers stay integers)."""
    return _whole_numbers(json_format.MessageToDict(metadata)) if metadata.fields else {"type": "unknown"}


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


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
    if isinstance(value, Mapping):
        return {key: json_object(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [json_object(inner) for inner in value]
    return value


def when(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC to the second, the form every JSON time of the CLI takes."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def file_object(f: SecureFile) -> dict[str, Any]:
    """The JSON shape of a secure file (metadata the server could not read says so)."""
    obj: dict[str, Any] = json_object(f)
    obj["metadata"] = obj["metadata"] or {"type": "unknown"}
    return obj


def terminal_safe(text: str) -> str:
    """Text from the server shown on a terminal: control and format characters (escape
    sequences, bidi overrides) appear escaped instead of acting."""
    return "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf") else ch.encode("unicode_escape").decode("ascii")
        for ch in text)


def role_object(a: authz_pb2.RoleAssignment) -> dict[str, str]:
    return {"principal": a.principal, "role": authz_pb2.Role.Name(a.role).lower()}


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in row] for row in rows]
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
