"""A job's multi-file download: one authz decision and one kms unwrap for all its files (the
audit shows one entry per file, written by one call), and all of the files or none."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from securefiles.authz.v1 import authz_pb2
from securefiles.client import DataLoss, PermissionDenied, SecureFilesClient
from securefiles.client.config import ClientConfig
from tests.conftest import LocalSystem, job_token_for, unique
from tests.integration.test_agent_behaviour import CONTENT, ScriptedStorage, scripted  # noqa: F401


def _files(dest: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in dest.iterdir() if not p.name.startswith(".")} if dest.exists() else {}


def _entries(system: LocalSystem, service: str, action: str) -> list:
    with system.client() as admin:
        return [e for e in admin.list_audit_events(service) if e.action == action]


def _upload(system: LocalSystem, count: int, prefix: str) -> dict[str, tuple[str, bytes]]:
    """name -> (resource name with the file's id, content)."""
    uploaded = {}
    with system.client() as admin:
        for index in range(count):
            name, content = f"{prefix}-{index}.pem", os.urandom(3000)
            uploaded[name] = (admin.upload_file(content, name=name).name, content)
    return uploaded


def test_a_jobs_files_come_from_one_decision_and_one_key_unwrap(system: LocalSystem, tmp_path: Path) -> None:
    prefix = unique("bundle")
    files = _upload(system, 3, prefix)
    token = job_token_for(system, *files)
    dest = tmp_path / "job"
    downloaded = system.cli("agent", "download", f"{prefix}-*", "--dest", str(dest),
                            env={"SECUREFILES_JOB_TOKEN": token})
    assert downloaded.code == 0, downloaded.stderr
    assert _files(dest) == {name: content for name, (_, content) in files.items()}

    resources = {resource for resource, _ in files.values()}
    ids = {resource.rsplit("/", 1)[1] for resource in resources}
    decided = [e for e in _entries(system, "authz", "BatchAuthorizeUse") if e.resource in resources]
    assert sorted(e.resource for e in decided) == sorted(resources) and {e.decision for e in decided} == {"ALLOW"}
    assert len({e.request_id for e in decided}) == 1  # one call decided all three
    assert not [e for e in _entries(system, "authz", "AuthorizeUse") if e.resource in resources]
    unwrapped = [e for e in _entries(system, "kms-eu", "BatchDecryptDataKeys")
                 if e.details["context.secure_file_id"] in ids]
    assert sorted(e.details["context.secure_file_id"] for e in unwrapped) == sorted(ids)
    assert len({e.request_id for e in unwrapped}) == 1  # one call unwrapped all three keys
    assert not [e for e in _entries(system, "kms-eu", "DecryptDataKey")
                if e.details.get("context.secure_file_id") in ids]
    sent = [e for e in _entries(system, "storage", "DownloadSecureFiles") if e.resource in resources]
    assert sorted(e.resource for e in sent) == sorted(resources) and len({e.request_id for e in sent}) == 1


def test_one_file_refused_refuses_all_before_any_content(system: LocalSystem, tmp_path: Path) -> None:
    prefix = unique("mixed")
    files = _upload(system, 3, prefix)
    allowed = sorted(files)[:2]
    token = job_token_for(system, *allowed)  # the third is not the pipeline's to use
    refused_resource = files[sorted(files)[2]][0]
    dest = tmp_path / "none"
    with system.client(token=token) as job, pytest.raises(PermissionDenied) as refused:
        job.download_secure_files(sorted(files), dest, retry_count=0)
    assert refused.value.reason == "PIPELINE_NOT_AUTHORIZED"
    assert _files(dest) == {}
    denied = [e for e in _entries(system, "authz", "BatchAuthorizeUse")
              if e.resource in {r for r, _ in files.values()}]
    assert [(e.resource, e.decision) for e in denied] == [(refused_resource, "DENY")]
    assert not [e for e in _entries(system, "storage", "DownloadSecureFiles")
                if e.resource in {r for r, _ in files.values()} and e.decision == "ALLOW"]


def test_pending_checks_on_one_file_hold_back_all_until_approved(system: LocalSystem, tmp_path: Path) -> None:
    prefix = unique("approved")
    files = _upload(system, 2, prefix)
    gated = sorted(files)[1]
    with system.client() as admin:
        admin.add_check(gated, authz_pb2.Check(approval=authz_pb2.ApprovalSettings(
            approvers=["user:admin"], min_approvals=1, allow_requester=True)))
    token = job_token_for(system, *files)
    dest = tmp_path / "job"
    pending = system.cli("agent", "download", f"{prefix}-*", "--dest", str(dest), env={"SECUREFILES_JOB_TOKEN": token})
    assert pending.code == 4 and "CHECKS_PENDING" in pending.stderr
    assert _files(dest) == {}
    # Nothing left storage while a check held one of them back: not even the file without checks.
    resources = {resource for resource, _ in files.values()}
    assert not [e for action in ("DownloadSecureFile", "DownloadSecureFiles")
                for e in _entries(system, "storage", action) if e.resource in resources and e.decision == "ALLOW"]
    with system.client() as admin:
        (approval,) = [a for a in admin.list_approvals(pending_only=True) if a.resource == files[gated][0]]
        admin.decide_approval(approval.approval_id, True)
    done = system.cli("agent", "download", f"{prefix}-*", "--dest", str(dest), env={"SECUREFILES_JOB_TOKEN": token})
    assert done.code == 0, done.stderr
    assert _files(dest) == {name: content for name, (_, content) in files.items()}


class TwoFiles(ScriptedStorage):
    """Serves two files in one stream; the second's content does not match its header if told so."""

    def DownloadSecureFiles(self, request, context) -> Iterator:
        from securefiles.storage.v1 import storage_pb2

        self.attempts += 1
        step = self.script.pop(0) if self.script else "ok"
        for index, name in enumerate(("first.pem", "second.pem")):
            sha = hashlib.sha256(CONTENT).hexdigest() if not (index and step == "wrong-sha") else "0" * 64
            yield storage_pb2.DownloadSecureFileResponse(header=storage_pb2.DownloadHeader(
                secure_file=storage_pb2.SecureFile(display_name=name), size_bytes=len(CONTENT), sha256=sha))
            yield storage_pb2.DownloadSecureFileResponse(chunk=CONTENT)


@pytest.fixture
def two_files(tmp_path: Path) -> Iterator[tuple[TwoFiles, SecureFilesClient]]:
    from concurrent import futures

    from securefiles.common.dev_pki import ensure_ca, ensure_identity
    from securefiles.common.tls import TlsFiles, public_server_credentials
    from securefiles.storage.v1 import storage_pb2_grpc

    pki = tmp_path / "pki"
    ca = ensure_ca(pki)
    server_id = ensure_identity(pki, "storage")
    servicer = TwoFiles([])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    storage_pb2_grpc.add_SecureFileServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", public_server_credentials(TlsFiles(ca, server_id.cert, server_id.key)))
    server.start()
    client = SecureFilesClient(ClientConfig(storage=f"127.0.0.1:{port}", ca_file=ca), token="job-token")
    yield servicer, client
    client.close()
    server.stop(None)


def test_a_tampered_second_file_leaves_neither(two_files: tuple[TwoFiles, SecureFilesClient], tmp_path: Path) -> None:
    servicer, client = two_files
    servicer.script = ["wrong-sha"]
    with pytest.raises(DataLoss) as tampered:
        client.download_secure_files(["first.pem", "second.pem"], tmp_path / "dest", retry_count=0)
    assert tampered.value.reason == "CHECKSUM_MISMATCH"
    assert _files(tmp_path / "dest") == {}
    done = client.download_secure_files(["first.pem", "second.pem"], tmp_path / "dest", retry_count=0)
    assert [d.name for d in done] == ["first.pem", "second.pem"]
    assert _files(tmp_path / "dest") == {"first.pem": CONTENT, "second.pem": CONTENT}


def test_a_storage_without_the_call_gets_one_call_per_file(scripted, tmp_path: Path) -> None:  # noqa: F811
    servicer, client = scripted  # serves DownloadSecureFile only
    done = client.download_secure_files(["cert.pem"], tmp_path / "dest", retry_count=3)
    assert [d.path.read_bytes() for d in done] == [CONTENT]
    assert servicer.attempts == 1  # the missing call was not retried; the file came by the old one
