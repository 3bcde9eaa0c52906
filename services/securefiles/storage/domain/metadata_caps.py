"""How much parsed metadata one file may carry, and how much one listing page may.

A file's metadata travels with it in every `files show`, `files list` page and download header; a
keystore with thousands of long aliases once made every listing of its project fail ("Sent
message larger than max"). So each list in a file's metadata keeps at most `MAX_LIST_ITEMS`
items, the whole at most `MAX_METADATA_BYTES` of JSON, and what was cut is named under
"truncated" (counts such as `entry_count` stay). A listing page stops at `MAX_PAGE_BYTES`.
"""

from __future__ import annotations

import json
from typing import Any

from securefiles.storage.domain.model import SecureFile

MAX_LIST_ITEMS = 100
MAX_METADATA_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_PAGE_BYTES = 2 * 1024 * 1024  # well under gRPC's default 4 MiB message limit
TRUNCATED = "truncated"


def json_size(metadata: dict[str, Any]) -> int:
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def cap_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` within the caps, with "truncated" listing the top-level fields that were cut."""
    cut: set[str] = set(metadata.get(TRUNCATED) or []) if isinstance(metadata.get(TRUNCATED), list) else set()
    capped: dict[str, Any] = {}
    for key, value in metadata.items():
        if key == TRUNCATED:
            continue
        shortened, was_cut = _shorten(value, 1)
        capped[key] = shortened
        if was_cut:
            cut.add(key)
    size = json_size(capped)
    while size > MAX_METADATA_BYTES:
        lists = [(json_size({key: value}), key) for key, value in capped.items() if isinstance(value, list) and value]
        if not lists:
            break
        _, largest = max(lists)
        capped[largest] = capped[largest][: len(capped[largest]) // 2]
        cut.add(largest)
        size = json_size(capped)
    if size > MAX_METADATA_BYTES:  # no list left to shorten: keep the plain facts only
        for key in [key for key, value in capped.items() if isinstance(value, list | dict)]:
            del capped[key]
            cut.add(key)
    if cut:
        capped[TRUNCATED] = sorted(cut)
    return capped


def _shorten(value: Any, depth: int) -> tuple[Any, bool]:
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            return [], bool(value)
        items = [_shorten(item, depth + 1) for item in value[:MAX_LIST_ITEMS]]
        return [item for item, _ in items], len(value) > MAX_LIST_ITEMS or any(cut for _, cut in items)
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return {}, bool(value)
        pairs = {key: _shorten(item, depth + 1) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, any(cut for _, cut in pairs.values())
    return value, False


def listing_bytes(secure_file: SecureFile) -> int:
    """About what one file adds to a listing page on the wire: the metadata travels twice, as a
    Struct (a little above its JSON size) and typed (about half of it)."""
    version = secure_file.current
    metadata = version.metadata_bytes or json_size(version.metadata)
    properties = sum(len(key.encode()) + len(value.encode()) + 8 for key, value in secure_file.properties.items())
    return metadata * 2 + properties + 2 * len(secure_file.display_name.encode()) + 512
