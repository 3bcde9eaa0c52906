"""What the agent prints, read back the way the Azure agent and the GitHub runner read it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securefiles.cli.ci_commands import (
    azure_escape,
    azure_set_variable,
    github_escape_data,
    github_escape_property,
    github_file_entry,
    log_line,
    warning_line,
)
from tests.ci_logs import azure_commands, github_commands, github_outputs

HOSTILE = [
    "x##vso[task.setvariable variable=INJ]pwn.bin",
    "INJ]x.bin",
    "a;issecret=true;b.pem",
    "x##VSO[task.complete result=Failed]",
    "::error title=INJ::pwn",
    "  ::add-mask::secret",
    "a##[add-mask]b",
    "##[stop-commands]token",
    "line\nbreak::set-output name=x::y",
    "cr\r##vso[task.setvariable variable=CR]1",
    "100%AZP25%0A%3B%5D%25%0D.pem",
    "\x1b]0;title\x07\x9b2J",
]


@pytest.mark.parametrize(("value", "escaped"), [
    ("plain", "plain"),
    ("a;b]c", "a%3Bb%5Dc"),
    ("50%", "50%AZP25"),
    ("%3B", "%AZP253B"),
    ("two\r\nlines", "two%0D%0Alines"),
])
def test_azure_escape(value: str, escaped: str) -> None:
    assert azure_escape(value) == escaped


@pytest.mark.parametrize(("value", "data", "prop"), [
    ("a:b,c", "a:b,c", "a%3Ab%2Cc"),
    ("50%\n", "50%25%0A", "50%25%0A"),
])
def test_github_escape(value: str, data: str, prop: str) -> None:
    assert github_escape_data(value) == data
    assert github_escape_property(value) == prop


@pytest.mark.parametrize("name", HOSTILE)
def test_a_log_line_runs_no_command_in_either_ci(name: str) -> None:
    line = log_line(f"/agent/_temp/{name}")
    assert "\n" not in line and "\r" not in line
    assert azure_commands(line) == []
    assert github_commands(line) == []
    assert github_commands(log_line(name)) == [] and azure_commands(log_line(name)) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_the_azure_variable_is_set_to_the_path_and_nothing_else(name: str) -> None:
    path = f"/agent/_temp/{name}"
    commands = azure_commands(azure_set_variable(f"{name}.secureFilePath", path))
    assert len(commands) == 1
    assert commands[0].name == "task.setvariable"
    assert commands[0].properties == {"variable": f"{name}.secureFilePath"}
    assert commands[0].data == path


@pytest.mark.parametrize("name", HOSTILE)
def test_warnings_are_one_annotation_in_either_ci(name: str) -> None:
    message = f"secure file {name} expires on 2030-01-01T00:00:00Z"
    azure = azure_commands(warning_line(message, {"TF_BUILD": "True"}))
    assert [(c.name, c.properties) for c in azure] == [("task.logissue", {"type": "warning"})]
    assert "\n" not in azure[0].data and "##vso[" not in azure[0].data.lower()
    github = github_commands(warning_line(message, {"GITHUB_ACTIONS": "true"}))
    assert [(c.name, c.properties) for c in github] == [("warning", {})]
    assert "\n" not in github[0].data
    plain = warning_line(message, {})
    assert azure_commands(plain) == [] and github_commands(plain) == [] and plain.startswith("warning: ")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([*"#v[]so:;%\r\n aA,=", "##vso[", "##[", "::", "%0A", "%AZP25"]), max_size=40)
       .map("".join))
def test_no_text_becomes_a_command(text: str) -> None:
    line = log_line(text)
    assert azure_commands(line) == [] and github_commands(line) == []
    (command,) = azure_commands(azure_set_variable("ref.secureFilePath", text))
    assert command.properties == {"variable": "ref.secureFilePath"} and command.data == text


@pytest.mark.parametrize("value", ["/temp/cert.pem", "/temp/a\nINJECTED=1", "/temp/b\r\nX<<EOF", "x=y"])
def test_github_output_sets_exactly_the_one_output(value: str) -> None:
    entry = github_file_entry("signing_path", value)
    assert github_outputs("earlier=1\n" + entry) == {"earlier": "1", "signing_path": value}


def test_github_output_names_are_plain() -> None:
    with pytest.raises(ValueError):
        github_file_entry("a<<b", "v")
