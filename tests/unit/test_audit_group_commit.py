"""Group commit of the audit log: appends that arrive together share one transaction, and each
caller is answered only once its own entry is durable."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from securefiles.common.audit import ALLOW, AuditLog, metadata
from securefiles.common.db import make_engine


@pytest.fixture
def database(tmp_path: Path) -> Path:
    make_engine(f"sqlite:///{tmp_path / 'audit.db'}", metadata).dispose()
    return tmp_path / "audit.db"


def _log(database: Path, **options: int) -> AuditLog:
    """The audit log as the services make it (group commit unless `max_batch=1`)."""
    return AuditLog(make_engine(f"sqlite:///{database}", busy_timeout=30), "storage", key=b"k" * 32, **options)


def test_appends_that_queue_up_share_one_commit_and_each_waits_for_its_own(database: Path) -> None:
    log = _log(database)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")  # the first append's commit waits for this lock; the rest queue behind it
    first = log.submit("user:a", "Upload", "projects/p/secureFiles/0", ALLOW)
    with ThreadPoolExecutor(8) as pool:
        queued = list(pool.map(lambda i: log.submit("user:a", "Upload", f"projects/p/secureFiles/{i}", ALLOW),
                               range(1, 50)))
    assert not first.done() and not any(f.done() for f in queued)  # nobody is answered before the commit
    conn.execute("ROLLBACK")
    conn.close()
    entries = [first.result(timeout=30), *(f.result(timeout=30) for f in queued)]
    assert sorted(e.sequence for e in entries) == list(range(1, 51))
    # The first alone, then the 49 that queued meanwhile in one (or all 50 together, when the
    # writer had not yet taken the first before the others queued): never one per entry.
    assert log.transactions <= 2
    assert log.verify().intact


def test_one_entry_the_database_refuses_fails_only_its_own_caller(database: Path) -> None:
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.resource = 'refused' "
                 "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    log = _log(database)
    conn.execute("BEGIN EXCLUSIVE")
    futures = [log.submit("user:a", "Update", resource, ALLOW) for resource in ("a", "b", "refused", "c", "d")]
    conn.execute("ROLLBACK")
    conn.close()
    with pytest.raises(Exception, match="refused"):
        futures[2].result(timeout=30)
    written = [f.result(timeout=30) for i, f in enumerate(futures) if i != 2]
    assert [e.resource for e in written] == ["a", "b", "c", "d"]
    assert log.verify().intact and log.verify().checked == 4


def test_a_commit_of_one_is_what_max_batch_one_gives(database: Path) -> None:
    log = _log(database, max_batch=1)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    futures = [log.submit("user:a", "Update", str(i), ALLOW) for i in range(10)]
    conn.execute("ROLLBACK")
    conn.close()
    assert [f.result(timeout=30).sequence for f in futures] == list(range(1, 11))
    assert log.transactions == 10


def test_closing_writes_what_is_queued_then_stops_the_writer_and_refuses_more(database: Path) -> None:
    before = set(threading.enumerate())  # other tests' logs keep their writers
    log = _log(database)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")  # the writer waits; these queue behind it
    queued = [log.submit("user:a", "Upload", f"projects/p/secureFiles/{i}", ALLOW) for i in range(5)]
    writers = [t for t in threading.enumerate() if t.name == "audit-storage" and t not in before]
    log.close()
    conn.execute("ROLLBACK")
    conn.close()
    assert sorted(f.result(timeout=30).sequence for f in queued) == [1, 2, 3, 4, 5]
    for writer in writers:
        writer.join(timeout=30)
    assert writers and not any(w.is_alive() for w in writers)
    with pytest.raises(RuntimeError, match="closed"):
        log.submit("user:a", "Upload", "projects/p/secureFiles/late", ALLOW).result(timeout=30)
    assert log.verify().intact and log.verify().checked == 5
