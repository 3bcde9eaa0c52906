"""Listing 100,000 files: the first page against a page deep in the list.

`ListSecureFiles` pages by display name with a keyset cursor in the page token, so a page
near the end should cost what the first one does. Uploading 100,000 files through the API
would take the bench most of an hour, so the rows are inserted into storage's database
directly (one project of their own, `bench-list`, blob keys that point nowhere: listing
never reads content) and deleted afterwards. The project is created through authz like any
other; the bench's admin sees every file through its project role (one VIEW decision per page).

The deep page is reached honestly: the list is walked once with the largest page size, and
the token that the server handed out for the last page is kept (tokens carry the cursor,
not the page size). Then first and deep pages of 100 are fetched alternately.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from securefiles.common.db import write_transaction
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.bench.cpu import CpuTally, service_pids
from tests.bench.report import Figure, Target
from tests.bench.rotation import storage_engine
from tests.bench.secure_path import bearer
from tests.conftest import LocalSystem
from tests.file_rows import FileRow, delete_project_rows, insert_file_rows

PROJECT = "bench-list"
INSERT_BATCH = 5000
WALK_PAGE = 1000
PAGE = 100
DEEP_TARGET = Target("<=", 2.0)


@dataclass(frozen=True)
class Listing:
    files: int
    seed_seconds: float
    walk_seconds: float
    pages_walked: int
    first: list[float]  # seconds per first-page call
    deep: list[float]  # seconds per deep-page call
    deep_first_name: str  # the first name on the deep page, to show how deep it is
    first_cpu: CpuTally
    deep_cpu: CpuTally


def seed(system: LocalSystem, count: int) -> float:
    """`count` file rows in project PROJECT named list-000000 …; seconds taken."""
    started = time.perf_counter()
    engine = storage_engine(system)
    try:
        for offset in range(0, count, INSERT_BATCH):
            with write_transaction(engine) as conn:
                insert_file_rows(conn, PROJECT, [FileRow(str(uuid.uuid4()), f"list-{offset + i:06d}.p12")
                                                 for i in range(min(INSERT_BATCH, count - offset))])
    finally:
        engine.dispose()
    return time.perf_counter() - started


def remove(system: LocalSystem) -> None:
    engine = storage_engine(system)
    try:
        delete_project_rows(engine, PROJECT)
    finally:
        engine.dispose()


def _list(stub: storage_pb2_grpc.SecureFileServiceStub, token: str, page_size: int,
          page_token: str = "") -> storage_pb2.ListSecureFilesResponse:
    return stub.ListSecureFiles(storage_pb2.ListSecureFilesRequest(
        parent=f"projects/{PROJECT}", page_size=page_size, page_token=page_token), metadata=bearer(token), timeout=60)


def measure(system: LocalSystem, stub: storage_pb2_grpc.SecureFileServiceStub, count: int, samples: int,
            progress: Callable[[str], None]) -> Listing:
    admin = system.client()
    try:
        admin.create_project(PROJECT, "eu")
    finally:
        admin.close()
    token = system.admin_token
    try:
        seeded = seed(system, count)
        progress(f"{count:,} file rows inserted in {seeded:.1f}s; walking the list {WALK_PAGE} at a time")
        started = time.perf_counter()
        page_token, pages, listed = "", 0, 0
        while True:
            response = _list(stub, token, WALK_PAGE, page_token)
            pages += 1
            listed += len(response.secure_files)
            if not response.next_page_token:
                break
            page_token = response.next_page_token
        walk = time.perf_counter() - started
        if listed != count:
            raise RuntimeError(f"listing walked {listed} files, expected {count}")
        deep_token = page_token  # the cursor the server handed out for the last page of the walk
        deep_first = _list(stub, token, PAGE, deep_token).secure_files[0].display_name
        first, deep = [], []
        pids = service_pids(system.pid, ("storage", "authz"))
        first_cpu, deep_cpu = CpuTally(pids), CpuTally(pids)
        for index in range(samples + 3):
            for token_, into, tally in (("", first, first_cpu), (deep_token, deep, deep_cpu)):
                with tally.measure() if index >= 3 else contextlib.nullcontext():
                    began = time.perf_counter()
                    response = _list(stub, token, PAGE, token_)
                    seconds = time.perf_counter() - began
                if len(response.secure_files) != PAGE:
                    raise RuntimeError(f"a page of {len(response.secure_files)} files, expected {PAGE}")
                if index >= 3:
                    into.append(seconds)
        return Listing(count, seeded, walk, pages, first, deep, deep_first, first_cpu, deep_cpu)
    finally:
        remove(system)


def figures(r: Listing) -> list[Figure]:
    ms = 1000
    first, deep = statistics.median(r.first) * ms, statistics.median(r.deep) * ms
    return [
        Figure(f"list {r.files:,} files: first page of {PAGE}", first, "ms",
               spread=f"median of {len(r.first)}, {min(r.first) * ms:.1f}-{max(r.first) * ms:.1f}"),
        Figure(f"list {r.files:,} files: deep page of {PAGE}", deep, "ms",
               spread=f"median of {len(r.deep)}, {min(r.deep) * ms:.1f}-{max(r.deep) * ms:.1f}; "
                      f"starts at {r.deep_first_name}"),
        Figure("list: deep page / first page", deep / first, "x", target=DEEP_TARGET,
               spread="medians; keyset cursor in the page token"),
        r.first_cpu.figure(f"list: CPU per first page of {PAGE}"),
        r.deep_cpu.figure(f"list: CPU per deep page of {PAGE}"),
        Figure(f"list: whole walk, pages of {WALK_PAGE}", r.walk_seconds, "s", detail=True,
               spread=f"{r.pages_walked} pages; rows seeded in {r.seed_seconds:.1f}s"),
    ]
