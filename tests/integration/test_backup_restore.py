"""Backup and restore: a consistent snapshot of every service's database and the blobs with a
manifest of sha256 sums, and a restore drill (upload, back up, destroy the state, restore,
download intact, audit chains intact). The backup alone decrypts nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import LocalSystem, job_token_for, unique


def _deployment_flags(system: LocalSystem, state_dir: Path | None = None) -> list[str]:
    flags = ["--state-dir", str(state_dir or system.state_dir)]
    if system.database_url:
        flags += ["--database-url", system.database_url, "--database-prefix", system.database_prefix]
    return flags


def _download(system: LocalSystem, name: str, where: Path) -> bytes:
    with system.client(token=job_token_for(system, name)) as job:
        return job.download_secure_file(name, where, retry_count=0).path.read_bytes()


@pytest.mark.slow
def test_restore_drill(fresh_system: LocalSystem, tmp_path: Path) -> None:
    system = fresh_system
    system.start()
    contents = {unique("drill"): os.urandom(size) for size in (10, 300_000, 2_500_000)}
    with system.client() as admin:
        for name, content in contents.items():
            admin.upload_file(content, name=name)
    backup_dir = tmp_path / "backup"
    made = system.cli("backup", "--to", str(backup_dir), *_deployment_flags(system), "--blob-store", system.blob_store)
    assert made.code == 0, made.stderr
    assert "not included (keep them separately): root keys" in made.stdout
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert set(manifest["databases"]) == {"storage", "authz", "kms-eu"}
    assert all(len(digest) == 64 for digest in manifest["sha256"].values())
    # What the backup holds decrypts nothing: no root key, signing key or audit key is in it.
    secrets = {p.name: p.read_bytes() for p in (system.state_dir / "secrets").iterdir()}
    backed_up = b"".join(p.read_bytes() for p in backup_dir.rglob("*") if p.is_file())
    for secret in secrets.values():
        assert secret.strip() not in backed_up

    # Disaster: the state is gone; the secrets (and the PKI) were kept elsewhere, as the README says.
    system.stop()
    kept = tmp_path / "kept"
    for part in ("secrets", "pki"):
        shutil.copytree(system.state_dir / part, kept / part)
    shutil.rmtree(system.state_dir)
    system.drop_databases()

    restored = system.cli("restore", "--from", str(backup_dir), *_deployment_flags(system))
    assert restored.code == 0, restored.stderr
    for part in ("secrets", "pki"):
        shutil.copytree(kept / part, system.state_dir / part)
    system.start()
    for name, content in contents.items():
        assert _download(system, name, tmp_path / "after") == content
    verified = system.cli("audit", "verify", "--output", "json")
    assert verified.code == 0, verified.stdout + verified.stderr
    report = verified.json()
    assert set(report) == {"storage", "authz", "kms-eu"}
    assert all(chain["intact"] and chain["unaccountedEntries"] == 0 for chain in report.values()), report


def test_a_tampered_backup_or_a_used_state_is_refused_and_nothing_changes(system: LocalSystem, tmp_path: Path) -> None:
    with system.client() as admin:
        admin.upload_file(os.urandom(5000), name=unique("backed-up"))
    backup_dir = tmp_path / "backup"
    made = system.cli("backup", "--to", str(backup_dir), *_deployment_flags(system), "--blob-store", system.blob_store)
    assert made.code == 0, made.stderr

    again = system.cli("backup", "--to", str(backup_dir), *_deployment_flags(system))
    assert again.code != 0 and "TARGET_NOT_EMPTY" in again.stderr and len(again.stderr.splitlines()) == 1

    into_running = system.cli("restore", "--from", str(backup_dir), *_deployment_flags(system))
    assert into_running.code != 0 and "TARGET_NOT_EMPTY" in into_running.stderr

    victim = next(p for p in sorted(backup_dir.rglob("*")) if p.is_file() and p.name != "manifest.json")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    fresh_state = tmp_path / "restored-state"
    flags = ["--state-dir", str(fresh_state)]
    if system.database_url:
        flags += ["--database-url", system.database_url, "--database-prefix", f"{system.database_prefix}r_"]
    refused = system.cli("restore", "--from", str(backup_dir), *flags)
    assert refused.code == 2, refused.stderr
    assert "does not match its sha256" in refused.stderr and "BACKUP_CORRUPT" in refused.stderr
    assert not fresh_state.exists()

    not_a_backup = system.cli("restore", "--from", str(tmp_path), *flags)
    assert not_a_backup.code == 2 and "NOT_A_BACKUP" in not_a_backup.stderr
