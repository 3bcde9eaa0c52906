"""The agent's record of its downloads, in a directory it shares with the job (and whatever the job
checked out): it follows no symlink it did not make, and cleanup removes only what it downloaded."""

from __future__ import annotations

import json
import os
import stat

from tests.conftest import LocalSystem, job_token_for, unique

RECORD = ".securefiles-downloads.json"


def _file_for_job(system: LocalSystem, content: bytes = b"secure content") -> tuple[str, dict[str, str]]:
    name = unique("signing") + ".p12"
    with system.client() as admin:
        admin.upload_file(content, name=name)
    return name, {"SECUREFILES_JOB_TOKEN": job_token_for(system, name)}


def test_a_symlink_where_the_agent_writes_its_record_is_not_followed(system: LocalSystem, tmp_path) -> None:
    """A symlink planted at the record's temporary path made the agent overwrite and chmod its target;
    one at the record's own path made it read the target."""
    name, job = _file_for_job(system)
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim.sh"
    victim.write_text("#!/bin/sh\necho precious\n")
    victim.chmod(0o755)
    os.symlink(victim, dest / f".{RECORD}.tmp")
    os.symlink(victim, dest / f"{RECORD}.tmp")
    result = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert result.code == 0, result.stderr
    assert victim.read_text() == "#!/bin/sh\necho precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert (dest / name).read_bytes() == b"secure content"

    os.unlink(dest / RECORD)
    os.symlink(victim, dest / RECORD)
    again = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert again.code == 0, again.stderr
    assert victim.read_text() == "#!/bin/sh\necho precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert not (dest / RECORD).is_symlink()


def test_a_planted_record_makes_cleanup_remove_nothing(system: LocalSystem, tmp_path) -> None:
    """A record that is a symlink (to a list naming the job's own files) is not the agent's."""
    dest = tmp_path / "dest"
    dest.mkdir()
    built = dest / "app-release.apk"
    built.write_bytes(b"built by the job")
    info = built.stat()
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(["app-release.apk",
                                   {"name": "app-release.apk", "device": info.st_dev, "inode": info.st_ino}]))
    os.symlink(planted, dest / RECORD)
    result = system.cli("agent", "cleanup", "--dest", str(dest))
    assert result.code == 0, result.stderr
    assert built.read_bytes() == b"built by the job"
    assert "is not the agent's record" in result.stderr
    assert (dest / RECORD).is_symlink() and planted.exists()


def test_cleanup_leaves_a_file_the_job_put_in_place_of_a_download(system: LocalSystem, tmp_path) -> None:
    """Cleanup removes the files the agent wrote, not whatever now has their names."""
    name, job = _file_for_job(system)
    kept_name, kept_job = _file_for_job(system)
    dest = tmp_path / "dest"
    assert system.cli("agent", "download", name, "--dest", str(dest), env=job).code == 0
    assert system.cli("agent", "download", kept_name, "--dest", str(dest), env=kept_job).code == 0
    replacement = dest / "replacement"
    replacement.write_bytes(b"the job's own version")
    os.replace(replacement, dest / kept_name)
    cleaned = system.cli("agent", "cleanup", "--dest", str(dest))
    assert cleaned.code == 0, cleaned.stderr
    assert "removed 1 file(s)" in cleaned.stdout
    assert "left 1 file(s) that changed" in cleaned.stderr
    assert not (dest / name).exists()
    assert (dest / kept_name).read_bytes() == b"the job's own version"
    assert sorted(p.name for p in dest.iterdir()) == [kept_name]


def test_a_fifo_as_the_record_does_not_hang_the_agent(system: LocalSystem, tmp_path) -> None:
    name, job = _file_for_job(system)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / RECORD)
    result = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert result.code == 0, result.stderr
    assert stat.S_ISREG(os.lstat(dest / RECORD).st_mode)
    cleaned = system.cli("agent", "cleanup", "--dest", str(dest))
    assert cleaned.code == 0 and not (dest / name).exists()


def test_upload_refuses_the_agents_own_names(system: LocalSystem, tmp_path) -> None:
    source = tmp_path / "list.json"
    source.write_text('["build.apk"]')
    for name in (RECORD, ".securefiles-0123.partial"):
        result = system.cli("files", "upload", str(source), "--name", name)
        assert result.code == 2 and "[INVALID_NAME]" in result.stderr, result.stderr
