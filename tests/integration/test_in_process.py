"""The in-process system (tests/in_process.py) behaves as `securefiles up` does for a client, and a
stopped one leaves nothing running in the test process: a second one starts after it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prometheus_client import REGISTRY

from securefiles.common.metrics import _scrape_time
from tests.conftest import job_token_for, unique
from tests.in_process import InProcessSystem


def _threads_left(before: set[threading.Thread], timeout: float = 15.0) -> list[str]:
    """Threads started since `before` that are still alive once `timeout` has passed (pools that
    were shut down without waiting end on their own)."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_a_stopped_system_leaves_no_thread_collector_or_port_file_and_another_starts(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    for round_ in ("first", "second"):
        system = InProcessSystem(state_dir=tmp_path / round_ / "state", home=tmp_path / round_ / "home")
        system.start()
        try:
            name = unique("cert") + ".bin"
            with system.client() as admin:
                admin.upload_file(b"in process " + round_.encode(), name=name)
            token = job_token_for(system, name)
            with system.client(token=token) as job:
                downloaded = job.download_secure_file(name, tmp_path / round_ / "dest")
            assert downloaded.path.read_bytes() == b"in process " + round_.encode()
            status = system.cli("status", "--output", "json")
            assert status.code == 0, status.stderr
            assert any(t.name.startswith("audit-") for t in threading.enumerate())  # the writers ran
        finally:
            system.stop()
            system.drop_databases()
        assert _threads_left(before) == []
        assert not _scrape_time and not any(type(c).__name__ == "_ScrapeTimeGauges"
                                            for c in list(REGISTRY._collector_to_names))
        assert not list((tmp_path / round_ / "state" / "run").iterdir())
