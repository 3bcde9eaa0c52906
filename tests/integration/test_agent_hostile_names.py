"""Hostile file names against the agent's output: what Azure Pipelines and GitHub Actions would do
with every line the agent prints (read back with the agents' own parsing rules, tests/ci_logs.py).

Names that storage now refuses (`##vso[`, `::…`) are put in place by renaming a stored file in
storage's database: files stored before the rule have them. (Names a real server cannot send at
all, such as line breaks, are in test_agent_hostile_server.py.)
"""

from __future__ import annotations

import datetime as dt
import uuid

from tests.ci_logs import azure_commands, github_commands
from tests.conftest import LocalSystem, job_token_for, unique
from tests.unit.test_file_metadata_samples import make_cert, pem


def _stored_as(system: LocalSystem, name: str, content: bytes) -> str:
    """Upload `content`, then give it `name` behind storage's back; returns the job token of a
    pipeline authorized on it."""
    placeholder = unique("placeholder")
    with system.client() as admin:
        created = admin.upload_file(content, name=placeholder)
    system.execute("storage", "UPDATE secure_files SET display_name = :name WHERE file_id = :id",
                   name=name, id=created.secure_file_id)
    return job_token_for(system, created.name)


def test_azure_runs_only_the_agents_own_command_for_a_name_carrying_one(system: LocalSystem, tmp_path) -> None:
    """`x##vso[task.setvariable variable=INJ]pwn.bin` downloaded by `x*` under TF_BUILD: the path line
    set INJ. Now the one command is ours, and it sets the path of the file that was written."""
    marker = uuid.uuid4().hex[:8]
    name = f"x{marker}##vso[task.setvariable variable=INJ]pwn.bin"
    token = _stored_as(system, name, b"payload")
    temp = tmp_path / "agent"
    temp.mkdir()
    env = {"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(temp)}
    result = system.cli("agent", "download", f"x{marker}*", env=env)
    assert result.code == 0, result.stderr
    assert (temp / name).read_bytes() == b"payload"
    commands = azure_commands(result.stdout + result.stderr)
    assert [(c.name, c.properties, c.data) for c in commands] == [
        ("task.setvariable", {"variable": f"{name}.secureFilePath"}, str(temp / name))]


def test_a_name_cannot_choose_the_azure_variable_or_its_flags(system: LocalSystem, tmp_path) -> None:
    """A name with `]` ended the properties early (variable=INJ); a `;` added `issecret=true`."""
    for name in (unique("INJ]x") + ".bin", unique("a;issecret=true;isoutput=true;b") + ".pem"):
        with system.client() as admin:
            admin.upload_file(b"content", name=name)
        token = job_token_for(system, name)
        dest = tmp_path / uuid.uuid4().hex
        result = system.cli("agent", "download", name, "--dest", str(dest),
                            env={"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True"})
        assert result.code == 0, result.stderr
        (command,) = azure_commands(result.stdout)
        assert command.properties == {"variable": f"{name}.secureFilePath"}
        assert command.data == str(dest / name)


def test_github_runs_no_command_for_a_name_at_the_start_of_a_line(system: LocalSystem, tmp_path) -> None:
    """With `--dest .` the path line is the name: `::error …::` at its start, or the legacy `##[…]`
    anywhere in it, was a workflow command."""
    for name in (f"::error title=INJ{uuid.uuid4().hex[:6]}::pwn", f"a{uuid.uuid4().hex[:6]}##[add-mask]b"):
        token = _stored_as(system, name, b"payload")
        dest = tmp_path / uuid.uuid4().hex
        dest.mkdir()
        result = system.cli("agent", "download", name, "--dest", ".", cwd=dest,
                            env={"SECUREFILES_JOB_TOKEN": token, "GITHUB_ACTIONS": "true"})
        assert result.code == 0, result.stderr
        assert (dest / name).read_bytes() == b"payload"
        assert github_commands(result.stdout + result.stderr) == []


def test_warnings_about_hostile_names_are_one_annotation(system: LocalSystem, tmp_path) -> None:
    name = f"x{uuid.uuid4().hex[:6]}##vso[task.setvariable variable=INJ]##[add-mask]y.crt"
    now = dt.datetime.now(dt.UTC)
    token = _stored_as(system, name, pem(make_cert("soon", now - dt.timedelta(days=1), now + dt.timedelta(days=5))))
    azure = system.cli("agent", "download", name, "--dest", str(tmp_path / "az"),
                       env={"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True"})
    assert azure.code == 0, azure.stderr
    assert [(c.name, c.properties) for c in azure_commands(azure.stderr)] == [("task.logissue", {"type": "warning"})]
    github = system.cli("agent", "download", name, "--dest", str(tmp_path / "gh"),
                        env={"SECUREFILES_JOB_TOKEN": token, "GITHUB_ACTIONS": "true"})
    assert github.code == 0, github.stderr
    assert [c.name for c in github_commands(github.stdout + github.stderr)] == ["warning"]


def test_an_error_naming_a_hostile_name_is_no_command(system: LocalSystem, tmp_path) -> None:
    """The error line repeats the name the job asked for."""
    token = job_token_for(system)
    missing = "nope##vso[task.setvariable variable=INJ]x ::error::y ##[add-mask]z"
    result = system.cli("agent", "download", missing, "--dest", str(tmp_path),
                        env={"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True", "GITHUB_ACTIONS": "true"})
    assert result.code == 5, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert azure_commands(result.stderr) == [] and github_commands(result.stderr) == []


def test_upload_refuses_names_that_are_ci_commands(system: LocalSystem, tmp_path) -> None:
    """Refused at upload (and rename) as well: the agent escapes what it prints, but other tools
    print the names of downloaded files too, and no real file is called like that."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    for name in ("x##vso[task.setvariable variable=INJ]pwn.bin", "::error::x", "a##[add-mask]b"):
        result = system.cli("files", "upload", str(source), "--name", name)
        assert result.code == 2 and "[INVALID_NAME]" in result.stderr, result.stderr
        assert azure_commands(result.stderr) == [] and github_commands(result.stderr) == []
    assert system.cli("files", "list", "--name-pattern", "x##vso*", "--output", "json").json() == []
