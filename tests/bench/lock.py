"""Storage's health check while its database is locked for 10 s by someone else.

Someone (here: the bench, `BEGIN EXCLUSIVE` on storage's SQLite database) holds the write lock
for `seconds`; meanwhile a few changes (renames) wait for it, since their audit entries cannot
be appended, and a health check goes to storage every 20 ms. Reported: how long the health
checks took while the lock was held (p50, p99, max), and that the waiting changes went through
once it was released.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.client import SecureFilesError
from securefiles.client.config import load_config
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.bench.cpu import CpuTally, service_pids
from tests.bench.report import Figure, Target, percentile
from tests.bench.secure_path import SecureFixture, bearer, client_channel, unique

HEALTH_P99_TARGET = Target("<=", 50)


@dataclass(frozen=True)
class LockedHealth:
    seconds: float
    checks: list[float]  # seconds each health check asked while the lock was held took
    writers: int
    writers_done: int  # changes that went through after the lock was released
    cpu: CpuTally


def _hold(engine_url: str, seconds: float, locked: threading.Event) -> None:
    import sqlite3

    conn = sqlite3.connect(engine_url, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)  # the lock's length is what is measured under
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def measure(fixture: SecureFixture, seconds: float = 10.0, interval: float = 0.02, writers: int = 4) -> LockedHealth:
    system = fixture.system
    names = [unique("bench-locked") for _ in range(writers)]
    for name in names:
        fixture.admin.upload_file(b"renamed once the lock is gone", name=name)
    target = load_config(system.env()).storage
    database = str(system.state_dir / "data" / "storage.db")
    locked = threading.Event()
    holder = threading.Thread(target=_hold, args=(database, seconds, locked))
    checks: list[float] = []
    tally = CpuTally(service_pids(system.pid, ("storage",)))
    with client_channel(system, target) as channel, ThreadPoolExecutor(writers) as pool:
        files = storage_pb2_grpc.SecureFileServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def rename(name: str) -> bool:
            request = storage_pb2.UpdateSecureFileRequest(secure_file=storage_pb2.SecureFile(
                name=fixture.resource(name), display_name=f"{name}-renamed"))
            try:
                files.UpdateSecureFile(request, metadata=bearer(system.admin_token), timeout=seconds + 30)
            except grpc.RpcError:
                return False
            return True

        holder.start()
        if not locked.wait(10):
            raise RuntimeError("could not lock storage's database")
        waiting = [pool.submit(rename, name) for name in names]
        while holder.is_alive():  # every check asked while the lock is held counts, however long it takes
            with tally.measure():
                began = time.perf_counter()
                health.Check(health_pb2.HealthCheckRequest(), timeout=seconds + 30)
                checks.append(time.perf_counter() - began)
            time.sleep(interval)
        holder.join()
        done = sum(1 for future in waiting if future.result())
    for name in names:
        for current in (f"{name}-renamed", name):
            try:
                fixture.admin.delete_file(current)
                break
            except SecureFilesError:
                continue
    return LockedHealth(seconds, checks, writers, done, tally)


def figures(r: LockedHealth) -> list[Figure]:
    ms = [c * 1000 for c in r.checks]
    p99 = percentile(ms, 99) if len(ms) > 1 else (ms[0] if ms else float("nan"))
    return [
        Figure(f"storage health check while its database is locked for {r.seconds:g} s, p99", p99, "ms",
               target=HEALTH_P99_TARGET,
               spread=f"{len(ms)} checks every 20 ms; p50 {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms; "
                      f"{r.writers} changes waited for the lock, {r.writers_done} went through once it was gone"),
        r.cpu.figure("locked database: storage CPU per health check"),
    ]
