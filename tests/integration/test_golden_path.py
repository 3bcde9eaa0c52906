"""The path from 'a person uploads a certificate' to 'a job's agent has it on disk'."""

from __future__ import annotations

import hashlib
import os
import stat

from tests.conftest import LocalSystem, unique


def test_upload_authorize_run_download_complete(system: LocalSystem, tmp_path) -> None:
    source = tmp_path / "signing.p12"
    content = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(content)
    name = unique("signing") + ".p12"
    pipeline = unique("ios-release")

    uploaded = system.cli("files", "upload", str(source), "--name", name, "--output", "json")
    assert uploaded.code == 0, uploaded.stderr
    info = uploaded.json()
    assert info["displayName"] == name and info["sizeBytes"] == len(content)
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert info["secureFileId"] and info["name"] == f"projects/default/secureFiles/{info['secureFileId']}"

    created = system.cli("pipelines", "create", pipeline, "--output", "json")
    assert created.code == 0, created.stderr
    assert created.json()["displayName"] == pipeline
    assert system.cli("pipelines", "authorize", name, pipeline).code == 0

    started = system.cli("runs", "start", pipeline, "--branch", "refs/heads/main", "--output", "json")
    assert started.code == 0, started.stderr
    run = started.json()
    job = {"SECUREFILES_JOB_TOKEN": run["jobToken"]}

    dest = tmp_path / "agent-temp"
    downloaded = system.cli("agent", "download", name, "--dest", str(dest), env=job)
    assert downloaded.code == 0, downloaded.stderr
    path = dest / name
    assert downloaded.stdout.strip() == str(path)
    assert path.read_bytes() == content
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["sha256"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    assert system.cli("runs", "complete", run["run"]["name"]).code == 0
    again_dest = tmp_path / "after-complete"
    again = system.cli("agent", "download", name, "--dest", str(again_dest), env=job)
    assert again.code == 3
    assert "TOKEN_REVOKED" in again.stderr
    assert not again_dest.exists() or list(again_dest.iterdir()) == []


def test_azure_pipelines_variable_and_cleanup(system: LocalSystem, tmp_path) -> None:
    admin = system.client()
    name = unique("profile") + ".mobileprovision"
    admin.upload_file(b"profile-bytes", name=name)
    pipeline = unique("p")
    admin.create_pipeline(pipeline)
    admin.set_pipeline_permission(name, pipeline, True)
    token = admin.start_run(pipeline, "refs/heads/main").job_token
    agent_temp = tmp_path / "agent"
    agent_temp.mkdir()

    # Azure's own SYSTEM_ACCESSTOKEN is Azure's credential: the agent never sends it anywhere.
    azure_only = system.cli("agent", "download", name, env={"SYSTEM_ACCESSTOKEN": token, "TF_BUILD": "True",
                                                             "AGENT_TEMPDIRECTORY": str(agent_temp)})
    assert azure_only.code == 2 and "MISSING_JOB_TOKEN" in azure_only.stderr
    env = {"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(agent_temp)}
    result = system.cli("agent", "download", name, env=env)
    assert result.code == 0, result.stderr
    path = agent_temp / name
    assert result.stdout.splitlines() == [str(path), f"##vso[task.setvariable variable={name}.secureFilePath]{path}"]
    assert path.read_bytes() == b"profile-bytes"

    cleaned = system.cli("agent", "cleanup", env=env)
    assert cleaned.code == 0, cleaned.stderr
    assert not path.exists()
