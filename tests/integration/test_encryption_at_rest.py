"""No plaintext or unwrapped key ever reaches disk; tampered ciphertext never reaches the agent."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from tests.conftest import LocalSystem, job_token_for, unique


def _every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in _every_file(root):
        data = path.read_bytes()
        hits += [f"{path}: {needle[:8]!r}…" for needle in needles if needle in data]
    return hits


def _unwrap_as_storage(system: LocalSystem, file_id: str) -> bytes:
    """What storage would get from kms for this file (the test holds storage's certificate)."""
    ((wrapped, region, version),) = system.query(
        "storage", "SELECT wrapped_key, key_region, version FROM file_versions WHERE file_id = :f", f=file_id)
    stub = kms_pb2_grpc.KeyManagementServiceStub(system.channel("kms", identity="storage", region=region))
    response = stub.DecryptDataKey(kms_pb2.DecryptDataKeyRequest(
        name=f"regions/{region}", wrapped_key=wrapped,
        encryption_context={"project": "default", "secure_file_id": file_id, "version": str(version)},
    ), timeout=10)
    return response.plaintext


def test_neither_plaintext_nor_data_key_is_stored(system: LocalSystem, tmp_path) -> None:
    marker = os.urandom(24).hex().encode()
    content = b"-----BEGIN PRIVATE KEY-----\n" + marker * 50 + b"\n-----END PRIVATE KEY-----\n"
    name = unique("marker") + ".key"
    with system.client() as admin:
        created = admin.upload_file(content, name=name)
    # Download it too, so any leak on the read path would also show up.
    with system.client(token=job_token_for(system, name)) as job:
        assert job.download_secure_file(name, tmp_path).path.read_bytes() == content

    data_key = _unwrap_as_storage(system, created.secure_file_id)
    assert len(data_key) == 32
    needles = [marker, data_key, data_key.hex().encode(), base64.b64encode(data_key)]
    for location in system.data_locations():
        assert _files_containing(location, needles) == []


def test_flipped_ciphertext_byte_fails_with_data_loss_and_leaves_nothing(system: LocalSystem, tmp_path) -> None:
    content = os.urandom(2 * 1024 * 1024 + 5)
    name = unique("tamper")
    with system.client() as admin:
        created = admin.upload_file(content, name=name)
    file_id = created.secure_file_id
    original = system.read_blob(file_id)
    token = job_token_for(system, name)
    for position in (len(original) // 2, 10, len(original) - 1):  # a body byte, the header, the last tag
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        system.write_blob(file_id, bytes(tampered))
        dest = tmp_path / f"dest-{position}"
        result = system.cli("agent", "download", name, "--dest", str(dest), "--retry-count", "0",
                            env={"SECUREFILES_JOB_TOKEN": token})
        assert result.code == 1, result.stderr
        assert "CIPHERTEXT_CORRUPT" in result.stderr
        assert not dest.exists() or list(dest.iterdir()) == []
    system.write_blob(file_id, original)
    with system.client(token=token) as job:
        assert job.download_secure_file(name, tmp_path / "restored").path.read_bytes() == content


def test_truncated_blob_is_data_loss(system: LocalSystem, tmp_path) -> None:
    content = os.urandom(3 * 1024 * 1024)
    name = unique("truncated")
    with system.client() as admin:
        created = admin.upload_file(content, name=name)
    original = system.read_blob(created.secure_file_id)
    system.write_blob(created.secure_file_id, original[: -(1024 * 1024 + 16)])  # drop the whole last segment
    try:
        from securefiles.client import DataLoss

        with system.client(token=job_token_for(system, name)) as job, pytest.raises(DataLoss):
            job.download_secure_file(name, tmp_path, retry_count=0)
        assert list(tmp_path.iterdir()) == []
    finally:
        system.write_blob(created.secure_file_id, original)


def test_state_files_are_private(system: LocalSystem) -> None:
    for path in [system.state_dir, *(system.state_dir / d for d in ("secrets", "pki", "data"))]:
        assert path.stat().st_mode & 0o077 == 0, path
    for path in (system.state_dir / "secrets").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    for key in (system.state_dir / "pki").glob("*-key.pem"):
        assert key.stat().st_mode & 0o077 == 0, key
    assert system.config_path.stat().st_mode & 0o077 == 0
