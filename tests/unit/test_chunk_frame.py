"""Download chunks go out pre-encoded; they must be exactly what protobuf would send."""

from __future__ import annotations

import os

import pytest

from securefiles.storage.api.servicer import chunk_frame
from securefiles.storage.v1 import storage_pb2


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024 - 1, 1024 * 1024])
def test_chunk_frame_is_the_serialized_response(size: int) -> None:
    chunk = os.urandom(size)
    expected = storage_pb2.DownloadSecureFileResponse(chunk=chunk).SerializeToString()
    frame = chunk_frame(chunk)
    assert frame == expected
    parsed = storage_pb2.DownloadSecureFileResponse.FromString(frame)
    assert parsed.WhichOneof("payload") == "chunk" and parsed.chunk == chunk
