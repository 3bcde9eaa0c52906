"""The agent's promises under failure, against a scripted storage server on a real TLS socket.

The scripted server stands in for storage only to produce failures on demand (transient
errors, stalls, lying headers) that the real one never produces on purpose.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from securefiles.client import DataLoss, PermissionDenied, SecureFilesClient, Unavailable
from securefiles.client.config import ClientConfig
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.errors import SecureFilesError
from securefiles.common.rich_status import to_rpc_status
from securefiles.common.tls import TlsFiles, public_server_credentials
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc

CONTENT = b"certificate bytes " * 1000


class ScriptedStorage(storage_pb2_grpc.SecureFileServiceServicer):
    """Plays one scripted behaviour per attempt, then serves the file."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.attempts = 0

    def DownloadSecureFile(self, request, context) -> Iterator[storage_pb2.DownloadSecureFileResponse]:
        self.attempts += 1
        step = self.script.pop(0) if self.script else "ok"
        if step == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "storage restarting")
        if step == "denied":
            status = to_rpc_status(PermissionDenied("no", reason="PIPELINE_NOT_AUTHORIZED"), "storage.securefiles")
            context.abort_with_status(rpc_status.to_status(status))
        sha = hashlib.sha256(CONTENT).hexdigest() if step != "wrong-sha" else "0" * 64
        yield storage_pb2.DownloadSecureFileResponse(header=storage_pb2.DownloadHeader(
            secure_file=storage_pb2.SecureFile(display_name="cert.pem"), size_bytes=len(CONTENT), sha256=sha))
        half = len(CONTENT) // 2
        yield storage_pb2.DownloadSecureFileResponse(chunk=CONTENT[:half])
        if step == "stall":  # until the client gives up on this attempt
            gave_up = threading.Event()
            context.add_callback(gave_up.set)
            gave_up.wait(30)
            return
        if step == "cut":
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        if step == "error-after-data":
            status = to_rpc_status(DataLoss("corrupt", reason="CIPHERTEXT_CORRUPT"), "storage.securefiles")
            context.abort_with_status(rpc_status.to_status(status))
        yield storage_pb2.DownloadSecureFileResponse(chunk=CONTENT[half:])


@pytest.fixture
def scripted(tmp_path: Path):
    pki = tmp_path / "pki"
    ca = ensure_ca(pki)
    server_id = ensure_identity(pki, "storage")
    servicer = ScriptedStorage([])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    storage_pb2_grpc.add_SecureFileServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", public_server_credentials(TlsFiles(ca, server_id.cert, server_id.key)))
    server.start()
    config = ClientConfig(storage=f"127.0.0.1:{port}", ca_file=ca)
    client = SecureFilesClient(config, token="job-token")
    yield servicer, client
    client.close()
    server.stop(None)


def _no_files(dest: Path) -> bool:
    return not dest.exists() or list(dest.iterdir()) == []


def test_transient_failures_are_retried(scripted, tmp_path) -> None:
    servicer, client = scripted
    servicer.script = ["unavailable", "cut", "unavailable"]
    downloaded = client.download_secure_file("cert.pem", tmp_path / "dest", retry_count=3)
    assert downloaded.path.read_bytes() == CONTENT
    assert servicer.attempts == 4
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["cert.pem"]


def test_retries_are_bounded(scripted, tmp_path) -> None:
    servicer, client = scripted
    servicer.script = ["unavailable"] * 10
    with pytest.raises(Unavailable):
        client.download_secure_file("cert.pem", tmp_path / "dest", retry_count=2)
    assert servicer.attempts == 3
    assert _no_files(tmp_path / "dest")


def test_denials_are_not_retried(scripted, tmp_path) -> None:
    servicer, client = scripted
    servicer.script = ["denied"]
    with pytest.raises(PermissionDenied) as error:
        client.download_secure_file("cert.pem", tmp_path / "dest", retry_count=5)
    assert error.value.reason == "PIPELINE_NOT_AUTHORIZED"
    assert servicer.attempts == 1


@pytest.mark.parametrize("step", ["wrong-sha", "error-after-data"])
def test_bad_content_leaves_nothing_and_is_not_retried(scripted, tmp_path, step: str) -> None:
    servicer, client = scripted
    servicer.script = [step]
    with pytest.raises(DataLoss):
        client.download_secure_file("cert.pem", tmp_path / "dest", retry_count=5)
    assert servicer.attempts == 1
    assert _no_files(tmp_path / "dest")


def test_socket_timeout_cuts_a_stalled_stream_and_retries(scripted, tmp_path) -> None:
    servicer, client = scripted
    servicer.script = ["stall"]
    downloaded = client.download_secure_file("cert.pem", tmp_path / "dest", retry_count=1, timeout=2.0)
    assert downloaded.path.read_bytes() == CONTENT
    assert servicer.attempts == 2


def test_an_error_is_never_written_into_an_existing_file(scripted, tmp_path) -> None:
    servicer, client = scripted
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "cert.pem").write_bytes(b"previous good copy")
    servicer.script = ["error-after-data"]
    with pytest.raises(SecureFilesError):
        client.download_secure_file("cert.pem", dest, retry_count=0)
    assert (dest / "cert.pem").read_bytes() == b"previous good copy"
    assert [p.name for p in dest.iterdir()] == ["cert.pem"]
