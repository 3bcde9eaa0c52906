"""Fail closed, lose nothing: kms or authz down or slow, storage or kms killed mid-operation."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from securefiles.client import PermissionDenied, SecureFilesError, Unavailable
from securefiles.common.rich_status import error_info_of
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, blob_files, job_token_for, stored_blob_keys


@pytest.fixture
def faulty(fresh_system: LocalSystem) -> Iterator[LocalSystem]:
    """A system whose services give up on a silent peer after 2 s."""
    fresh_system.extra_env["SECUREFILES_OUTBOUND_TIMEOUT_SECONDS"] = "2"
    fresh_system.start()
    yield fresh_system
    for service in ("storage", "authz", "kms-eu"):
        try:
            fresh_system.signal_service(service, signal.SIGCONT)
        except (OSError, ValueError):
            pass


def _files_named(system: LocalSystem, name: str) -> list[str]:
    with system.client() as admin:
        return [f.display_name for f in admin.list_files(name)]


def test_kms_down_fails_closed_and_recovers_without_restart(faulty: LocalSystem, tmp_path) -> None:
    with faulty.client() as admin:
        admin.upload_file(b"stored before the outage", name="before.pem")
    token = job_token_for(faulty, "before.pem")
    before_blobs = blob_files(faulty)

    faulty.signal_service("kms-eu", signal.SIGSTOP)  # up, but answering nothing
    try:
        with faulty.client() as admin, pytest.raises(Unavailable) as upload_error:
            admin.upload_file(b"must not be stored", name="during.pem")
        assert upload_error.value.reason in ("KMS_UNAVAILABLE", "DEADLINE_EXCEEDED")
        with faulty.client(token=token) as job, pytest.raises(Unavailable):
            job.download_secure_file("before.pem", tmp_path / "outage", retry_count=0)
        assert not (tmp_path / "outage").exists() or list((tmp_path / "outage").iterdir()) == []
    finally:
        faulty.signal_service("kms-eu", signal.SIGCONT)

    assert _files_named(faulty, "during.pem") == []
    assert blob_files(faulty) == before_blobs
    # The same storage process reconnects by itself.
    with faulty.client() as admin:
        admin.upload_file(b"stored after the outage", name="during.pem")
    with faulty.client(token=token) as job:
        assert job.download_secure_file("before.pem", tmp_path / "ok").path.read_bytes() == b"stored before the outage"
    with faulty.client(token=job_token_for(faulty, "during.pem")) as job:
        assert job.download_secure_file("during.pem", tmp_path / "ok").path.read_bytes() == b"stored after the outage"


def test_authz_down_denies_everything(faulty: LocalSystem, tmp_path) -> None:
    with faulty.client() as admin:
        admin.upload_file(b"guarded", name="guarded.pem")
    token = job_token_for(faulty, "guarded.pem")
    faulty.signal_service("authz", signal.SIGSTOP)
    try:
        with faulty.client(token=token) as job, pytest.raises(Unavailable) as download_error:
            job.download_secure_file("guarded.pem", tmp_path / "dest", retry_count=0)
        assert download_error.value.reason in ("AUTHZ_UNAVAILABLE", "DEADLINE_EXCEEDED")
        assert not (tmp_path / "dest").exists() or list((tmp_path / "dest").iterdir()) == []
        with faulty.client() as admin:
            with pytest.raises(Unavailable):
                admin.upload_file(b"x", name="while-authz-is-down.pem")
            with pytest.raises(Unavailable):
                admin.get_file("guarded.pem")
    finally:
        faulty.signal_service("authz", signal.SIGCONT)
    assert _files_named(faulty, "while-authz-is-down.pem") == []
    with faulty.client(token=token) as job:
        assert job.download_secure_file("guarded.pem", tmp_path / "after").path.read_bytes() == b"guarded"


def test_storage_killed_mid_upload_leaves_nothing_and_keeps_earlier_files(faulty: LocalSystem, tmp_path) -> None:
    earlier = {f"earlier-{i}.p12": os.urandom(300_000 + i) for i in range(3)}
    with faulty.client() as admin:
        for name, content in earlier.items():
            admin.upload_file(content, name=name)
    token = job_token_for(faulty, *earlier)
    sent_some = threading.Event()
    outcome: list[object] = []

    def slow_upload() -> None:
        def requests() -> Iterator[storage_pb2.UploadSecureFileRequest]:
            yield storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
                parent="projects/default", secure_file=storage_pb2.SecureFile(display_name="interrupted.p12")))
            for _ in range(3):
                yield storage_pb2.UploadSecureFileRequest(chunk=os.urandom(1024 * 1024))
            sent_some.set()
            time.sleep(30)  # the server dies meanwhile
            yield storage_pb2.UploadSecureFileRequest(chunk=b"never")

        stub = storage_pb2_grpc.SecureFileServiceStub(faulty.channel("storage"))
        try:
            outcome.append(stub.UploadSecureFile(requests(), metadata=bearer(faulty.admin_token), timeout=60))
        except grpc.RpcError as error:
            outcome.append(error.code())

    before = blob_files(faulty)
    uploader = threading.Thread(target=slow_upload, daemon=True)
    uploader.start()
    # gRPC asks for the next message only once the last one is sent: storage has received data.
    assert sent_some.wait(30)
    if faulty.blob_store == "directory":  # there, storage is seen writing the partial ciphertext
        deadline = time.monotonic() + 30
        while not blob_files(faulty) - before:
            assert time.monotonic() < deadline, "storage never started writing the upload"
            time.sleep(0.05)
    old_pid = faulty.signal_service("storage", signal.SIGKILL)
    uploader.join(60)
    assert outcome and outcome[0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                      grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    faulty.wait_restarted("storage", old_pid)

    assert _files_named(faulty, "interrupted.p12") == []
    present = blob_files(faulty)
    assert not any(k.startswith("partial/") for k in present)
    assert present == stored_blob_keys(faulty)  # the start-up sweep left no orphan
    with faulty.client(token=token) as job:
        for name, content in earlier.items():
            downloaded = job.download_secure_file(name, tmp_path)
            assert hashlib.sha256(downloaded.path.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()


def test_storage_killed_mid_download_leaves_no_file(faulty: LocalSystem, tmp_path) -> None:
    content = os.urandom(6 * 1024 * 1024)
    with faulty.client() as admin:
        admin.upload_file(content, name="big.p12")
    token = job_token_for(faulty, "big.p12")
    stub = storage_pb2_grpc.SecureFileServiceStub(faulty.channel("storage"))
    stream = stub.DownloadSecureFile(storage_pb2.DownloadSecureFileRequest(
        parent="projects/default", display_name="big.p12"), metadata=bearer(token), timeout=60)
    assert next(stream).WhichOneof("payload") == "header"
    old_pid = faulty.signal_service("storage", signal.SIGKILL)
    with pytest.raises(grpc.RpcError):
        for _ in stream:
            pass
    faulty.wait_restarted("storage", old_pid)
    # The agent against a storage that dies mid-stream: retries, then either the whole file or nothing.
    dest = tmp_path / "agent"
    with faulty.client(token=token) as job:
        downloaded = job.download_secure_file("big.p12", dest, retry_count=3)
    assert downloaded.path.read_bytes() == content
    assert [p.name for p in dest.iterdir()] == ["big.p12"]


def test_kms_killed_mid_rotation_keeps_one_primary(faulty: LocalSystem, tmp_path) -> None:
    with faulty.client() as admin:
        admin.upload_file(b"survives", name="kept.pem")
    stop = threading.Event()
    rotated: list[float] = []  # when each rotation succeeded

    def rotate_in_a_loop() -> None:
        with faulty.client() as admin:
            while not stop.is_set():
                try:
                    admin.rotate_key(reason="churn")
                    rotated.append(time.monotonic())
                except SecureFilesError:
                    time.sleep(0.05)  # a down kms answers at once: do not spin

    def wait_for_rotation_after(moment: float) -> None:
        deadline = time.monotonic() + 30
        while not any(t > moment for t in rotated):
            assert time.monotonic() < deadline, "no rotation succeeded"
            time.sleep(0.05)

    rotator = threading.Thread(target=rotate_in_a_loop, daemon=True)
    rotator.start()
    wait_for_rotation_after(0)  # rotations are under way when kms is killed
    old_pid = faulty.signal_service("kms-eu", signal.SIGKILL)
    faulty.wait_restarted("kms-eu", old_pid)
    wait_for_rotation_after(time.monotonic())  # and go on against the restarted kms
    stop.set()
    rotator.join(30)
    states = [row[0] for row in faulty.query("kms-eu", "SELECT state FROM key_versions")]
    assert states.count("PRIMARY") == 1
    assert len(states) >= 2
    with faulty.client(token=job_token_for(faulty, "kept.pem")) as job:
        assert job.download_secure_file("kept.pem", tmp_path).path.read_bytes() == b"survives"
    with faulty.client() as admin:
        assert admin.upload_file(b"new", name="after.pem").key_version.endswith(
            f"/{max(v.version for v in admin.list_key_versions()[1])}")


def test_every_outbound_call_has_a_deadline(fresh_system: LocalSystem) -> None:
    """A caller's deadline is passed on, a little shortened: when kms stalls, storage itself
    answers KMS_UNAVAILABLE before the caller's deadline. Storage's own limit for a silent peer
    is set far beyond the test (60 s), so only the propagated deadline can end the kms call in
    time; without it the caller would see its own bare DEADLINE_EXCEEDED."""
    fresh_system.extra_env["SECUREFILES_OUTBOUND_TIMEOUT_SECONDS"] = "60"
    fresh_system.start()
    fresh_system.signal_service("kms-eu", signal.SIGSTOP)
    try:
        stub = storage_pb2_grpc.SecureFileServiceStub(fresh_system.channel("storage"))
        requests = iter([storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
            parent="projects/default", secure_file=storage_pb2.SecureFile(display_name="deadline.pem"))),
            storage_pb2.UploadSecureFileRequest(chunk=b"x")])
        with pytest.raises(grpc.RpcError) as error:
            stub.UploadSecureFile(requests, metadata=bearer(fresh_system.admin_token), timeout=5)
    finally:
        fresh_system.signal_service("kms-eu", signal.SIGCONT)
    info = error_info_of(error.value)
    assert info is not None, f"the caller's own deadline ended the call: {error.value.code()}"
    assert (error.value.code(), info.reason, info.domain) == (
        grpc.StatusCode.UNAVAILABLE, "KMS_UNAVAILABLE", "storage.securefiles")
    assert _files_named(fresh_system, "deadline.pem") == []


def test_denial_is_not_mistaken_for_an_outage(faulty: LocalSystem, tmp_path) -> None:
    with faulty.client() as admin:
        admin.upload_file(b"x", name="private.pem")
    with faulty.client(token=job_token_for(faulty)) as job, pytest.raises(PermissionDenied):
        job.download_secure_file("private.pem", tmp_path, retry_count=5)
