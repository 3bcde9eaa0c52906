"""A metadata parser process: `python -m securefiles.storage.adapters.parser_worker`.

Storage starts a few of these (adapters/parser_pool.py) and kills one whose parse outlives its
deadline. It reads requests on stdin and answers on stdout, one at a time, until stdin closes:

    request  = u32 length + JSON {"name", "password": base64 or null} | u32 length + plaintext
    response = u32 length + JSON {"metadata", "expires_at": RFC 3339 or null}
    ready    = the response {"ready": true}, once, after start-up

Only JSON crosses back (never pickle): the parent trusts nothing the parsed file could shape.
The answer is already within the metadata caps, so a response has a small upper bound.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
from typing import BinaryIO

from securefiles.common.core_dumps import refuse_core_dumps
from securefiles.storage.domain.file_metadata import parse_file_metadata
from securefiles.storage.domain.metadata_caps import cap_metadata

NICENESS = 10  # the service's requests come first when the CPUs are busy
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def read_frame(stream: BinaryIO, limit: int) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    if size > limit:
        raise ValueError("frame too large")
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def answer(header: bytes, plaintext: bytes) -> bytes:
    request = json.loads(header)
    password = base64.b64decode(request["password"]) if request.get("password") is not None else None
    parsed = parse_file_metadata(request["name"], plaintext, password)
    expires = parsed.expires_at.isoformat() if parsed.expires_at is not None else None
    return json.dumps({"metadata": cap_metadata(parsed.metadata), "expires_at": expires}).encode()


def main() -> None:
    os.nice(NICENESS)
    refuse_core_dumps()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the protocol stream
    write_frame(stdout, b'{"ready": true}')
    while True:
        header = read_frame(stdin, MAX_REQUEST_BYTES)
        plaintext = read_frame(stdin, MAX_REQUEST_BYTES) if header is not None else None
        if header is None or plaintext is None:
            return
        write_frame(stdout, answer(header, plaintext))


if __name__ == "__main__":
    main()
