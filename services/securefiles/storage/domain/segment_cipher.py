"""Segmented AES-256-GCM for file content, after Tink's AES-GCM-HKDF streaming AEAD.

Blob layout:  header | segment 0 | segment 1 | … | last segment
  header   = b"SFS1" | plaintext segment size (u32 BE) | salt (32) | nonce prefix (7)
  segment  = AES-GCM(segment key, nonce_i, plaintext_i) (plaintext + 16-byte tag)
  seg. key = HKDF-SHA256(data key, salt, info = "securefiles.segment.v1" ‖ 0 ‖ associated data)
  nonce_i  = nonce prefix (7) ‖ i (u32 BE) ‖ last-segment flag (1)

The associated data (the file's resource name and version) is bound through the key
derivation, so a segment or a whole blob moved to another file does not decrypt; the
counter and last flag in the nonce detect reordering, truncation and extension. Every
blob has at least one segment (the last), so an empty file is still authenticated.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SFS1"
SALT_BYTES = 32
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 4 + SALT_BYTES + NONCE_PREFIX_BYTES
DEFAULT_SEGMENT_BYTES = 1024 * 1024
MAX_SEGMENT_BYTES = 16 * 1024 * 1024
_INFO = b"securefiles.segment.v1\x00"


class SegmentIntegrityError(Exception):
    """Ciphertext was modified, truncated, extended, reordered or belongs to another file."""


def _segment_key(data_key: bytes, salt: bytes, associated_data: bytes) -> AESGCM:
    if len(data_key) != 32:
        raise ValueError("data key must be 32 bytes")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO + associated_data).derive(data_key)
    return AESGCM(derived)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


@dataclass(frozen=True)
class SegmentHeader:
    segment_bytes: int
    salt: bytes
    nonce_prefix: bytes

    def encode(self) -> bytes:
        return MAGIC + struct.pack(">I", self.segment_bytes) + self.salt + self.nonce_prefix

    @classmethod
    def decode(cls, raw: bytes) -> SegmentHeader:
        if len(raw) != HEADER_BYTES or raw[:4] != MAGIC:
            raise SegmentIntegrityError("bad header")
        (segment_bytes,) = struct.unpack(">I", raw[4:8])
        if not 0 < segment_bytes <= MAX_SEGMENT_BYTES:
            raise SegmentIntegrityError("bad header")
        return cls(segment_bytes, raw[8 : 8 + SALT_BYTES], raw[8 + SALT_BYTES :])


class SegmentEncryptor:
    """Feed plaintext with `update`; write `header`, every returned segment, then `finalize()`.

    Chunks are held by reference, not copied: aligned 1 MiB chunks are sealed as they are."""

    def __init__(self, data_key: bytes, associated_data: bytes, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.header = SegmentHeader(segment_bytes, os.urandom(SALT_BYTES), os.urandom(NONCE_PREFIX_BYTES))
        self._aead = _segment_key(data_key, self.header.salt, associated_data)
        self._segment_bytes = segment_bytes
        self._held: deque[memoryview] = deque()
        self._held_bytes = 0
        self._index = 0
        self._finished = False

    def _seal(self, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self.header.nonce_prefix, self._index, last), plaintext, None)
        self._index += 1
        return sealed

    def _take(self, size: int) -> bytes | bytearray | memoryview:
        """The next `size` held bytes: the first chunk itself when it is exactly one segment."""
        first = self._held[0]
        if len(first) >= size:
            self._held[0] = first[size:]
            if not self._held[0]:
                self._held.popleft()
            self._held_bytes -= size
            return first[:size]
        parts = bytearray()
        while len(parts) < size:
            chunk = self._held.popleft()
            need = size - len(parts)
            parts += chunk[:need]
            if len(chunk) > need:
                self._held.appendleft(chunk[need:])
        self._held_bytes -= size
        return parts

    def update(self, data: bytes) -> list[bytes]:
        """Encrypt every full segment that is known not to be the last one."""
        if self._finished:
            raise ValueError("encryptor already finalized")
        if data:
            self._held.append(memoryview(data))
            self._held_bytes += len(data)
        out: list[bytes] = []
        # Keep at least one byte back: only `finalize` knows which segment is last.
        while self._held_bytes > self._segment_bytes:
            out.append(self._seal(self._take(self._segment_bytes), last=False))
        return out

    def finalize(self) -> bytes:
        """The last segment (possibly empty plaintext)."""
        if self._finished:
            raise ValueError("encryptor already finalized")
        self._finished = True
        rest = self._take(self._held_bytes) if self._held_bytes else b""
        self._held.clear()
        return self._seal(rest, last=True)


def ciphertext_size(plaintext_size: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> int:
    """Blob size for a plaintext of `plaintext_size` bytes."""
    segments = max(1, -(-plaintext_size // segment_bytes))
    return HEADER_BYTES + plaintext_size + segments * TAG_BYTES


def segment_spans(blob_size: int, segment_bytes: int) -> Iterator[tuple[int, int, bool]]:
    """(offset, length, last) of each ciphertext segment in a blob of `blob_size` bytes."""
    body = blob_size - HEADER_BYTES
    if body < TAG_BYTES:
        raise SegmentIntegrityError("truncated")
    full = segment_bytes + TAG_BYTES
    count = max(1, -(-body // full))
    offset = HEADER_BYTES
    for index in range(count):
        length = full if index < count - 1 else body - full * (count - 1)
        if length < TAG_BYTES:
            raise SegmentIntegrityError("truncated")
        yield offset, length, index == count - 1
        offset += length


class SegmentDecryptor:
    """Decrypts the segments of one blob, in order."""

    def __init__(
        self, data_key: bytes, associated_data: bytes, header: bytes, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.header = SegmentHeader.decode(header)
        # The header's segment size is not authenticated by itself: insist on the one we write.
        if self.header.segment_bytes != segment_bytes:
            raise SegmentIntegrityError("unexpected segment size")
        self._aead = _segment_key(data_key, self.header.salt, associated_data)
        self._index = 0

    def decrypt(self, segment: bytes, last: bool) -> bytes:
        """Decrypt the next segment; raises SegmentIntegrityError on any tampering."""
        try:
            plaintext = self._aead.decrypt(_nonce(self.header.nonce_prefix, self._index, last), segment, None)
        except InvalidTag:
            raise SegmentIntegrityError(f"segment {self._index} failed authentication") from None
        self._index += 1
        return plaintext
