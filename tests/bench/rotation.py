"""Key rotation: what a rotation costs downloads, and how fast `keys rewrap` moves data keys.

Rewrap never reads ciphertext (it re-wraps each stored data key in kms and swaps the row),
so its bench does not upload 10,000 files: it asks kms for 10,000 data keys as storage
does on upload (GenerateDataKey with storage's identity and the same encryption context),
and inserts matching `secure_files`/`file_versions` rows into storage's database under a
project of its own, with blob keys that point nowhere. Then `keys rotate` and a timed
`keys rewrap` (the client API the CLI calls), whose per-version counts before and after
are checked against the database.
"""

from __future__ import annotations

import collections
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from sqlalchemy import Engine, func, select

from securefiles.client import SecureFilesClient
from securefiles.common.db import make_engine, write_transaction
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.adapters.sql_files import file_versions, secure_files
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import machine, secure_path, service_logs
from tests.bench.cpu import CpuTally, service_pids
from tests.bench.report import Figure, Target
from tests.bench.scenarios import timed
from tests.bench.secure_path import SMALL_BYTES, SecureFixture
from tests.conftest import LocalSystem
from tests.file_rows import FileRow, delete_project_rows, insert_file_rows

REWRAP_PROJECT = "bench-rewrap"  # nothing else uses it; its rows are deleted afterwards
REGION = "eu"
KEY_RING = f"regions/{REGION}"
REWRAP_TARGET = Target(">=", 5000)
GENERATE_WINDOW = 32  # GenerateDataKey calls in flight while seeding
INSERT_BATCH = 1000


# -- 2: 4 KB download latency right before and right after a rotation --------------------


@dataclass
class RotationLatency:
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    first_after: list[float] = field(default_factory=list)  # the first download after each rotate
    rotate: list[float] = field(default_factory=list)  # seconds each rotate call took
    round_deltas: list[float] = field(default_factory=list)  # p50 after - p50 before, per round (s)
    cpu: CpuTally = field(default_factory=lambda: CpuTally({}))  # per download, before and after


def rotation_latency(stub: storage_pb2_grpc.SecureFileServiceStub, fixture: SecureFixture, samples: int,
                     rounds: int, warmup: int = 20) -> RotationLatency:
    """`rounds` times: `samples` sequential 4 KB downloads, `keys rotate`, `samples` more at once."""
    resource = fixture.resource(fixture.small_name)

    def download() -> float:
        return timed(secure_path.download, stub, resource, fixture.job_token, expected=SMALL_BYTES,
                     what="secure 4 KB")

    for _ in range(warmup):
        download()
    result = RotationLatency(cpu=CpuTally(service_pids(fixture.system.pid)))

    def measured() -> float:
        with result.cpu.measure():
            return download()

    for index in range(rounds):
        before = [measured() for _ in range(samples)]
        started = time.perf_counter()
        fixture.admin.rotate_key(REGION, f"bench: rotation latency, round {index + 1}")
        result.rotate.append(time.perf_counter() - started)
        after = [measured() for _ in range(samples)]
        result.before += before
        result.after += after
        result.first_after.append(after[0])
        result.round_deltas.append(statistics.median(after) - statistics.median(before))
    return result


def rotation_figures(r: RotationLatency, samples: int) -> list[Figure]:
    ms = 1000
    before, after = statistics.median(r.before) * ms, statistics.median(r.after) * ms
    rounds = len(r.round_deltas)
    deltas = ", ".join(f"{d * ms:+.2f}" for d in r.round_deltas)
    firsts = ", ".join(f"{s * ms:.1f}" for s in r.first_after)
    return [
        Figure("4 KB download p50 just before rotate", before, "ms",
               spread=f"{rounds} round(s) x {samples} sequential downloads"),
        Figure("4 KB download p50 right after rotate", after, "ms",
               spread=f"{rounds} round(s) x {samples}, starting as the rotate returns"),
        Figure("added p50 after a rotation", after - before, "ms",
               spread=f"per round {deltas} ms"),
        Figure("rotation: first download after rotate", statistics.median(r.first_after) * ms, "ms",
               spread=f"median of {rounds}: {firsts} ms", detail=True),
        Figure("rotation: keys rotate call", statistics.median(r.rotate) * ms, "ms",
               spread=f"median of {rounds} RotateKey calls (client API)", detail=True),
        r.cpu.figure("rotation: CPU per 4 KB download around rotations"),
    ]


# -- 1: rewrap throughput ----------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    count: int
    seconds: float  # kms GenerateDataKey calls, all of them
    insert_seconds: float


def _generate_requests(count: int) -> Iterator[tuple[str, kms_pb2.GenerateDataKeyRequest]]:
    for _ in range(count):
        file_id = str(uuid.uuid4())
        yield file_id, kms_pb2.GenerateDataKeyRequest(name=KEY_RING, encryption_context={
            "project": REWRAP_PROJECT, "secure_file_id": file_id, "version": "1"})


def storage_engine(system: LocalSystem) -> Engine:
    """An engine on storage's database, configured as storage configures its own (WAL, BEGIN IMMEDIATE)."""
    plain = system.engine("storage")
    url = plain.url.render_as_string(hide_password=False)
    plain.dispose()
    return make_engine(url)


def seed_data_keys(system: LocalSystem, count: int, progress: Callable[[str], None]) -> Seeded:
    """`count` data keys from kms (as storage), stored as version 1 of as many files."""
    wrapped: list[tuple[str, bytes, int]] = []
    started = time.perf_counter()
    with system.channel("kms", identity="storage", region=REGION) as channel:
        stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
        pending: collections.deque[tuple[str, grpc.Future]] = collections.deque()

        def collect() -> None:
            file_id, future = pending.popleft()
            response = future.result()
            wrapped.append((file_id, response.wrapped_key, int(response.key_version.rsplit("/", 1)[1])))

        for file_id, request in _generate_requests(count):
            pending.append((file_id, stub.GenerateDataKey.future(request, timeout=60)))
            if len(pending) >= GENERATE_WINDOW:
                collect()
        while pending:
            collect()
    generated = time.perf_counter() - started
    progress(f"{count} data keys from kms in {generated:.1f}s ({count / generated:.0f}/s); inserting rows")

    started = time.perf_counter()
    engine = storage_engine(system)
    try:
        for offset in range(0, count, INSERT_BATCH):
            with write_transaction(engine) as conn:
                insert_file_rows(conn, REWRAP_PROJECT, [
                    FileRow(file_id, f"rewrap-{offset + i:06d}", key, REGION, version)
                    for i, (file_id, key, version) in enumerate(wrapped[offset:offset + INSERT_BATCH])])
    finally:
        engine.dispose()
    return Seeded(count, generated, time.perf_counter() - started)


def project_counts(system: LocalSystem, project: str) -> dict[int, int]:
    """{key version: data keys of `project`}, straight from storage's database."""
    engine = storage_engine(system)
    v, f = file_versions, secure_files
    query = (select(v.c.key_version, func.count()).select_from(v.join(f, f.c.file_id == v.c.file_id))
             .where(f.c.project == project, v.c.key_region == REGION).group_by(v.c.key_version))
    try:
        with engine.connect() as conn:
            return {int(version): int(n) for version, n in conn.execute(query)}
    finally:
        engine.dispose()


def remove_seeded(system: LocalSystem) -> None:
    engine = storage_engine(system)
    try:
        delete_project_rows(engine, REWRAP_PROJECT)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Rewrap:
    seeded: Seeded
    seconds: float  # the RewrapDataKeys call, client side
    rewrapped: int
    failed: int
    before: dict[str, int]  # all data keys per key version, as the RPC reported them
    after: dict[str, int]
    project_before: dict[int, int]  # the seeded project's keys per version, from the database
    project_after: dict[int, int]
    primary: int
    server: dict[tuple[str, str], list[float]]  # (service, method) -> server ms, from the logs
    cpu: dict[str, float]  # service -> CPU seconds it used during the rewrap


def _service_cpu(system: LocalSystem) -> dict[str, float]:
    """CPU seconds used so far by storage and kms (whose pids `up` writes to its run directory)."""
    used = {}
    for service in ("storage", f"kms-{REGION}"):
        try:
            used[service] = machine.cpu_seconds([system.pid(service)])
        except (OSError, ValueError, AttributeError):  # an `up` that writes no pid files
            continue
    return used


def _short(counts: dict[str, int]) -> str:
    return ", ".join(f"v{name.rsplit('/', 1)[1]} {n}" for name, n in counts.items()) or "none"


def rewrap_throughput(system: LocalSystem, admin: SecureFilesClient, keys: int,
                      progress: Callable[[str], None]) -> Rewrap:
    try:
        seeded = seed_data_keys(system, keys, progress)
        primary = admin.rotate_key(REGION, "bench: rewrap throughput").version
        project_before = project_counts(system, REWRAP_PROJECT)
        progress(f"rotated to v{primary}; rewrapping (data keys per version: {admin.count_data_keys(REGION)})")
        logs = service_logs.offsets(system)
        cpu_before = _service_cpu(system)
        started = time.perf_counter()
        report = admin.rewrap_data_keys(REGION)
        seconds = time.perf_counter() - started
        cpu_after = _service_cpu(system)
        cpu = {name: cpu_after[name] - used for name, used in cpu_before.items() if name in cpu_after}
        server = service_logs.durations(system, logs)
        project_after = project_counts(system, REWRAP_PROJECT)
    finally:
        remove_seeded(system)
    before = {c.key_version: c.data_keys for c in report.before}
    after = {c.key_version: c.data_keys for c in report.after}
    result = Rewrap(seeded, seconds, report.rewrapped, report.failed, before, after, project_before, project_after,
                    primary, server, cpu)
    _check(result)
    return result


def _check(r: Rewrap) -> None:
    """The seeded keys all moved to the new primary, and the RPC's counts add up."""
    moved = r.project_after.get(r.primary, 0) == r.seeded.count and sum(r.project_after.values()) == r.seeded.count
    if not moved or r.failed or sum(r.before.values()) != sum(r.after.values()):
        raise RuntimeError(f"rewrap did not move every data key: rewrapped {r.rewrapped}, failed {r.failed}, "
                           f"bench project {r.project_before} -> {r.project_after}, all {r.before} -> {r.after}")


def rewrap_figures(r: Rewrap) -> list[Figure]:
    figures = [
        Figure(f"rewrap throughput ({r.seeded.count:,} seeded data keys)", r.rewrapped / r.seconds, "keys/s",
               target=REWRAP_TARGET,
               spread=f"all {r.rewrapped:,} keys in {r.seconds:.1f}s (client API RewrapDataKeys), {r.failed} failed"),
        Figure("rewrap: data keys per version before -> after", r.rewrapped, "keys", detail=True,
               spread=f"{_short(r.before)} -> {_short(r.after)}"),
    ]
    storage_ms = r.server.get(("storage", "RewrapDataKeys"), [])
    if storage_ms:
        figures.append(Figure("rewrap: storage RewrapDataKeys (server)", storage_ms[0] / 1000, "s", detail=True,
                              spread="one call, from the service log"))
    kms_ms = r.server.get((f"kms-{REGION}", "ReEncryptDataKey"), [])
    if kms_ms:
        total = sum(kms_ms) / 1000
        figures.append(Figure("rewrap: kms ReEncryptDataKey per data key (server)", statistics.median(kms_ms), "ms",
                              detail=True, spread=f"p50 of {len(kms_ms):,} calls; their sum {total:.1f}s = "
                              f"{total / r.seconds:.0%} of the rewrap"))
    batches = r.server.get((f"kms-{REGION}", "BatchReEncryptDataKeys"), [])
    if batches:
        figures.append(Figure("rewrap: kms BatchReEncryptDataKeys per call (server)", statistics.median(batches),
                              "ms", detail=True, spread=f"p50 of {len(batches):,} calls of up to 500 keys; their sum "
                              f"{sum(batches) / 1000:.2f}s"))
    if r.cpu:
        per_key = {name: seconds / max(r.rewrapped, 1) * 1000 for name, seconds in r.cpu.items()}
        figures.append(Figure("rewrap: CPU per data key, storage + kms", sum(per_key.values()), "ms", detail=True,
                              spread=", ".join(f"{name} {ms:.2f}" for name, ms in per_key.items())
                              + " (process CPU time over the rewrap)"))
    figures.append(Figure("rewrap: seeding, kms GenerateDataKey (as storage)", r.seeded.count / r.seeded.seconds,
                          "keys/s", detail=True, spread=f"{r.seeded.count:,} calls, {GENERATE_WINDOW} in flight, "
                          f"{r.seeded.seconds:.1f}s; rows inserted in {r.seeded.insert_seconds:.1f}s"))
    return figures
