"""Two replaces of one file at once (issue #15, item 10): one wins, the other is told
ABORTED CONCURRENT_REPLACE, and every kept version still downloads intact."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from securefiles.common.errors import SecureFilesError
from tests.conftest import LocalSystem, job_token_for, unique

WRITERS = 6


def test_concurrent_replaces_lose_no_version(system: LocalSystem, tmp_path: Path) -> None:
    project, name = unique("race"), "race.bin"
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.update_library(allow_replace=True, keep_versions=20)
        admin.upload_file(b"version one", name=name)
    contents = [f"writer {i} ".encode() + os.urandom(256 * 1024) for i in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    outcomes: list[object] = [None] * WRITERS

    def replace(index: int) -> None:
        with system.client(project=project) as client:
            start.wait(timeout=30)
            try:
                outcomes[index] = client.replace_file(name, contents[index], reason=f"writer {index}")
            except SecureFilesError as error:
                outcomes[index] = error

    threads = [threading.Thread(target=replace, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    failures = [o for o in outcomes if isinstance(o, SecureFilesError)]
    assert all((f.code, f.reason) == ("ABORTED", "CONCURRENT_REPLACE") for f in failures), \
        [(f.code, f.reason, f.message) for f in failures]
    won = {o.version: contents[i] for i, o in enumerate(outcomes) if not isinstance(o, SecureFilesError)}
    assert won, "at least one replace wins"
    with system.client(project=project) as admin:
        kept = sorted(v.version for v in admin.list_versions(name))
    assert kept == sorted({1, *won}), (kept, sorted(won))
    expected = {1: b"version one", **won}
    for version in kept:
        with system.client(project=project) as admin:
            admin.rollback_file(name, version, reason="check every kept version")
        token = job_token_for(system, name, project=project)
        with system.client(token=token, project=project) as job:
            downloaded = job.download_secure_file(name, tmp_path / f"v{version}", retry_count=0)
        assert downloaded.path.read_bytes() == expected[version], f"version {version} is not what was stored"
