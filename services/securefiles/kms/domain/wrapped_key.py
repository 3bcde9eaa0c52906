"""The self-describing wrapped data key and the AAD that binds its encryption context.

Layout: b"SFW1" | len(region) (1 byte) | region (ASCII) | version (4 bytes, big endian)
        | nonce (12) | AES-256-GCM(data key) with tag (48).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from securefiles.common.errors import InvalidArgument

MAGIC = b"SFW1"
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
_SEALED_BYTES = DATA_KEY_BYTES + 16
REGION_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_CONTEXT_ENTRIES = 16
MAX_CONTEXT_BYTES = 4096


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under one key version of one region."""

    region: str
    version: int
    nonce: bytes
    sealed: bytes

    def encode(self) -> bytes:
        region = self.region.encode("ascii")
        return MAGIC + bytes([len(region)]) + region + struct.pack(">I", self.version) + self.nonce + self.sealed

    @classmethod
    def decode(cls, raw: bytes) -> WrappedKey:
        malformed = InvalidArgument("wrapped key is malformed", reason="MALFORMED_WRAPPED_KEY")
        if len(raw) < len(MAGIC) + 1 or raw[:4] != MAGIC:
            raise malformed
        region_len = raw[4]
        expected = 5 + region_len + 4 + NONCE_BYTES + _SEALED_BYTES
        if len(raw) != expected:
            raise malformed
        try:
            region = raw[5 : 5 + region_len].decode("ascii")
        except UnicodeDecodeError:
            raise malformed from None
        if not REGION_PATTERN.fullmatch(region):
            raise malformed
        offset = 5 + region_len
        (version,) = struct.unpack(">I", raw[offset : offset + 4])
        offset += 4
        nonce = raw[offset : offset + NONCE_BYTES]
        sealed = raw[offset + NONCE_BYTES :]
        if version < 1:
            raise malformed
        return cls(region, version, nonce, sealed)


def canonical_context(context: Mapping[str, str]) -> bytes:
    """A deterministic encoding of the encryption context (sorted keys, compact JSON)."""
    if len(context) > MAX_CONTEXT_ENTRIES:
        raise InvalidArgument("encryption context has too many entries", reason="INVALID_ENCRYPTION_CONTEXT")
    encoded = json.dumps(dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    if len(encoded) > MAX_CONTEXT_BYTES:
        raise InvalidArgument("encryption context is too large", reason="INVALID_ENCRYPTION_CONTEXT")
    return encoded


def data_key_aad(region: str, version: int, context: Mapping[str, str]) -> bytes:
    """AAD for sealing a data key: binds region, version and the encryption context."""
    return b"securefiles.dek.v1\x00" + region.encode() + b"\x00" + str(version).encode() + b"\x00" + (
        canonical_context(context)
    )


def version_material_aad(region: str, version: int) -> bytes:
    """AAD for sealing a key version's material under the region root key."""
    return b"securefiles.key-version.v1\x00" + region.encode() + b"\x00" + str(version).encode()
