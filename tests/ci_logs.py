"""How CI agents read a job's log, written after their public sources, so tests can check what an
agent would *do* with our output rather than how it looks.

- Azure Pipelines agent (`Command.TryParse`): the first `##vso[` anywhere in a line starts a
  command; properties up to the first `]`, split on `;`; values and data unescaped
  (`%AZP25 %3B %0D %0A %5D`).
- GitHub Actions runner (`ActionCommand.TryParseV2`, then `TryParse`): `::command props::data` at the
  start of the line after leading white space, or the legacy `##[command props]data` anywhere in it,
  for the commands the runner registers.
- `$GITHUB_OUTPUT`: `key=value` lines and `key<<DELIMITER` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GITHUB_COMMANDS = frozenset({
    "set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher", "remove-matcher", "debug",
    "warning", "error", "notice", "group", "endgroup", "echo", "stop-commands",
})


@dataclass
class Command:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _azure_unescape(value: str) -> str:
    for token, replacement in ((";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D"), ("%", "%AZP25")):
        value = value.replace(replacement, token)
    return value


def azure_commands(output: str) -> list[Command]:
    """Every command the Azure agent would run for `output`."""
    commands = []
    for line in output.splitlines():
        start = line.find("##vso[")
        if start < 0:
            continue
        end = line.find("]", start)
        if end < 0:
            continue
        info = line[start + len("##vso["):end]
        name, _, props = info.partition(" ")
        if len([part for part in name.split(".") if part]) != 2:
            continue
        command = Command(name)
        for prop in (p for p in props.split(";") if p):
            key, sep, value = prop.partition("=")
            if sep and key and value:
                command.properties[key] = _azure_unescape(value)
        command.data = _azure_unescape(line[end + 1:])
        commands.append(command)
    return commands


def github_commands(output: str) -> list[Command]:
    """Every command the GitHub runner would run for `output`."""
    commands = []
    for line in output.splitlines():
        command = _github_v2(line) or _github_v1(line)
        if command is not None:
            commands.append(command)
    return commands


def _github_v2(line: str) -> Command | None:
    line = line.lstrip()
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    name, _, props = line[2:end].partition(" ")
    if name not in GITHUB_COMMANDS:
        return None
    command = Command(name)
    for prop in (p for p in props.strip().split(",") if p):
        key, sep, value = prop.partition("=")
        if sep and key and value:
            command.properties[key] = (value.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":")
                                       .replace("%2C", ",").replace("%25", "%"))
    command.data = line[end + 2:].replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
    return command


def _github_v1(line: str) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    name = line[start + 3:end].partition(" ")[0]
    if name not in GITHUB_COMMANDS:
        return None
    return Command(name, {}, line[end + 1:])


def github_outputs(text: str) -> dict[str, str]:
    """The outputs a `$GITHUB_OUTPUT` file sets."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, _, delimiter = line.partition("<<")
            value = []
            while index < len(lines) and lines[index] != delimiter:
                value.append(lines[index])
                index += 1
            index += 1
            outputs[key] = "\n".join(value)
        elif "=" in line:
            key, _, value = line.partition("=")
            outputs[key] = value
    return outputs
