"""Printing results for people (tables) and scripts (`--output json`)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from securefiles.authz.v1 import authz_pb2
from securefiles.storage.v1 import storage_pb2


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


def file_object(f: storage_pb2.SecureFile) -> dict[str, Any]:
    """The JSON shape of a secure file that scripts rely on."""
    return {
        "name": f.display_name, "id": f.secure_file_id, "size": f.size_bytes, "sha256": f.sha256,
        "resource": f.name, "version": f.version, "properties": dict(f.properties),
        "created_by": f.created_by, "create_time": rfc3339(f.create_time), "update_time": rfc3339(f.update_time),
        "key_version": f.key_version, "metadata": metadata_object(f.metadata),
        "expires_at": rfc3339(f.expire_time) if f.HasField("expire_time") else None,
    }


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
