"""PEM blocks (`-----BEGIN LABEL-----` … `-----END LABEL-----`), found in one forward scan."""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

_BEGIN = b"-----BEGIN "
_END = b"-----END "
_DASHES = b"-----"
MAX_LABEL_BYTES = 64
MAX_HEADERS = 16


@dataclass(frozen=True)
class PemBlock:
    label: str
    body: bytes  # the text between the BEGIN and END lines, headers included
    complete: bool  # False when the END line is missing (truncated file)
    headers: dict[str, str] = field(default_factory=dict)

    def decode(self) -> bytes:
        """The base64 payload; RFC 1421 headers (`Proc-Type: …`) are skipped."""
        text = self.body.replace(b"\r\n", b"\n").lstrip(b"\r\n")
        if b":" in text.split(b"\n", 1)[0]:
            _, sep, rest = text.partition(b"\n\n")
            text = rest if sep else b""
        try:
            return binascii.a2b_base64(text)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("invalid base64") from exc


def _headers(body: bytes) -> dict[str, str]:
    lines = body.replace(b"\r\n", b"\n").lstrip(b"\n").split(b"\n", MAX_HEADERS + 1)
    headers: dict[str, str] = {}
    for line in lines[:MAX_HEADERS]:
        name, sep, value = line.partition(b":")
        if not sep or not line.strip():
            break
        headers[name.strip().decode("ascii", "replace")[:64]] = value.strip().decode("ascii", "replace")[:256]
    return headers


def pem_blocks(data: bytes, max_blocks: int) -> tuple[list[PemBlock], bool]:
    """Up to `max_blocks` blocks and whether more followed. Linear: every search moves forward."""
    blocks: list[PemBlock] = []
    pos = 0
    while True:
        begin = data.find(_BEGIN, pos)
        if begin < 0:
            return blocks, False
        if len(blocks) == max_blocks:
            return blocks, True
        label_start = begin + len(_BEGIN)
        label_end = data.find(_DASHES, label_start, label_start + MAX_LABEL_BYTES + 1)
        if label_end < 0:
            pos = label_start
            continue
        label = data[label_start:label_end].decode("ascii", "replace").strip()
        body_start = label_end + len(_DASHES)
        end = data.find(_END, body_start)
        if end < 0:
            body = data[body_start:]
            blocks.append(PemBlock(label, body, complete=False, headers=_headers(body[:4096])))
            return blocks, False
        body = data[body_start:end]
        blocks.append(PemBlock(label, body, complete=True, headers=_headers(body[:4096])))
        pos = end + len(_END)


def looks_like_pem(data: bytes) -> bool:
    return _BEGIN in data
