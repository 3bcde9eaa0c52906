"""What storage reports for monitoring: a metadata parse that runs out of time (the in-process
parser here; the process pool reports the same: tests/integration/test_metrics.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from securefiles.storage.domain import content


class RecordingEvents:
    def __init__(self) -> None:
        self.parse_timeouts = 0

    def metadata_parse_timed_out(self) -> None:
        self.parse_timeouts += 1

    def data_keys_rewrapped(self, region: str, rewrapped: int, failed: int) -> None:
        raise AssertionError("not expected here")


def test_a_parse_that_runs_out_of_time_is_reported_and_kept_as_a_parse_error(monkeypatch) -> None:
    release = threading.Event()

    def stuck_parser(name: str, plaintext: bytes, password: bytes | None) -> object:
        release.wait(10)  # stands in for a hostile file; released as soon as the timeout fired
        raise AssertionError("the timeout should have fired first")

    monkeypatch.setattr(content, "parse_file_metadata", stuck_parser)
    monkeypatch.setattr(content, "PARSE_TIMEOUT_SECONDS", 0.05)
    events = RecordingEvents()

    async def parse() -> content.FileMetadata:
        try:
            return await content.ThreadParser(events).parse("cert.pem", b"-----BEGIN", None)
        finally:
            release.set()  # before asyncio.run waits for the parser's thread

    metadata = asyncio.run(parse())
    assert events.parse_timeouts == 1
    assert metadata.metadata == {"type": "unknown", "parse_error": "parsing timed out"}


@pytest.mark.parametrize("events", [None, RecordingEvents()])
def test_a_parse_in_time_reports_nothing(events: RecordingEvents | None) -> None:
    metadata = asyncio.run(content.ThreadParser(events).parse("notes.txt", b"plain text", None))
    assert "parse_error" not in metadata.metadata
    assert events is None or events.parse_timeouts == 0
