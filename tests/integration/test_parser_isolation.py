"""Metadata parsing runs in separate processes: a parse that outlives its deadline is killed (not
left running, as parser threads were), other requests go on meanwhile, and when every parser is
busy an upload is stored without metadata and says so.

A parser "stuck in a crafted file" is made with SIGSTOP: after the work budget no real file keeps a
parser busy for long, and a stopped process is stuck for certain. Whether the upload's plaintext
has reached the stuck parser is read from the parser's input pipe (FIONREAD), not guessed from time.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from securefiles.storage.v1 import storage_pb2
from tests.conftest import LocalSystem, job_token_for, unique
from tests.unit.test_file_metadata_samples import fixed_cert, pem

PARSE_TIMEOUT = 10  # seconds a stuck parse holds its upload: long enough that the ordering below is certain
SYSTEM_ENV = {"SECUREFILES_PARSER_WORKERS": "1", "SECUREFILES_PARSER_QUEUE": "1",
              "SECUREFILES_PARSE_TIMEOUT_SECONDS": str(PARSE_TIMEOUT)}


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    base = tmp_path_factory.mktemp("parsers")
    system = LocalSystem(state_dir=base / "state", home=base / "home", extra_env=dict(SYSTEM_ENV))
    system.start()
    yield system
    system.stop()
    system.drop_databases()


def _parsers(system: LocalSystem) -> set[int]:
    """Pids of storage's metadata parser processes."""
    storage = system.pid("storage")
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == storage and b"parser_worker" in cmdline:
            found.add(int(entry.name))
    return found


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _parsed(created: storage_pb2.SecureFile) -> dict:
    """The typed metadata that is set, as {"type": its member, its facts by field name}."""
    kind = created.WhichOneof("file_metadata")
    return {"type": kind, **json_format.MessageToDict(getattr(created, kind), preserving_proto_field_name=True)}


def _one_parser(system: LocalSystem) -> int:
    (pid,) = _wait_for(lambda: _parsers(system) if len(_parsers(system)) == 1 else None, "one parser")
    return pid


def _ready_parser(system: LocalSystem) -> int:
    """The one parser, once it has parsed an upload (so it is past its start and waits for work)."""
    with system.client() as admin:
        parsed = admin.upload_file(pem(fixed_cert()), name=unique("ready") + ".pem")
    assert _parsed(parsed)["type"] == "x509" and "parse_error" not in _parsed(parsed)
    return _one_parser(system)


def _pending_input(pid: int) -> int:
    """Bytes waiting in a process's stdin pipe (the parse requests it has not read)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class _Upload(threading.Thread):
    """An upload in the background; `finished` is its place in the order of completions."""

    order = itertools.count()

    def __init__(self, system: LocalSystem, content: bytes, name: str) -> None:
        super().__init__(daemon=True)
        self.system, self.content, self.name = system, content, name
        self.metadata: dict | None = None
        self.finished = -1

    def run(self) -> None:
        with self.system.client() as admin:
            created = admin.upload_file(self.content, name=self.name)
        self.metadata = _parsed(created)
        self.finished = next(self.order)


def test_a_stuck_parse_is_killed_at_its_deadline_while_other_requests_go_on(isolated: LocalSystem) -> None:
    system = isolated
    other = unique("other") + ".bin"
    with system.client() as admin:
        admin.upload_file(b"unrelated secure file", name=other)
    token = job_token_for(system, other)
    stuck = _ready_parser(system)
    os.kill(stuck, signal.SIGSTOP)
    try:
        upload = _Upload(system, pem(fixed_cert()), unique("cert") + ".pem")
        upload.start()
        _wait_for(lambda: _pending_input(stuck), "the upload's plaintext in the stuck parser's input")
        with system.client(token=token) as job:
            downloaded = job.download_secure_file(other, system.state_dir.parent / unique("dest"))
        downloaded_at = next(_Upload.order)
        with system.client() as admin:
            listed = [f.display_name for f in admin.list_files(other)]
        upload.join(PARSE_TIMEOUT * 6)
    finally:
        if _alive(stuck):
            os.kill(stuck, signal.SIGCONT)
    assert downloaded.path.read_bytes() == b"unrelated secure file" and listed == [other]
    assert downloaded_at < upload.finished, "the download waited for the stuck parse"
    assert upload.metadata == {"type": "unknown", "parse_error": "parsing timed out"}
    _wait_for(lambda: not _alive(stuck), "the stuck parser to be killed")
    assert _ready_parser(system) != stuck  # replaced, and parsing again


def test_with_every_parser_busy_and_the_queue_full_a_file_is_stored_without_metadata(isolated: LocalSystem) -> None:
    system = isolated
    stuck = _ready_parser(system)
    os.kill(stuck, signal.SIGSTOP)
    uploads = []
    try:
        first = _Upload(system, pem(fixed_cert()), unique("first") + ".pem")
        first.start()
        _wait_for(lambda: _pending_input(stuck), "the first upload in the stuck parser")
        uploads = [_Upload(system, pem(fixed_cert()), unique("more") + ".pem") for _ in range(2)]
        for upload in uploads:
            upload.start()
        for upload in [first, *uploads]:
            upload.join(PARSE_TIMEOUT * 6)
    finally:
        if _alive(stuck):
            os.kill(stuck, signal.SIGCONT)
    busy = {"type": "unknown", "parse_skipped": "the metadata parser was busy; stored without metadata"}
    # One of the two found the queue (one place) taken and did not wait at all; the other waited
    # in the queue (and was parsed if the replacement parser was ready before its deadline).
    assert any(u.metadata == busy and u.finished < first.finished for u in uploads)
    assert all(u.metadata == busy or (u.metadata or {}).get("type") == "x509" for u in uploads)
    assert first.metadata == {"type": "unknown", "parse_error": "parsing timed out"}
    with system.client() as admin:
        stored = {f.display_name: f.sha256 for f in admin.list_files()}
    assert all(u.name in stored for u in [first, *uploads])


def test_a_parser_that_died_while_idle_is_replaced_before_it_is_needed(isolated: LocalSystem) -> None:
    system = isolated
    dead = _ready_parser(system)
    os.kill(dead, signal.SIGKILL)
    _wait_for(lambda: not _alive(dead), "the parser to exit")
    with system.client() as admin:
        parsed = admin.upload_file(pem(fixed_cert()), name=unique("after-death") + ".pem")
    assert _parsed(parsed)["type"] == "x509" and "parse_error" not in _parsed(parsed)
    assert _one_parser(system) != dead
