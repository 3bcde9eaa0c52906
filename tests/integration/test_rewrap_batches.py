"""Rewrap moves data keys in batches: one kms call re-wraps many keys, each key succeeding or
failing on its own, and kms audits each batch (how many keys, from which versions)."""

from __future__ import annotations

import os

from tests.conftest import LocalSystem, job_token_for, unique


def _keys(system: LocalSystem, *args: str) -> object:
    result = system.cli("keys", *args, "--output", "json")
    assert result.code in (0, 1), result.stderr  # rewrap exits 1 when keys failed to move
    return result.json()


def _upload(system: LocalSystem, count: int) -> dict[str, bytes]:
    files = {f"rewrapped-{i}-{unique('')}": os.urandom(700 + i) for i in range(count)}
    with system.client() as admin:
        for name, content in files.items():
            admin.upload_file(content, name=name)
    return files


def _events(system: LocalSystem, action: str) -> list:
    with system.client() as admin:
        return [e for e in admin.list_audit_events("kms-eu") if e.action == action]


def test_one_call_rewraps_a_batch_and_each_key_fails_on_its_own(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.start()
    under_v1 = _upload(fresh_system, 3)
    _keys(fresh_system, "rotate")  # v2
    under_v2 = _upload(fresh_system, 2)
    _keys(fresh_system, "rotate")  # v3 is primary
    _keys(fresh_system, "disable", "1")  # v1's keys cannot be unwrapped, v2's can

    report = _keys(fresh_system, "rewrap")
    assert (report["rewrapped"], report["failed"]) == (2, 3)
    batches = _events(fresh_system, "BatchReEncryptDataKeys")
    assert len(batches) == 1  # five keys, one call
    details = batches[0].details
    assert (details["keys"], details["key_version"]) == ("5", "regions/eu/keyVersions/3")
    assert (details["from.failed"], details["from.regions/eu/keyVersions/2"]) == ("3", "2")
    assert not _events(fresh_system, "ReEncryptDataKey")

    _keys(fresh_system, "enable", "1")
    report = _keys(fresh_system, "rewrap")
    assert (report["rewrapped"], report["failed"]) == (3, 0)
    token = job_token_for(fresh_system, *under_v1, *under_v2)
    with fresh_system.client(token=token) as job:
        for name, content in {**under_v1, **under_v2}.items():
            assert job.download_secure_file(name, tmp_path, retry_count=0).path.read_bytes() == content
