"""The `securefiles` command line as a newcomer meets it: help, options anywhere, plain errors,
shell completion. In process (the parser) or as a subprocess; no services needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from securefiles.cli.help_text import LOCAL_COMMANDS
from securefiles.cli.main import build_parser, main
from securefiles.cli.parser import subcommands, walk

ROOT = build_parser()
LEAVES = [path for path, parser in walk(ROOT) if path and not subcommands(parser)]
CLIENT_LEAVES = [path for path in LEAVES if path not in LOCAL_COMMANDS]
# Positional arguments that make each command's line complete (the rest take none).
POSITIONALS = {
    ("serve",): ["storage"], ("db", "upgrade"): ["authz"], ("completion",): ["bash"],
    ("files", "upload"): ["f.p12"], ("files", "show"): ["f"], ("files", "update"): ["f"],
    ("files", "delete"): ["f"], ("files", "replace"): ["f", "g"], ("files", "versions"): ["f"],
    ("files", "rollback"): ["f", "--to-version", "1"], ("files", "permissions"): ["f"],
    ("files", "inheritance"): ["f", "off"], ("projects", "create"): ["p"],
    ("roles", "assign"): ["--principal", "user:b", "--role", "user"], ("roles", "delete"): ["--principal", "user:b"],
    ("pipelines", "create"): ["p"], ("pipelines", "authorize"): ["f", "p"], ("pipelines", "revoke"): ["f", "p"],
    ("pipelines", "delete"): ["p"], ("runs", "start"): ["p", "--branch", "main"], ("runs", "complete"): ["1"],
    ("runs", "request"): ["f"], ("tokens", "issue"): ["user:b"], ("checks", "add"): ["f", "exclusive-lock"],
    ("checks", "list"): ["f"], ("checks", "delete"): ["f", "1"], ("approvals", "approve"): ["1"],
    ("approvals", "reject"): ["1"], ("groups", "add-member"): ["group:g", "user:u"],
    ("groups", "remove-member"): ["group:g", "user:u"], ("keys", "disable"): ["1"], ("keys", "enable"): ["1"],
    ("keys", "destroy"): ["1"], ("access", "request"): ["--reason", "r"], ("access", "approve"): ["1"],
    ("access", "revoke"): ["1"], ("agent", "download"): ["f"],
    ("trusts", "add"): ["t", "--pipeline", "p", "--github", "o/r"], ("trusts", "show"): ["t"],
    ("trusts", "delete"): ["t"], ("tokens", "revoke"): ["abc"],
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securefiles", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_command_help_shows_an_example_the_exit_codes_and_the_environment(path) -> None:
    parser = dict(walk(ROOT))[path]
    text = parser.format_help()
    example = text.split("example:\n", 1)[1].splitlines()[0].strip()
    assert example.startswith("securefiles " + " ".join(path)) or "securefiles " + " ".join(path) in example
    assert "exit codes:" in text and "4 checks pending" in text and "5 not found" in text
    assert "environment:" in text
    if path not in LOCAL_COMMANDS:
        assert "SECUREFILES_CONFIG" in text and "--project" in text and "--output" in text


def test_the_examples_parse(capsys) -> None:
    """Each help's example is a line the parser accepts (the example is not made up)."""
    import shlex

    for path in LEAVES:
        text = dict(walk(ROOT))[path].format_help()
        example = text.split("example:\n", 1)[1].splitlines()[0].split("  #", 1)[0].strip()
        words = shlex.split(example)
        if words[0] == "eval":  # the completion example wraps the command
            words = shlex.split(words[1].removeprefix("$(").removesuffix(")"))
        if "=" in words[0]:  # an environment assignment before the command
            words = words[words.index("securefiles"):]
        assert words[0] == "securefiles", example
        args = [w for w in words[1:] if w != "..."]
        assert ROOT.parse_args(args).handler, example


@pytest.mark.parametrize("path", CLIENT_LEAVES, ids=" ".join)
def test_project_and_output_are_accepted_anywhere(path) -> None:
    line = [*path, *POSITIONALS.get(path, [])]
    after = ROOT.parse_args([*line, "--project", "ios", "--output", "json"])
    assert (after.project, after.output) == ("ios", "json")
    before = ROOT.parse_args(["--project", "ios", "--output", "json", *line])
    assert (before.project, before.output) == ("ios", "json")
    neither = ROOT.parse_args(line)
    assert (neither.project, neither.output) == (None, "table")
    short = ROOT.parse_args([*line, "-o", "json"])
    assert short.output == "json"


def test_no_arguments_prints_the_help() -> None:
    result = _run()
    assert result.returncode == 0
    assert "usage: securefiles" in result.stdout and "files" in result.stdout and "make run" in result.stdout


def test_a_group_without_its_command_prints_its_help() -> None:
    result = _run("files")
    assert result.returncode == 0
    assert "upload" in result.stdout and "permissions" in result.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["files", "bogus"], "unknown command 'bogus'; choose from upload, list,"),
    (["bogus"], "unknown command 'bogus'; choose from up, serve,"),
    (["files", "list", "--bogus"], "unexpected '--bogus' (see 'securefiles files list --help')"),
    (["runs", "start"], "missing PIPELINE, --branch (see 'securefiles runs start --help')"),
    (["agent", "download", "f", "--retry-count", "many"], "--retry-count: 'many' is not a whole number"),
    (["files", "list", "--output", "yaml"], "--output: 'yaml' is not one of table, json"),
    (["files", "upload"], "missing PATH"),
    (["files", "list", "--name-pattern"], "--name-pattern needs a value"),
])
def test_mistakes_are_one_plain_line_with_exit_2(capsys, args, expected) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("securefiles: error: ")
    assert expected in err
    for internal in ("argument action", "argument command", "invalid choice", "the following arguments"):
        assert internal not in err


def test_an_invalid_project_says_what_a_project_id_is(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["files", "list", "--project", "iOS"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid project 'iOS'" in err and "lowercase letters, digits and '-'" in err
    assert "[INVALID_PROJECT_ID]" in err


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers after `words` (the last one is being typed)."""
    program = (f'{script}\nCOMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n'
               '_securefiles; printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_completes_commands_and_options() -> None:
    script = _run("completion", "bash").stdout
    assert _complete(script, "securefiles", "fi") == ["files"]
    assert set(_complete(script, "securefiles", "files", "")) >= {"upload", "list", "permissions", "inheritance"}
    assert _complete(script, "securefiles", "--project", "ios", "files", "del") == ["delete"]
    assert set(_complete(script, "securefiles", "files", "delete", "x", "--")) >= {"--yes", "--project", "--output"}
    assert _complete(script, "securefiles", "agent", "download", "--ret") == ["--retry-count"]


def test_zsh_completion_loads_the_same_function() -> None:
    script = _run("completion", "zsh").stdout
    assert script.startswith("#compdef securefiles")
    assert "bashcompinit" in script and "complete -o default -F _securefiles securefiles" in script
    zsh = subprocess.run(["sh", "-c", "command -v zsh"], capture_output=True, text=True).stdout.strip()
    if zsh:  # where zsh is installed, the script loads and registers the completion
        loaded = subprocess.run([zsh, "-f", "-c", f"{script}\nprint -r -- ${{_comps[securefiles]}}"],
                                capture_output=True, text=True, timeout=30)
        assert loaded.returncode == 0 and loaded.stdout.strip(), loaded.stderr


def test_an_outage_hints_at_what_to_do() -> None:
    from securefiles.cli.main import error_line
    from securefiles.common.errors import PermissionDenied, Unavailable

    unreachable = error_line(Unavailable("service unavailable: failed to connect", reason="UNAVAILABLE"))
    assert "make run" in unreachable and unreachable.endswith("[UNAVAILABLE]")
    peer = error_line(Unavailable("kms is unavailable", reason="KMS_UNAVAILABLE"))
    assert "securefiles status" in peer and "make run" not in peer
    assert "status" not in error_line(PermissionDenied("no", reason="PIPELINE_NOT_AUTHORIZED"))
    assert error_line(PermissionDenied("name \x1b[31mred", reason="X")) == "securefiles: error: name \\x1b[31mred [X]"
