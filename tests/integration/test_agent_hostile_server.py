"""The agent against a storage server that sends file names no real one would (line breaks, the
agent's own bookkeeping names): a scripted server on a real TLS socket, the agent as a user runs it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import jwt
import pytest

from securefiles.client.config import ClientConfig
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.tls import TlsFiles, public_server_credentials
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.ci_logs import github_outputs

CONTENT = b'["build.apk"]'


class NamingStorage(storage_pb2_grpc.SecureFileServiceServicer):
    """Serves CONTENT under whatever display name the test chose."""

    def __init__(self) -> None:
        self.display_name = "cert.pem"

    def DownloadSecureFile(self, request, context) -> Iterator[storage_pb2.DownloadSecureFileResponse]:
        yield storage_pb2.DownloadSecureFileResponse(header=storage_pb2.DownloadHeader(
            secure_file=storage_pb2.SecureFile(display_name=self.display_name), size_bytes=len(CONTENT),
            sha256=hashlib.sha256(CONTENT).hexdigest()))
        yield storage_pb2.DownloadSecureFileResponse(chunk=CONTENT)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[NamingStorage, dict[str, str]]]:
    pki = tmp_path / "pki"
    ca = ensure_ca(pki)
    server_id = ensure_identity(pki, "storage")
    servicer = NamingStorage()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    storage_pb2_grpc.add_SecureFileServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", public_server_credentials(TlsFiles(ca, server_id.cert, server_id.key)))
    server.start()
    config = tmp_path / "client.toml"
    ClientConfig(storage=f"127.0.0.1:{port}", ca_file=ca).write(config)
    # The agent reads its project from the job token; this server checks nothing.
    job_token = jwt.encode({"kind": "job", "project": "default", "pipeline": "1", "run": "1"}, "k" * 32,
                           algorithm="HS256")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SECUREFILES_CONFIG": str(config),
           "SECUREFILES_JOB_TOKEN": job_token}
    yield servicer, env
    server.stop(None)


def _agent(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securefiles", "agent", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_name_with_a_line_break_is_not_written_and_sets_no_output(hostile, tmp_path) -> None:
    """`a\\nINJECTED=1` became a second line in $GITHUB_OUTPUT (and a file name with a line break)."""
    servicer, env = hostile
    servicer.display_name = "a\nINJECTED=1"
    outputs = tmp_path / "github_output"
    outputs.write_text("earlier=1\n")
    dest = tmp_path / "dest"
    result = _agent({**env, "GITHUB_OUTPUT": str(outputs)}, "download", "cert.pem", "--dest", str(dest))
    assert result.returncode == 1 and "[INVALID_HEADER]" in result.stderr
    assert github_outputs(outputs.read_text()) == {"earlier": "1"}
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("reserved", [".securefiles-downloads.json", ".SECUREFILES-downloads.json"])
def test_a_file_named_like_the_agents_record_is_never_taken_for_it(hostile, tmp_path, reserved: str) -> None:
    """A secure file named like the agent's download record replaced the record: `agent cleanup`
    then deleted whatever the file listed (here the job's own build output)."""
    servicer, env = hostile
    dest = tmp_path / "dest"
    dest.mkdir()
    built = dest / "build.apk"
    built.write_bytes(b"the job's own build output")
    servicer.display_name = reserved
    result = _agent(env, "download", "cert.pem", "--dest", str(dest))
    cleanup = _agent(env, "cleanup", "--dest", str(dest))
    assert built.read_bytes() == b"the job's own build output"
    assert result.returncode == 1 and "[RESERVED_NAME]" in result.stderr
    assert cleanup.returncode == 0, cleanup.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["build.apk"]
