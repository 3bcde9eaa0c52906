"""Validation of secure file display names and properties."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from securefiles.common.errors import InvalidArgument
from securefiles.common.reserved_names import AGENT_PREFIX, is_reserved_name

# An agent writes the file under its display name: 255 bytes is the longest file name
# Linux file systems (ext4, xfs, tmpfs) and macOS take.
MAX_NAME_BYTES = 255
MAX_PROPERTIES = 64
MAX_PROPERTY_KEY_CHARS = 128
MAX_PROPERTY_VALUE_CHARS = 1024
# A listing's glob: long enough for any real name pattern, short enough that matching a page of
# names costs little (see common/glob.py).
MAX_PATTERN_CHARS = 256
MAX_PATTERN_STARS = 8


def normalize_name(name: str) -> str:
    """Unicode NFC: the composed and decomposed spellings of a name are the same name."""
    return unicodedata.normalize("NFC", name)


def validate_display_name(name: str) -> str:
    """1-255 bytes of UTF-8; no `/`, `\\`, NUL or control characters; not `.` or `..`. Returns it in NFC."""
    name = normalize_name(name)

    def invalid(why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid file name: {why}", reason="INVALID_NAME")

    if not name:
        raise invalid("it is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise invalid(f"it is longer than {MAX_NAME_BYTES} bytes in UTF-8, the longest file name an agent's "
                      "file system takes")
    if name in (".", ".."):
        raise invalid("'.' and '..' are reserved")
    if "/" in name or "\\" in name:
        raise invalid("it contains '/' or '\\'")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise invalid("it contains NUL, control or invisible formatting characters")
    if name != name.strip():
        raise invalid("it starts or ends with white space")
    # An agent prints names into CI logs; it escapes them, but other tools that show a downloaded
    # file's name do not: a name that is a CI command is refused rather than carried around.
    if "##vso[" in name.lower() or "##[" in name:
        raise invalid("it contains '##vso[' or '##[', which CI agents (Azure Pipelines, GitHub Actions) "
                      "take for a logging command anywhere in a log line")
    if name.startswith("::"):
        raise invalid("it starts with '::', which GitHub Actions takes for a workflow command")
    if is_reserved_name(name):
        raise invalid(f"names starting with '{AGENT_PREFIX}' are the agent's own files")
    return name


def validate_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """At most 64 properties; keys 1-128 characters, values up to 1024."""
    if len(properties) > MAX_PROPERTIES:
        raise InvalidArgument(f"at most {MAX_PROPERTIES} properties", reason="TOO_MANY_PROPERTIES")
    for key, value in properties.items():
        if not 0 < len(key) <= MAX_PROPERTY_KEY_CHARS or len(value) > MAX_PROPERTY_VALUE_CHARS:
            raise InvalidArgument(
                f"property keys must be 1-{MAX_PROPERTY_KEY_CHARS} characters and values at most "
                f"{MAX_PROPERTY_VALUE_CHARS}", reason="INVALID_PROPERTY",
            )
        if any(unicodedata.category(ch) == "Cc" for ch in key):
            raise InvalidArgument("property keys may not contain control characters", reason="INVALID_PROPERTY")
    return dict(properties)


def validate_name_pattern(pattern: str) -> str:
    """A listing's glob (`*`, `?`): at most 256 characters and 8 `*`, no control characters."""
    def invalid(why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid name pattern: {why}", reason="INVALID_NAME_PATTERN",
                               metadata={"max_chars": str(MAX_PATTERN_CHARS), "max_stars": str(MAX_PATTERN_STARS)})

    if len(pattern) > MAX_PATTERN_CHARS:
        raise invalid(f"it is longer than {MAX_PATTERN_CHARS} characters")
    if pattern.count("*") > MAX_PATTERN_STARS:
        raise invalid(f"it has more than {MAX_PATTERN_STARS} '*'")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in pattern):
        raise invalid("it contains NUL or control characters, which no name has")
    return normalize_name(pattern)
