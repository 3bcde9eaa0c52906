"""The audit append itself: concurrent callers, one transaction per entry against group commit.

`threads` callers append entries as fast as they are answered (each waits for its own entry to
be durable, as an RPC does), for `seconds`, into a fresh chain on SQLite (the services' settings:
WAL, synchronous=NORMAL) and, if a server is reachable, PostgreSQL (a commit is an fsync of its
WAL). Reported: entries/s, entries per transaction, CPU per entry of this process (the writer
thread and the callers; the PostgreSQL server's backend is not counted).

Standalone: `python -m tests.bench.audit_commit [--threads 64] [--seconds 3]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from securefiles.common.audit import ALLOW, AuditLog, metadata
from securefiles.common.db import make_engine
from tests.bench.report import Figure

BATCHES = (1, 256)


@dataclass(frozen=True)
class Appends:
    database: str
    max_batch: int
    entries: int
    seconds: float
    transactions: int
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds

    @property
    def per_transaction(self) -> float:
        return self.entries / max(self.transactions, 1)


def _append_for(log: AuditLog, threads: int, seconds: float) -> tuple[int, float]:
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def caller(index: int) -> None:
        while time.monotonic() < stop_at:
            log.record("job:projects/bench/pipelines/1/runs/1", "DownloadSecureFile",
                       f"projects/bench/secureFiles/{uuid.uuid4()}", ALLOW, request_id=uuid.uuid4().hex,
                       details={"display_name": "signing.p12", "version": "1", "run": str(index)})
            counts[index] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts), time.perf_counter() - started


def measure(url: str, label: str, threads: int, seconds: float, batches: tuple[int, ...] = BATCHES
            ) -> list[Appends]:
    results = []
    for max_batch in batches:
        engine = make_engine(url, metadata)
        try:
            log = AuditLog(engine, "storage", key=b"bench-audit-key-" * 2, max_batch=max_batch)
            log.record("user:bench", "Warm", "-", ALLOW)
            before, cpu = log.transactions, time.process_time()
            entries, took = _append_for(log, threads, seconds)
            results.append(Appends(label, max_batch, entries, took, log.transactions - before,
                                   time.process_time() - cpu))
        finally:
            engine.dispose()
    return results


def _postgres_database(server: str) -> tuple[str, str]:
    """A fresh database on `server`: (its URL, its name)."""
    name = f"sfbench_audit_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False), name


def _drop(server: str, name: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(threads: int = 64, seconds: float = 3.0, postgres_url: str = "") -> list[Appends]:
    results = []
    for max_batch in BATCHES:  # a fresh database for each
        with tempfile.TemporaryDirectory(prefix="securefiles-bench-audit-") as directory:
            results += measure(f"sqlite:///{Path(directory) / 'audit.db'}", "SQLite", threads, seconds, (max_batch,))
    if postgres_url:
        for max_batch in BATCHES:
            url, name = _postgres_database(postgres_url)
            try:
                results += measure(url, "PostgreSQL", threads, seconds, (max_batch,))
            finally:
                _drop(postgres_url, name)
    return results


def figures(results: list[Appends], threads: int) -> list[Figure]:
    out = []
    for r in results:
        mode = "one transaction per entry" if r.max_batch == 1 else f"group commit (up to {r.max_batch})"
        out.append(Figure(f"audit appends, {threads} callers, {r.database}, {mode}", r.per_second, "entries/s",
                          detail=r.max_batch == 1,
                          spread=f"{r.entries:,} entries in {r.seconds:.1f}s, {r.per_transaction:.1f} per "
                                 f"transaction; CPU {r.cpu_seconds * 1000 / max(r.entries, 1):.3f} ms per entry"))
    return out


def main(argv: list[str] | None = None) -> int:
    from tests.bench import postgres
    from tests.bench.report import table

    parser = argparse.ArgumentParser(prog="python -m tests.bench.audit_commit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    url, why_not = postgres.server_url()
    if not url:
        print(f"PostgreSQL skipped: {why_not}")
    print(table(figures(run(args.threads, args.seconds, url), args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
