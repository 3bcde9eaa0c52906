"""Decisions that say yes mean yes (issue #15, items 1-5), on the running system."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from securefiles.common.errors import PermissionDenied, SecureFilesError
from tests.conftest import LocalSystem, unique, user_token


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


def _refusal(call: Callable[[], object]) -> tuple[str, str, str]:
    with pytest.raises(SecureFilesError) as refused:
        call()
    return refused.value.code, refused.value.reason, refused.value.message


@pytest.mark.parametrize("action", ["get", "update", "delete", "versions"])
def test_missing_and_not_yours_get_the_same_answer_naming_nothing_hidden(system: LocalSystem, action: str) -> None:
    hidden = unique("hidden-name") + ".p12"
    reader, outsider = f"user:{unique('reader')}", f"user:{unique('outsider')}"
    with system.client() as admin:
        hidden_id = admin.upload_file(b"hidden", name=hidden).name.rsplit("/", 1)[1]
        admin.set_role_inheritance(hidden, False)
        admin.assign_role(reader, "reader")
    missing_id = str(uuid.uuid4())
    for who, expected in ((reader, ("NOT_FOUND", "FILE_NOT_FOUND")), (outsider, ("PERMISSION_DENIED",
                                                                               "PERMISSION_DENIED"))):
        with system.client(token=user_token(system, who)) as client:
            def act(ref: str, client=client) -> Callable[[], object]:
                return {
                    "get": lambda: client.get_file(ref),
                    "update": lambda: client.update_file(ref, properties={"k": "v"}),
                    "delete": lambda: client.delete_file(ref),
                    "versions": lambda: client.list_versions(ref),
                }[action]
            code, reason, message = _refusal(act(hidden_id))
            assert (code, reason) == expected, (who, message)
            assert hidden not in message
            assert _refusal(act(missing_id)) == (code, reason, message.replace(hidden_id, missing_id))
    with system.client() as admin:
        assert admin.get_file(hidden).properties == {}  # nothing changed
