"""A small, bounded reader for DER (and the BER that real CMS files use).

Every length is checked against the bytes that are really there before anything is sliced,
so a length field claiming 4 GB fails at once. Indefinite lengths (BER) are allowed on
constructed values; their end is found by an iterative walk whose nesting is capped at
`MAX_DEPTH`, so hostile nesting costs at most a linear scan and never recursion. Callers
navigate a fixed schema, so they descend only a fixed number of levels themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAX_DEPTH = 32
MAX_OID_BYTES = 64
MAX_TAG_NUMBER_BYTES = 4

UNIVERSAL = 0
APPLICATION = 1
CONTEXT = 2
PRIVATE = 3

BOOLEAN = 1
INTEGER = 2
BIT_STRING = 3
OCTET_STRING = 4
NULL = 5
OID = 6
UTF8_STRING = 12
SEQUENCE = 16
SET = 17
PRINTABLE_STRING = 19
IA5_STRING = 22
BMP_STRING = 30


class DerError(ValueError):
    """Malformed or hostile encoding; the message is short and never quotes the input."""


class ValueTooLarge(DerError):
    """A value (e.g. an OCTET STRING) is larger than the caller allows."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One encoded value: `buf[start:end]`, its contents `buf[content_start:content_end]`."""

    tag_class: int
    constructed: bool
    number: int
    start: int
    content_start: int
    content_end: int
    end: int

    def is_(self, number: int, tag_class: int = UNIVERSAL) -> bool:
        return self.number == number and self.tag_class == tag_class


def _header(buf: bytes, pos: int, limit: int) -> tuple[int, bool, int, int, int | None]:
    """(class, constructed, number, content start, length or None for indefinite)."""
    if pos >= limit:
        raise DerError("truncated")
    first = buf[pos]
    pos += 1
    number = first & 0x1F
    if number == 0x1F:
        number = 0
        for count in range(MAX_TAG_NUMBER_BYTES + 1):
            if count == MAX_TAG_NUMBER_BYTES:
                raise DerError("tag number too large")
            if pos >= limit:
                raise DerError("truncated")
            byte = buf[pos]
            pos += 1
            number = (number << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
    if pos >= limit:
        raise DerError("truncated")
    size_byte = buf[pos]
    pos += 1
    constructed = bool(first & 0x20)
    if size_byte < 0x80:
        length: int | None = size_byte
    elif size_byte == 0x80:
        if not constructed:
            raise DerError("indefinite length on a primitive value")
        length = None
    else:
        count = size_byte & 0x7F
        if count > 4:
            raise DerError("length field too long")
        if pos + count > limit:
            raise DerError("truncated")
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if length is not None and length > limit - pos:
        raise DerError("length exceeds the data")
    return first >> 6, constructed, number, pos, length


def _indefinite_end(buf: bytes, pos: int, limit: int) -> int:
    """Position of the end-of-contents octets closing the value whose contents start at `pos`."""
    level = 1
    while True:
        if pos + 2 > limit:
            raise DerError("truncated")
        if buf[pos] == 0 and buf[pos + 1] == 0:
            level -= 1
            if level == 0:
                return pos
            pos += 2
            continue
        _, _, _, content_start, length = _header(buf, pos, limit)
        if length is None:
            level += 1
            if level > MAX_DEPTH:
                raise DerError("nesting too deep")
            pos = content_start
        else:
            pos = content_start + length


def read_tlv(buf: bytes, pos: int = 0, limit: int | None = None) -> Tlv:
    """The value starting at `pos`, which must end by `limit` (default: end of `buf`)."""
    limit = len(buf) if limit is None else limit
    tag_class, constructed, number, content_start, length = _header(buf, pos, limit)
    if length is None:
        content_end = _indefinite_end(buf, content_start, limit)
        end = content_end + 2
    else:
        content_end = end = content_start + length
    return Tlv(tag_class, constructed, number, pos, content_start, content_end, end)


def children(buf: bytes, parent: Tlv, max_count: int = 100_000) -> Iterator[Tlv]:
    """The values inside a constructed value, at most `max_count` of them."""
    if not parent.constructed:
        raise DerError("expected a constructed value")
    pos = parent.content_start
    count = 0
    while pos < parent.content_end:
        count += 1
        if count > max_count:
            raise DerError("too many elements")
        child = read_tlv(buf, pos, parent.content_end)
        yield child
        pos = child.end


def child_list(buf: bytes, parent: Tlv, max_count: int = 100_000) -> list[Tlv]:
    return list(children(buf, parent, max_count))


def expect(value: Tlv, number: int, tag_class: int = UNIVERSAL, constructed: bool | None = None) -> Tlv:
    if value.number != number or value.tag_class != tag_class:
        raise DerError("unexpected structure")
    if constructed is not None and value.constructed != constructed:
        raise DerError("unexpected structure")
    return value


def expect_sequence(value: Tlv) -> Tlv:
    return expect(value, SEQUENCE, constructed=True)


def primitive_bytes(buf: bytes, value: Tlv) -> bytes:
    if value.constructed:
        raise DerError("expected a primitive value")
    return buf[value.content_start:value.content_end]


def read_oid(buf: bytes, value: Tlv) -> str:
    expect(value, OID, constructed=False)
    body = primitive_bytes(buf, value)
    if not body or len(body) > MAX_OID_BYTES or body[-1] & 0x80:
        raise DerError("invalid object identifier")
    arcs: list[int] = []
    current = 0
    for byte in body:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def read_integer(buf: bytes, value: Tlv, max_bytes: int = 16) -> int:
    expect(value, INTEGER, constructed=False)
    body = primitive_bytes(buf, value)
    if not body or len(body) > max_bytes:
        raise DerError("invalid integer")
    return int.from_bytes(body, "big", signed=True)


def read_octets(buf: bytes, value: Tlv, max_len: int, check_tag: bool = True) -> bytes:
    """An OCTET STRING's bytes, also in BER constructed form (chunks, two levels at most).

    With `check_tag=False` any tag is accepted (for `[n] IMPLICIT OCTET STRING`).
    """
    if check_tag:
        expect(value, OCTET_STRING)
    if not value.constructed:
        if value.content_end - value.content_start > max_len:
            raise ValueTooLarge("value too large")
        return primitive_bytes(buf, value)
    parts: list[bytes] = []
    total = 0
    for chunk in children(buf, value):
        pieces = [chunk]
        if chunk.constructed:
            expect(chunk, OCTET_STRING)
            pieces = child_list(buf, chunk)
        for piece in pieces:
            expect(piece, OCTET_STRING, constructed=False)
            total += piece.content_end - piece.content_start
            if total > max_len:
                raise ValueTooLarge("value too large")
            parts.append(primitive_bytes(buf, piece))
    return b"".join(parts)


def explicit(buf: bytes, value: Tlv, number: int) -> Tlv:
    """The single value inside an `[number] EXPLICIT` wrapper."""
    expect(value, number, CONTEXT, constructed=True)
    inner = child_list(buf, value, max_count=1)
    if len(inner) != 1:
        raise DerError("unexpected structure")
    return inner[0]


def read_bmp_string(buf: bytes, value: Tlv, max_chars: int = 1024) -> str:
    expect(value, BMP_STRING, constructed=False)
    body = primitive_bytes(buf, value)[: 2 * max_chars]
    return body.decode("utf-16-be", "replace")
