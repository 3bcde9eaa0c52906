"""SSH public keys in OpenSSH's one-line form (`id_ed25519.pub`, `authorized_keys`):
`[options] key-type base64-blob [comment]`, one key per line, `#` lines ignored.

Type, size and fingerprint are what `ssh-keygen -l` prints (bits, `SHA256:` + unpadded base64 of
SHA-256 of the blob); the blob's own type name must match the line's.
"""

from __future__ import annotations

import binascii
from typing import Any

from .model import FileMetadata, ParseError, clean_text
from .ssh_key import public_blob_info

KEY_TYPES = frozenset({
    "ssh-rsa", "ssh-dss", "ssh-ed25519", "ssh-ed448", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
MAX_KEYS = 100
MAX_SCAN_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024


def _key_line(line: bytes) -> tuple[str, bytes, bytes] | None:
    """(key type, base64 blob, comment) of a key line, options before the type allowed."""
    if len(line) > MAX_LINE_BYTES:
        return None
    tokens = line.split()
    for index, token in enumerate(tokens[:-1]):
        name = token.decode("ascii", "replace")
        if name in KEY_TYPES:
            return name, tokens[index + 1], b" ".join(tokens[index + 2:])
    return None


def _lines(data: bytes) -> list[bytes]:
    return [line.strip() for line in data[:MAX_SCAN_BYTES].splitlines()
            if line.strip() and not line.strip().startswith(b"#")]


def looks_like_ssh_public_key(data: bytes) -> bool:
    """The first line that is not blank or a comment is a public key line."""
    lines = _lines(data[:MAX_LINE_BYTES + 1])
    return bool(lines) and _key_line(lines[0]) is not None


def _describe(key_type: str, encoded: bytes, comment: bytes) -> dict[str, Any]:
    try:
        blob = binascii.a2b_base64(encoded)
    except (binascii.Error, ValueError) as exc:
        raise ParseError("invalid public key") from exc
    info = public_blob_info(blob)
    if info["key_type"] != key_type:
        raise ParseError("invalid public key")
    if comment:
        info["comment"] = clean_text(comment.decode("utf-8", "replace"))
    return info


def parse_ssh_public_keys(data: bytes) -> FileMetadata:
    metadata: dict[str, Any] = {"type": "ssh_public_key", "format": "OpenSSH"}
    keys: list[dict[str, Any]] = []
    try:
        for line in _lines(data):
            parsed = _key_line(line)
            if parsed is None:
                continue
            if len(keys) == MAX_KEYS:
                metadata["parse_error"] = f"more than {MAX_KEYS} keys; only the first were read"
                break
            keys.append(_describe(*parsed))
    except ParseError as exc:
        metadata["parse_error"] = str(exc)
    if not keys:
        metadata.setdefault("parse_error", "no public key found")
        return FileMetadata(metadata, None)
    metadata.update(keys[0])
    if len(keys) > 1:
        metadata["key_count"] = len(keys)
        metadata["keys"] = keys
    return FileMetadata(metadata, None)
