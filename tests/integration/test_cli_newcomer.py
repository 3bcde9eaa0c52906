"""The CLI does what the README says: options anywhere, mistakes refused before they change
anything, typos in project names noticed, deletes confirmed, and the verbs for every RPC."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from securefiles.client.config import ClientConfig
from tests.conftest import LocalSystem, unique, user_token


def _project(system: LocalSystem) -> str:
    project = unique("newcomer")
    with system.client() as admin:
        admin.create_project(project)
    return project


def _file_and_pipeline(system: LocalSystem, project: str = "default") -> tuple[str, str]:
    name, pipeline = unique("cert") + ".pem", unique("release")
    with system.client(project=project) as admin:
        admin.upload_file(b"-----BEGIN CERTIFICATE-----\n", name=name)
        admin.create_pipeline(pipeline)
        admin.set_pipeline_permission(name, pipeline, True)
    return name, pipeline


def _names(system: LocalSystem, project: str = "default") -> set[str]:
    with system.client(project=project) as admin:
        return {f.display_name for f in admin.list_files()}


def test_project_and_output_work_after_the_command_on_every_kind_of_command(system: LocalSystem, tmp_path) -> None:
    project = _project(system)
    name, pipeline = _file_and_pipeline(system, project)
    listed = system.cli("files", "list", "--project", project, "--output", "json")
    assert listed.code == 0, listed.stderr
    assert [f["displayName"] for f in listed.json()] == [name]
    assert system.cli("--project", project, "files", "list", "-o", "json").json() == listed.json()

    started = system.cli("runs", "start", pipeline, "--branch", "refs/heads/main", "--project", project, "-o", "json")
    assert started.code == 0, started.stderr
    job = {"SECUREFILES_JOB_TOKEN": started.json()["jobToken"]}
    dest = tmp_path / "job"
    downloaded = system.cli("agent", "download", name, "--dest", str(dest), "--project", project, "--output", "json",
                            env=job)
    assert downloaded.code == 0, downloaded.stderr
    assert downloaded.json() == [{"name": name, "path": str(dest / name)}]
    cleaned = system.cli("agent", "cleanup", "--dest", str(dest), "--output", "json", env=job)
    assert cleaned.code == 0, cleaned.stderr
    assert cleaned.json() == {"removed": 1, "directory": str(dest)}
    assert not (dest / name).exists()


def test_a_project_that_does_not_exist_is_not_an_empty_library(system: LocalSystem) -> None:
    missing = system.cli("files", "list", "--project", unique("typo"))
    assert missing.code == 5 and "PROJECT_NOT_FOUND" in missing.stderr, missing.stderr
    upper = system.cli("files", "list", "--project", "iOS")
    assert upper.code == 2 and "INVALID_PROJECT_ID" in upper.stderr
    assert "lowercase letters, digits and '-'" in upper.stderr
    created = system.cli("projects", "create", "Mobile")
    assert created.code == 2 and "lowercase letters, digits and '-'" in created.stderr


def test_a_zero_ttl_and_an_empty_name_are_refused_and_change_nothing(system: LocalSystem, tmp_path) -> None:
    project = _project(system)
    _name, pipeline = _file_and_pipeline(system, project)
    for ttl in ("0s", "0m", ""):
        refused = system.cli("--project", project, "runs", "start", pipeline, "--branch", "refs/heads/main",
                             "--ttl", ttl)
        assert refused.code == 2, (ttl, refused.stderr)
        assert "INVALID_TTL" in refused.stderr or "INVALID_DURATION" in refused.stderr
    assert system.cli("--project", project, "runs", "list", "-o", "json").json() == []

    source = tmp_path / "cert.pem"
    source.write_bytes(b"x")
    before = _names(system, project)
    unnamed = system.cli("--project", project, "files", "upload", str(source), "--name", "")
    assert unnamed.code == 2 and "INVALID_NAME" in unnamed.stderr and "empty" in unnamed.stderr
    assert _names(system, project) == before


def test_completing_a_run_twice_says_it_was_already_complete(system: LocalSystem) -> None:
    _name, pipeline = _file_and_pipeline(system)
    run = system.cli("runs", "start", pipeline, "--branch", "refs/heads/main", "-o", "json").json()
    first = system.cli("runs", "complete", str(run["run"]["runId"]), "-o", "json")
    assert first.code == 0 and first.json()["state"] == "STATE_COMPLETED", first.stderr
    again = system.cli("runs", "complete", str(run["run"]["runId"]))
    assert again.code == 1
    assert f"run {run['run']['runId']} was already completed at " in again.stderr
    assert "RUN_ALREADY_COMPLETED" in again.stderr


def _delete_on_a_terminal(system: LocalSystem, name: str, typed: str) -> subprocess.CompletedProcess[str]:
    """`files delete NAME` with a terminal as stdin, on which `typed` is entered."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "securefiles", "files", "delete", name], stdin=terminal,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=system.env(), text=True)
        os.close(terminal)
        os.write(controller, typed.encode() + b"\n")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_files_delete_asks_on_a_terminal_and_needs_yes_otherwise(system: LocalSystem) -> None:
    name = unique("precious") + ".p12"
    with system.client() as admin:
        admin.upload_file(b"precious", name=name)

    scripted = system.cli("files", "delete", name, input_text=f"{name}\n")
    assert scripted.code == 2 and "CONFIRMATION_REQUIRED" in scripted.stderr and "--yes" in scripted.stderr
    assert name in _names(system)

    wrong = _delete_on_a_terminal(system, name, "something-else")
    assert wrong.returncode == 2 and "NOT_CONFIRMED" in wrong.stderr, wrong.stderr
    assert "cannot be recovered" in wrong.stderr
    assert name in _names(system)

    typed = _delete_on_a_terminal(system, name, name)
    assert typed.returncode == 0, typed.stderr
    assert name not in _names(system)

    other = unique("scripted") + ".p12"
    with system.client() as admin:
        admin.upload_file(b"x", name=other)
    assert system.cli("files", "delete", other, "--yes").code == 0
    assert other not in _names(system)
    missing = system.cli("files", "delete", unique("never-there"), "--yes")
    assert missing.code == 5


def test_roles_list_and_delete(system: LocalSystem) -> None:
    name, _ = _file_and_pipeline(system)
    reader = f"user:{unique('reader')}"
    assert system.cli("roles", "assign", "--principal", reader, "--role", "reader", "--file", name).code == 0
    listed = system.cli("roles", "list", "--file", name, "-o", "json")
    assert listed.code == 0, listed.stderr
    assert (reader, "reader") in _roles(listed.json()["roleAssignments"])
    assert listed.json()["inheritFromLibrary"] is True
    reader_env = {"SECUREFILES_TOKEN": user_token(system, reader)}
    assert system.cli("files", "show", name, env=reader_env).code == 0

    deleted = system.cli("roles", "delete", "--principal", reader, "--file", name)
    assert deleted.code == 0, deleted.stderr
    assert (reader, "reader") not in _roles(system.cli(
        "roles", "list", "--file", name, "-o", "json").json()["roleAssignments"])
    assert system.cli("files", "show", name, env=reader_env).code == 3
    again = system.cli("roles", "delete", "--principal", reader, "--file", name)
    assert again.code == 5 and "ROLE_ASSIGNMENT_NOT_FOUND" in again.stderr

    library_user = f"user:{unique('dev')}"
    assert system.cli("roles", "assign", "--principal", library_user, "--role", "user").code == 0
    assert (library_user, "user") in _roles(system.cli("roles", "list", "-o", "json").json()["roleAssignments"])


def _roles(assignments: list[dict]) -> set[tuple[str, str]]:
    return {(a["principal"], a["role"]) for a in assignments}


def test_files_permissions_and_inheritance(system: LocalSystem) -> None:
    name, pipeline = _file_and_pipeline(system)
    library_reader = f"user:{unique('libreader')}"
    assert system.cli("roles", "assign", "--principal", library_reader, "--role", "reader").code == 0
    shown = system.cli("files", "permissions", name, "-o", "json")
    assert shown.code == 0, shown.stderr
    permissions = shown.json()
    assert permissions["allPipelines"] is False
    assert [p["displayName"] for p in permissions["pipelines"]] == [pipeline]
    assert ("user:admin", "administrator") in _roles(permissions["roleAssignments"])  # the uploader
    assert (library_reader, "reader") in _roles(permissions["libraryRoleAssignments"])
    table = system.cli("files", "permissions", name)
    assert pipeline in table.stdout and library_reader in table.stdout

    reader_env = {"SECUREFILES_TOKEN": user_token(system, library_reader)}
    assert system.cli("files", "show", name, env=reader_env).code == 0
    off = system.cli("files", "inheritance", name, "off", "-o", "json")
    assert off.code == 0 and off.json()["inheritFromLibrary"] is False, off.stderr
    # A member of the library who may not see the file is told what a missing file gets (no oracle).
    assert system.cli("files", "show", name, env=reader_env).code == 5
    assert system.cli("files", "permissions", name, "-o", "json").json()["libraryRoleAssignments"] is None
    assert system.cli("files", "inheritance", name, "on").code == 0
    assert system.cli("files", "show", name, env=reader_env).code == 0
    assert system.cli("files", "inheritance", name, "maybe").code == 2


def test_pipelines_delete_waits_for_running_runs_and_never_reuses_the_id(system: LocalSystem, tmp_path) -> None:
    project = _project(system)
    name, pipeline = _file_and_pipeline(system, project)
    run = system.cli("--project", project, "runs", "start", pipeline, "--branch", "refs/heads/main", "-o",
                     "json").json()
    busy = system.cli("--project", project, "pipelines", "delete", pipeline)
    assert busy.code == 1 and "PIPELINE_HAS_RUNNING_RUNS" in busy.stderr and f"id {run['run']['runId']}" in busy.stderr
    listed = system.cli("--project", project, "pipelines", "list", "-o", "json").json()
    assert pipeline in [p["displayName"] for p in listed]

    assert system.cli("--project", project, "runs", "complete", str(run["run"]["runId"])).code == 0
    deleted = system.cli("--project", project, "pipelines", "delete", pipeline)
    assert deleted.code == 0, deleted.stderr
    assert system.cli("--project", project, "pipelines", "list", "-o", "json").json() == []
    permissions = system.cli("--project", project, "files", "permissions", name, "-o", "json").json()
    assert permissions["pipelines"] == [] and permissions["allPipelines"] is False
    assert system.cli("--project", project, "pipelines", "delete", pipeline).code == 5

    # The name can be used again, for a pipeline with a new id and none of the old one's permissions.
    recreated = system.cli("--project", project, "pipelines", "create", pipeline, "-o", "json").json()
    assert recreated["pipelineId"] != int(run["run"]["pipeline"].rsplit("/", 1)[1])
    fresh = system.cli("--project", project, "runs", "start", pipeline, "--branch", "refs/heads/main", "-o",
                       "json").json()
    denied = system.cli("--project", project, "agent", "download", name, "--dest", str(tmp_path),
                        env={"SECUREFILES_JOB_TOKEN": fresh["jobToken"]})
    assert denied.code == 3 and "PIPELINE_NOT_AUTHORIZED" in denied.stderr
    assert f"secure file '{name}'" in denied.stderr  # the denial names the file


def test_runs_list_newest_first_by_pipeline_and_running(system: LocalSystem) -> None:
    project = _project(system)
    _name, first = _file_and_pipeline(system, project)
    _other, second = _file_and_pipeline(system, project)
    started = [system.cli("--project", project, "runs", "start", p, "--branch", "refs/heads/main", "-o",
                          "json").json() for p in (first, second, first)]
    assert system.cli("--project", project, "runs", "complete", str(started[0]["run"]["runId"])).code == 0

    listed = system.cli("--project", project, "runs", "list", "-o", "json").json()
    assert [r["runId"] for r in listed] == [r["run"]["runId"] for r in reversed(started)]
    pipelines = system.cli("--project", project, "pipelines", "list", "-o", "json").json()
    names = {p["name"]: p["displayName"] for p in pipelines}
    assert [names[r["pipeline"]] for r in listed] == [first, second, first]
    assert [r["state"] for r in listed] == ["STATE_RUNNING", "STATE_RUNNING", "STATE_COMPLETED"]
    of_first = system.cli("--project", project, "runs", "list", "--pipeline", first, "-o", "json").json()
    assert [r["runId"] for r in of_first] == [started[2]["run"]["runId"], started[0]["run"]["runId"]]
    running = system.cli("--project", project, "runs", "list", "--running", "-o", "json").json()
    assert [r["runId"] for r in running] == [started[2]["run"]["runId"], started[1]["run"]["runId"]]
    table = system.cli("--project", project, "runs", "list")
    assert table.code == 0 and first in table.stdout and "COMPLETED" in table.stdout
    assert "STATE_" not in table.stdout  # the table shows the word; JSON the proto's name

    with system.client(project=project) as admin:  # pages follow each other without gaps
        assert [r.run_id for r in admin.list_runs(page_size=1)] == [r["runId"] for r in listed]


def test_groups_list(system: LocalSystem) -> None:
    group, member = f"group:{unique('approvers')}", f"user:{unique('approver')}"
    assert system.cli("groups", "add-member", group, member).code == 0
    listed = system.cli("groups", "list", "-o", "json")
    assert listed.code == 0, listed.stderr
    assert {"name": group, "members": [member]} in listed.json()
    assert system.cli("groups", "remove-member", group, member).code == 0
    assert group not in [g["name"] for g in system.cli("groups", "list", "-o", "json").json()]


def test_services_down_hint_at_starting_them(system: LocalSystem, tmp_path: Path) -> None:
    closed = ClientConfig(storage="127.0.0.1:9", authz="127.0.0.1:9", kms={"eu": "127.0.0.1:9"},
                          ca_file=system.state_dir / "pki" / "ca.pem", token=system.admin_token)
    closed.write(tmp_path / "client.toml")
    down = system.cli("files", "list", env={"SECUREFILES_CONFIG": str(tmp_path / "client.toml")})
    assert down.code == 1
    assert down.stderr.count("\n") == 1 and "UNAVAILABLE" in down.stderr
    assert "make run" in down.stderr and "securefiles status" in down.stderr
    status = system.cli("status", env={"SECUREFILES_CONFIG": str(tmp_path / "client.toml")})
    assert status.code == 1 and "make run" in status.stderr
