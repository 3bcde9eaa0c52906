"""Per-caller abuse limits: one caller's flood is throttled with RetryInfo while others keep
downloading; concurrent streams per caller are capped; services calling each other are not
limited; and gRPC's own message size limit holds.

One system of this module's own with tight limits (20 requests/s, burst 20, 2 streams).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client.config import load_config
from securefiles.common.rich_status import error_info_of
from securefiles.common.tls import channel_options, client_channel_credentials
from securefiles.common.tokens import TokenIssuer, load_signing_key
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique, user_token
from tests.security.support import listed

RATE, BURST, STREAMS = 20, 20, 2
SYSTEM_ENV = {
    "SECUREFILES_REQUESTS_PER_SECOND": str(RATE),
    "SECUREFILES_REQUEST_BURST": str(BURST),
    "SECUREFILES_MAX_STREAMS_PER_CALLER": str(STREAMS),
}
MAX_MESSAGE = 4 * 1024 * 1024


def _retry_delay(error: grpc.RpcError) -> float | None:
    """Seconds of the google.rpc.RetryInfo in the status details, if there is one."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def _outcome(error: grpc.RpcError) -> tuple[str, str]:
    info = error_info_of(error)
    return error.code().name, info.reason if info else ""


# -- a flood --------------------------------------------------------------------------------


def test_flood_is_rate_limited_while_another_caller_keeps_downloading(own_system: LocalSystem,
                                                                      tmp_path: Path) -> None:
    system = own_system
    name, content = unique("flood-target"), os.urandom(256 * 1024)
    flooder = f"user:{unique('flooder')}"
    with system.client() as admin:
        resource = admin.upload_file(content, name=name).name
        admin.assign_role(flooder, "reader")
    flood_token = user_token(system, flooder)
    job_token = job_token_for(system, name)

    request = storage_pb2.GetSecureFileRequest(name=resource)
    calls = itertools.count()
    outcomes: list[tuple[str, str]] = []
    retry_delays: list[float | None] = []
    limited, stop = threading.Event(), threading.Event()
    give_up = time.monotonic() + 60

    def flood(stub: storage_pb2_grpc.SecureFileServiceStub) -> None:
        while time.monotonic() < give_up:
            if next(calls) >= 200 and stop.is_set():
                return
            try:
                stub.GetSecureFile(request, metadata=bearer(flood_token), timeout=10)
                outcomes.append(("OK", ""))
            except grpc.RpcError as error:
                outcomes.append(_outcome(error))
                retry_delays.append(_retry_delay(error))
                limited.set()

    started = time.monotonic()
    with system.channel("storage") as channel, ThreadPoolExecutor(8) as pool:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)
        flooders = [pool.submit(flood, stub) for _ in range(8)]
        try:
            assert limited.wait(30), "the flood was never limited"
            with system.client(token=job_token) as job:  # meanwhile, a job downloads
                downloads = [job.download_secure_file(name, tmp_path / str(i), retry_count=0).path.read_bytes()
                             for i in range(5)]
        finally:
            stop.set()
            for flooder_done in flooders:
                flooder_done.result()
    elapsed = time.monotonic() - started

    assert downloads == [content] * 5
    counted = Counter(outcomes)
    assert set(counted) == {("OK", ""), ("RESOURCE_EXHAUSTED", "RATE_LIMITED")}, counted
    assert sum(counted.values()) >= 200
    assert all(delay is not None and 0 < delay <= 1.0 for delay in retry_delays), retry_delays[:5]
    # The contract of a token bucket: no more than the burst plus the rate over the time it ran.
    assert counted[("OK", "")] <= BURST + RATE * elapsed + 1, (counted, elapsed)


# -- concurrent streams -------------------------------------------------------------------------


def test_extra_concurrent_download_streams_are_refused(own_system: LocalSystem) -> None:
    system = own_system
    name, content = unique("held-open"), os.urandom(10 * 1024 * 1024)  # big enough to stall unread
    with system.client() as admin:
        admin.upload_file(content, name=name)
    job_token, other_job_token = job_token_for(system, name), job_token_for(system, name)
    request = storage_pb2.DownloadSecureFileRequest(parent="projects/default", display_name=name)

    # Streams stay open only while their reader falls behind: HTTP/2 flow control must hold storage
    # back. gRPC's bandwidth probing would let the window grow until a 10 MB stream fits into
    # the buffers on a fast loopback, ending it on storage's side (1 run in 4 here).
    target = load_config(system.env()).storage
    options = [*channel_options(target), ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 64 * 1024)]
    with grpc.secure_channel(target, client_channel_credentials(system.tls("client").ca), options) as channel:
        stub = storage_pb2_grpc.SecureFileServiceStub(channel)

        def open_stream(token: str) -> grpc.Call:
            return stub.DownloadSecureFile(request, metadata=bearer(token), timeout=60)

        held = [open_stream(job_token) for _ in range(STREAMS)]
        try:
            for stream in held:  # each is admitted: its header arrived; the rest is left unread
                assert next(stream).WhichOneof("payload") == "header"
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as error:
                    next(open_stream(job_token))
                assert _outcome(error.value) == ("RESOURCE_EXHAUSTED", "TOO_MANY_STREAMS")
                assert _retry_delay(error.value) is not None

            other = open_stream(other_job_token)  # the limit is per caller: another job is not affected
            assert b"".join(m.chunk for m in other) == content

            first = held.pop(0)  # finishing one stream gives its slot back
            assert b"".join(m.chunk for m in first) == content
            deadline = time.monotonic() + 10
            while True:
                try:
                    again = open_stream(job_token)
                    assert b"".join(m.chunk for m in again) == content
                    break
                except grpc.RpcError as error:
                    assert _outcome(error) == ("RESOURCE_EXHAUSTED", "TOO_MANY_STREAMS")
                    assert time.monotonic() < deadline, "the finished stream's slot never came back"
                    time.sleep(0.1)
        finally:
            for stream in held:
                stream.cancel()


# -- services are trusted -------------------------------------------------------------------------


def _hammer(call: object, times: int) -> Counter:
    def one(_: int) -> tuple[str, str]:
        try:
            call()  # type: ignore[operator]
            return ("OK", "")
        except grpc.RpcError as error:
            return _outcome(error)

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(times)))


def test_services_calling_each_other_are_not_limited(own_system: LocalSystem) -> None:
    system = own_system
    keys = authz_pb2.GetSigningKeysRequest()
    person = user_token(system, f"user:{unique('busy')}")
    with system.channel("authz") as channel:  # control: a person making the same calls is limited
        stub = authz_pb2_grpc.AuthorizationServiceStub(channel)
        as_person = _hammer(lambda: stub.GetSigningKeys(keys, metadata=bearer(person), timeout=10), 100)
    assert as_person[("RESOURCE_EXHAUSTED", "RATE_LIMITED")] > 0, as_person

    with system.channel("authz", identity="storage") as channel:
        stub = authz_pb2_grpc.AuthorizationServiceStub(channel)
        as_storage = _hammer(lambda: stub.GetSigningKeys(keys, timeout=10), 100)
    assert as_storage == Counter({("OK", ""): 100})
    generate = kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context={
        "project": "default", "secure_file_id": "limits", "version": "1"})
    with system.channel("kms", identity="storage") as channel:
        stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
        assert _hammer(lambda: stub.GenerateDataKey(generate, timeout=10), 60) == Counter({("OK", ""): 60})

    # What that means in practice: people uploading at once make storage call authz and kms
    # several times per upload, far beyond 20/s, and every upload still works.
    issuer = TokenIssuer(load_signing_key((system.state_dir / "secrets" / "authz-signing-key.pem").read_bytes()))
    uploaders = [f"user:{unique('uploader')}" for _ in range(3)]
    with system.client() as admin:
        for uploader in uploaders:
            admin.assign_role(uploader, "creator")
    prefix = unique("busy-upload")

    def upload_six(index: int) -> list[str]:
        token = issuer.issue(uploaders[index], 600, kind="user")[0]
        with system.client(token=token) as client:
            return [client.upload_file(b"upload %d" % n, name=f"{prefix}-{index}-{n}").display_name
                    for n in range(6)]

    with ThreadPoolExecutor(3) as pool:
        uploaded = [name for names in pool.map(upload_six, range(3)) for name in names]
    assert len(uploaded) == 18
    assert sorted(listed(system, f"{prefix}-*")) == sorted(uploaded)


# -- gRPC's own message size limit ------------------------------------------------------------------


def _oversized_upload(system: LocalSystem, name: str) -> grpc.RpcError:
    """One upload message just over 4 MiB, from a client that allows itself to send it."""
    target = load_config(system.env()).storage
    options = [("grpc.max_send_message_length", 16 * MAX_MESSAGE), ("grpc.ssl_target_name_override", "localhost")]
    requests = [storage_pb2.UploadSecureFileRequest(metadata=storage_pb2.UploadMetadata(
        parent="projects/default", secure_file=storage_pb2.SecureFile(display_name=name))),
        storage_pb2.UploadSecureFileRequest(chunk=b"\0" * MAX_MESSAGE)]
    with grpc.secure_channel(target, client_channel_credentials(system.tls("client").ca), options=options) as channel, \
            pytest.raises(grpc.RpcError) as error:
        storage_pb2_grpc.SecureFileServiceStub(channel).UploadSecureFile(
            iter(requests), metadata=bearer(system.admin_token), timeout=30)
    return error.value


def test_message_over_4_mib_is_refused_and_the_server_keeps_serving(own_system: LocalSystem, tmp_path: Path) -> None:
    system = own_system
    error = _oversized_upload(system, unique("oversized"))  # (what is left behind: test_stream_abuse.py)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info_of(error) is None  # refused by gRPC itself, before any service code

    name = unique("after-oversized")
    with system.client() as admin:
        admin.upload_file(b"still serving", name=name)
    with system.client(token=job_token_for(system, name)) as job:
        assert job.download_secure_file(name, tmp_path).path.read_bytes() == b"still serving"
