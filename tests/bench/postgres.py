"""10 MB upload and download with PostgreSQL (blobs in the database) beside the default system.

A second `securefiles up` runs on PostgreSQL with `--blob-store db` while the default one
(SQLite, blob directory) is still up; secure runs on the two alternate one by one, as the
raw/secure pairs do, so that the VM's drift hits both alike. Its databases are dropped at
the end. The server comes from SECUREFILES_BENCH_DATABASE_URL, SECUREFILES_TEST_DATABASE_URL
or, if it answers within a second, the local development server.
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from securefiles.client.config import load_config
from securefiles.storage.v1 import storage_pb2_grpc
from tests.bench import machine, scenarios, secure_path, service_logs
from tests.bench.cpu import service_pids
from tests.bench.report import Figure, paired_ratio, throughput
from tests.bench.scenarios import Action, Pair, interleave, timed
from tests.bench.secure_path import BIG_BYTES, SecureFixture, client_channel, unique
from tests.conftest import LocalSystem

LOCAL_SERVER = "postgresql+psycopg://securefiles:securefiles@127.0.0.1:5432/postgres"
URL_VARIABLES = ("SECUREFILES_BENCH_DATABASE_URL", "SECUREFILES_TEST_DATABASE_URL")


def server_url() -> tuple[str, str]:
    """(URL of a reachable PostgreSQL server, "") or ("", why there is none)."""
    for variable in URL_VARIABLES:
        if os.environ.get(variable):
            url, origin = os.environ[variable], variable
            break
    else:
        url, origin = LOCAL_SERVER, "the local default"
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1):
            pass
        engine = create_engine(parsed.set(database=parsed.database or "postgres"), connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as error:  # any failure means: no PostgreSQL figures, say why
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return "", f"{parsed.render_as_string(hide_password=True)} ({origin}) not usable: {reason}"
    return url, ""


def _is_local_postgres(pid: int) -> bool:
    """A server in a container reports pids of its own namespace: count only local postgres processes."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def backend_cpu(system: LocalSystem) -> Callable[[], float]:
    """CPU seconds so far of the PostgreSQL backends serving `system`'s databases (a local server only)."""

    def seconds() -> float:
        rows = system.query("storage", "SELECT pid FROM pg_stat_activity WHERE datname LIKE :p",
                            p=system.database_prefix + "%")
        return machine.cpu_seconds([int(pid) for (pid,) in rows if _is_local_postgres(int(pid))])

    return seconds


@dataclass(frozen=True)
class Comparison:
    downloads: Pair  # raw = blob directory, secure = PostgreSQL
    uploads: Pair
    server: dict[str, dict[tuple[str, str], list[float]]]  # store -> (service, method) -> server ms


@contextmanager
def _storage_stub(system: LocalSystem) -> Iterator[storage_pb2_grpc.SecureFileServiceStub]:
    with client_channel(system, load_config(system.env()).storage) as channel:
        yield storage_pb2_grpc.SecureFileServiceStub(channel)


def _download(stub: storage_pb2_grpc.SecureFileServiceStub, fixture: SecureFixture) -> Action:
    resource = fixture.resource(fixture.big_name)
    return lambda: timed(secure_path.download, stub, resource, fixture.job_token, expected=BIG_BYTES,
                         what="secure download")


def _upload(stub: storage_pb2_grpc.SecureFileServiceStub, fixture: SecureFixture, uploaded: list[str]) -> Action:
    def action() -> float:
        uploaded.append(unique("bench-upload"))
        return timed(lambda: secure_path.upload(stub, uploaded[-1], fixture.big_content, fixture.system.admin_token)
                     .size_bytes, expected=BIG_BYTES, what="secure upload")

    return action


def compare(directory: SecureFixture, postgres: SecureFixture, runs: int, warmup: int = 2) -> Comparison:
    """Secure 10 MB downloads, then uploads, alternating between the two systems. CPU per operation
    is that of each system's services (the PostgreSQL server's backends are not counted)."""
    pids = scenarios.Pids(raw=service_pids(directory.system.pid), secure=service_pids(postgres.system.pid))
    with _storage_stub(directory.system) as dir_stub, _storage_stub(postgres.system) as pg_stub:
        scenarios.verify_secure_download(pg_stub, postgres)
        since = {f.system.state_dir: service_logs.offsets(f.system) for f in (directory, postgres)}
        downloads = interleave(_download(dir_stub, directory), _download(pg_stub, postgres), runs, warmup, pids)
        server = {store: service_logs.durations(f.system, since[f.system.state_dir])
                  for store, f in (("directory", directory), ("postgres", postgres))}
        since = {f.system.state_dir: service_logs.offsets(f.system) for f in (directory, postgres)}
        on_directory: list[str] = []
        on_postgres: list[str] = []
        try:
            uploads = interleave(_upload(dir_stub, directory, on_directory), _upload(pg_stub, postgres, on_postgres),
                                 runs, warmup, pids)
        finally:
            for fixture, names in ((directory, on_directory), (postgres, on_postgres)):
                for name in names:
                    fixture.admin.delete_file(name)
        for store, f in (("directory", directory), ("postgres", postgres)):
            server[store].update(service_logs.durations(f.system, since[f.system.state_dir]))
    return Comparison(downloads, uploads, server)


def figures(c: Comparison) -> list[Figure]:
    result: list[Figure] = []
    for what, pair, method in (("download", c.downloads, "DownloadSecureFile"),
                               ("upload", c.uploads, "UploadSecureFile")):
        result += [
            throughput(f"{what} 10 MB, blob directory (SQLite)", BIG_BYTES, pair.raw),
            throughput(f"{what} 10 MB, PostgreSQL blobs", BIG_BYTES, pair.secure),
            paired_ratio(f"{what} ratio PostgreSQL/directory", pair.raw, pair.secure),
            pair.raw_cpu.figure(f"{what} 10 MB, blob directory: CPU per op"),
            pair.secure_cpu.figure(f"{what} 10 MB, PostgreSQL blobs: CPU per op"),
        ]
        for store in ("directory", "postgres"):
            values = c.server[store].get(("storage", method), [])
            if values:
                result.append(Figure(f"{what} 10 MB, {store}: storage {method} (server)",
                                     statistics.median(values), "ms", detail=True,
                                     spread=f"p50 of {len(values)} calls, from the service log"))
    return result
