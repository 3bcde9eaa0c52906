"""A full disk and a locked database: clean errors, nothing half-written, reads keep working."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from securefiles.client import ResourceExhausted, SecureFilesError
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, blob_files, job_token_for, stored_blob_keys


@pytest.fixture
def small_disk(fresh_system: LocalSystem) -> Iterator[LocalSystem]:
    """The blob directory on a 3 MiB tmpfs."""
    if fresh_system.blob_store == "db":
        pytest.skip("blobs are in the database in this run; the blob-directory disk is not used")
    blobs = fresh_system.state_dir / "data" / "blobs"
    blobs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(blobs)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        fresh_system.start()
        yield fresh_system
    finally:
        fresh_system.stop()
        subprocess.run(["umount", "-l", str(blobs)], check=False)


def test_disk_full_is_resource_exhausted_and_reads_keep_working(small_disk: LocalSystem, tmp_path) -> None:
    first = os.urandom(1024 * 1024)
    with small_disk.client() as admin:
        admin.upload_file(first, name="fits.p12")
        with pytest.raises(ResourceExhausted) as full:
            admin.upload_file(os.urandom(3 * 1024 * 1024), name="too-big-for-the-disk.p12")
    assert full.value.reason == "STORAGE_FULL"
    assert not any(k.startswith("partial/") for k in blob_files(small_disk))
    assert blob_files(small_disk) == stored_blob_keys(small_disk)
    with small_disk.client() as admin:
        assert [f.display_name for f in admin.list_files()] == ["fits.p12"]
    with small_disk.client(token=job_token_for(small_disk, "fits.p12")) as job:
        assert job.download_secure_file("fits.p12", tmp_path).path.read_bytes() == first
    with small_disk.client() as admin:  # space comes back, uploads work again
        admin.delete_file("fits.p12")
        admin.upload_file(os.urandom(2 * 1024 * 1024), name="fits-now.p12")


def _hold_write_lock(system: LocalSystem, hold: float | threading.Event, locked: threading.Event,
                     service: str = "storage", pg_lock: str = "secure_files, file_versions IN ACCESS EXCLUSIVE MODE",
                     ) -> None:
    """Lock `service`'s database for writers (SQLite) or `pg_lock` (PostgreSQL) for `hold` seconds,
    or until `hold` (an event) is set."""
    engine = system.engine(service)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            conn.begin()
            conn.execute(text(f"LOCK TABLE {pg_lock}"))
        locked.set()
        if isinstance(hold, threading.Event):
            hold.wait(30)
        else:
            time.sleep(hold)
        conn.rollback()
    engine.dispose()


def test_a_briefly_locked_database_only_delays_requests(fresh_system: LocalSystem) -> None:
    fresh_system.start()
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(fresh_system, 2.0, locked))
    holder.start()
    assert locked.wait(10)
    try:
        with fresh_system.client() as admin:
            created = admin.upload_file(b"waited for the lock", name="patient.pem")
    finally:
        holder.join()
    assert created.size_bytes == len(b"waited for the lock")
    assert blob_files(fresh_system) == stored_blob_keys(fresh_system)


def test_a_locked_database_past_the_deadline_fails_cleanly(fresh_system: LocalSystem) -> None:
    fresh_system.extra_env["SECUREFILES_DATABASE_BUSY_TIMEOUT_SECONDS"] = "1"
    fresh_system.start()
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(fresh_system, 4.0, locked))
    holder.start()
    assert locked.wait(10)
    try:
        with fresh_system.client() as admin, pytest.raises(SecureFilesError) as failed:
            admin.upload_file(b"gave up", name="impatient.pem")
        assert failed.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    finally:
        holder.join()
    with fresh_system.client() as admin:
        assert [f.display_name for f in admin.list_files()] == []
    assert blob_files(fresh_system) == stored_blob_keys(fresh_system) == set()


def test_a_write_waiting_for_a_held_lock_freezes_no_other_call(fresh_system: LocalSystem) -> None:
    """Storage's database is locked by someone else and a change waits for the lock (its audit entry
    cannot be appended): health checks and reads still answer at once; the change goes through
    once the lock is gone. Before, the wait held storage's event loop and every call with it."""
    fresh_system.start()
    with fresh_system.client() as admin:
        readable = admin.upload_file(b"readable while locked", name="readable.pem").name
        renamed = admin.upload_file(b"renamed after the lock", name="renamed.pem").name
    locked, release = threading.Event(), threading.Event()
    # SQLite: the whole database is locked for writers; PostgreSQL: the audit chain's head row.
    holder = threading.Thread(target=_hold_write_lock, args=(fresh_system, release, locked, "storage",
                                                             "audit_head IN EXCLUSIVE MODE"))
    holder.start()
    assert locked.wait(10)
    try:
        with fresh_system.channel("storage") as channel:
            files = storage_pb2_grpc.SecureFileServiceStub(channel)
            rename = storage_pb2.UpdateSecureFileRequest(secure_file=storage_pb2.SecureFile(
                name=renamed, display_name="renamed-later.pem"))
            with pytest.raises(grpc.RpcError) as waited:  # provably stuck at the lock: past its deadline
                files.UpdateSecureFile(rename, metadata=bearer(fresh_system.admin_token), timeout=2)
            assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(5):  # storage is still trying to write (busy timeout 15 s) and answers meanwhile
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                    health_pb2.HealthCheckResponse.SERVING
            read = files.GetSecureFile(storage_pb2.GetSecureFileRequest(name=readable),
                                       metadata=bearer(fresh_system.admin_token), timeout=2)
            assert read.display_name == "readable.pem"
    finally:
        release.set()
        holder.join()
    with fresh_system.client() as admin:
        names = {f.display_name for f in admin.list_files()}
    assert names in ({"readable.pem", "renamed.pem"}, {"readable.pem", "renamed-later.pem"})


def test_lost_database_connections_recover_without_a_restart(fresh_system: LocalSystem, tmp_path) -> None:
    if not fresh_system.database_url:
        pytest.skip("SQLite has no connection to lose; runs on PostgreSQL (SECUREFILES_TEST_DATABASE_URL)")
    fresh_system.start()
    with fresh_system.client() as admin:
        admin.upload_file(b"before the cut", name="before.pem")
    token = job_token_for(fresh_system, "before.pem")
    database = fresh_system.engine("storage").url.database
    fresh_system.execute("storage", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :db AND pid <> pg_backend_pid()", db=database)
    outcomes = []
    with fresh_system.client() as admin:
        for attempt in range(3):
            try:
                admin.upload_file(b"after the cut", name=f"after-{attempt}.pem")
                outcomes.append("ok")
            except SecureFilesError as error:  # a clean, retryable failure is acceptable
                assert error.code == "UNAVAILABLE", error
                outcomes.append(error.reason)
    assert "ok" in outcomes
    assert blob_files(fresh_system) == stored_blob_keys(fresh_system)
    with fresh_system.client(token=token) as job:
        assert job.download_secure_file("before.pem", tmp_path).path.read_bytes() == b"before the cut"


def test_policies_authz_could_not_forget_at_delete_are_purged_once_it_can(fresh_system: LocalSystem) -> None:
    """authz answers reads but cannot write when a file is deleted: the file goes at once, and its
    pipeline permission (and any pending approval) is purged by storage's retry later."""
    fresh_system.extra_env.update({"SECUREFILES_DATABASE_BUSY_TIMEOUT_SECONDS": "1",
                                   "SECUREFILES_PURGE_RETRY_SECONDS": "1"})
    fresh_system.start()
    with fresh_system.client() as admin:
        admin.upload_file(b"x", name="forgotten.pem")
        resource = admin.get_file("forgotten.pem").name
    job_token_for(fresh_system, "forgotten.pem")  # a pipeline permission on it, in authz
    permissions = "SELECT count(*) FROM pipeline_permissions WHERE resource = :r"
    assert fresh_system.query("authz", permissions, r=resource) == [(1,)]

    locked, release = threading.Event(), threading.Event()
    # authz's audit (written before every change) cannot be appended to
    holder = threading.Thread(target=_hold_write_lock, args=(fresh_system, release, locked, "authz",
                                                             "audit_head IN EXCLUSIVE MODE"))
    holder.start()
    assert locked.wait(10)
    try:
        with fresh_system.client() as admin:
            admin.delete_file("forgotten.pem")
            assert [f.display_name for f in admin.list_files()] == []
        assert fresh_system.query("storage", "SELECT resource FROM owed_purges") == [(resource,)]
        # A retry meanwhile fails too (the deletion's own attempt logged the first warning).
        log = fresh_system.state_dir / "logs" / "storage.log"
        deadline = time.monotonic() + 30
        while log.read_text().count("authz keeps its policies until a retry reaches it") < 2:
            assert time.monotonic() < deadline, "storage never retried the owed purge"
            time.sleep(0.1)
        assert fresh_system.query("storage", "SELECT resource FROM owed_purges") == [(resource,)]
        assert fresh_system.query("authz", permissions, r=resource) == [(1,)]
    finally:
        release.set()
        holder.join()
    deadline = time.monotonic() + 20
    while fresh_system.query("storage", "SELECT resource FROM owed_purges") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fresh_system.query("storage", "SELECT resource FROM owed_purges") == []
    assert fresh_system.query("authz", permissions, r=resource) == [(0,)]
