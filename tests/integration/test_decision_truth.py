"""Decisions that say yes mean yes (issue #15, items 1-5), on the running system."""

from __future__ import annotations

from pathlib import Path

import pytest

from securefiles.common.errors import PermissionDenied
from tests.conftest import LocalSystem, unique


def _setup(system: LocalSystem) -> tuple[str, str]:
    name, pipeline = unique("decided") + ".p12", unique("pipe")
    with system.client() as admin:
        admin.upload_file(b"decided content", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
    return name, pipeline


@pytest.mark.parametrize("branch", ["refs/heads/release/../../evil", "refs/heads/release/", "main",
                                    "refs/heads/a b"])
def test_a_run_on_a_ref_git_would_refuse_is_not_started(system: LocalSystem, branch: str) -> None:
    _, pipeline = _setup(system)
    started = system.cli("runs", "start", pipeline, "--branch", branch)
    assert started.code == 2, started.stderr
    assert "INVALID_BRANCH" in started.stderr
    assert started.stderr.count("\n") == 1


@pytest.mark.parametrize("pattern", ["refs/heads/release/../*", "refs/heads/release/", "refs/heads/a~1"])
def test_branch_control_refuses_patterns_git_would_refuse(system: LocalSystem, pattern: str) -> None:
    name, _ = _setup(system)
    added = system.cli("checks", "add", name, "branch-control", "--allowed", f"refs/heads/main,{pattern}")
    assert added.code == 2, added.stderr
    assert "INVALID_CHECK" in added.stderr
    assert system.cli("checks", "list", name, "--output", "json").json() == []


def test_a_check_added_mid_run_stops_that_runs_next_download(system: LocalSystem, tmp_path: Path) -> None:
    name, pipeline = _setup(system)
    with system.client() as admin:
        token = admin.start_run(pipeline, "refs/heads/feature/x").job_token
    with system.client(token=token) as job:
        assert job.download_secure_file(name, tmp_path / "before").path.read_bytes() == b"decided content"
    added = system.cli("checks", "add", name, "branch-control", "--allowed", "refs/heads/main")
    assert added.code == 0, added.stderr
    with system.client(token=token) as job, pytest.raises(PermissionDenied) as refused:
        job.download_secure_file(name, tmp_path / "after", retry_count=0)
    assert refused.value.reason == "CHECK_REJECTED"
    assert not (tmp_path / "after" / name).exists()
