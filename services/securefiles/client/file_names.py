"""What a user types for a file (a display name, or a full resource name) as the request needs it."""

from __future__ import annotations

import unicodedata

from securefiles.client.list_filter import quoted
from securefiles.common.errors import InvalidArgument
from securefiles.common.resource_names import is_file_id

# A well-formed id no file has (storage assigns random UUIDs, version 4).
NO_FILE_ID = "00000000-0000-0000-0000-000000000000"


def full_name(text: str) -> str | None:
    """`text` when it is a file's id-based name (`projects/{p}/secureFiles/{id}`), else None."""
    parts = text.split("/")
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "secureFiles" and is_file_id(parts[3]):
        return text
    return None


def display_name(text: str) -> str:
    """A display name as the server stores it (NFC); one with `/` is no file's."""
    if "/" in text or not text:
        raise InvalidArgument(f"invalid file name {text!r}", reason="INVALID_NAME")
    return unicodedata.normalize("NFC", text)


def display_name_filter(name: str) -> str:
    """ListSecureFiles' filter keeping the file named `name` (and no more than a few others).

    The filter reads `*` and `?` as wildcards; each becomes `?` (one character), so every name
    matches as written and a name of many stars stays within the filter's limits. The caller keeps
    the exact match."""
    return f"display_name = {quoted(name.replace('*', '?'))}"
