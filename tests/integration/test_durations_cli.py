"""Every flag that takes a duration refuses ambiguous and unit-less ones with one clear line."""

from __future__ import annotations

import pytest

from tests.conftest import LocalSystem, job_token_for, unique


def _commands(system: LocalSystem, tmp_path) -> dict[str, tuple[list[str], dict[str, str]]]:
    name = unique("durations") + ".pem"
    with system.client() as admin:
        admin.upload_file(b"not really a certificate", name=name)
        pipeline = unique("pipeline")
        admin.create_pipeline(pipeline)
    job = {"SECUREFILES_JOB_TOKEN": job_token_for(system, name)}
    return {
        "files list --expiring-within": (["files", "list", "--expiring-within"], {}),
        "tokens issue --ttl": (["tokens", "issue", "user:someone", "--ttl"], {}),
        "runs start --ttl": (["runs", "start", pipeline, "--branch", "refs/heads/main", "--ttl"], {}),
        "access request --ttl": (["access", "request", "--reason", "look", "--ttl"], {}),
        "checks add --timeout": (["checks", "add", name, "approval", "--approver", "user:bob", "--timeout"], {}),
        "agent download --wait-for-checks": (
            ["agent", "download", name, "--dest", str(tmp_path / "dest"), "--wait-for-checks"], job),
    }


@pytest.mark.parametrize("duration", ["1m", "30", "2mo"])
def test_ambiguous_durations_are_refused_by_every_flag(system: LocalSystem, tmp_path, duration: str) -> None:
    commands = _commands(system, tmp_path)
    for label, (args, env) in commands.items():
        result = system.cli(*args, duration, env=env)
        assert result.code == 2, f"{label} {duration}: {result.stdout} {result.stderr}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{label}: {result.stderr}"
        assert f"invalid duration '{duration}'" in lines[0] and "[INVALID_DURATION]" in lines[0], label
        assert "s, min, h, d, w" in lines[0], label
        assert result.stdout == "", label
    checks = system.cli("checks", "list", commands["checks add --timeout"][0][2], "--output", "json")
    assert checks.code == 0 and checks.json() == []
    assert not (tmp_path / "dest").exists()


def test_durations_with_units_are_taken(system: LocalSystem) -> None:
    listed = system.cli("files", "list", "--expiring-within", "720h", "--output", "json")
    assert listed.code == 0, listed.stderr
    issued = system.cli("tokens", "issue", "user:someone", "--ttl", "90min", "--output", "json")
    assert issued.code == 0, issued.stderr
