"""Lines the agent prints into a CI system's log, escaped for that system's command syntax.

A CI agent reads a job's output line by line and acts on commands in it:
- Azure Pipelines takes `##vso[area.event k=v;…]data` found *anywhere* in a line; in property values
  and data it decodes `%3B` `;`, `%0D` CR, `%0A` LF, `%5D` `]` and (agents that decode percents)
  `%AZP25` `%`; `##[error]`-style prefixes format a line.
- GitHub Actions takes `::command k=v,…::data` at the start of a line (after white space), and
  still the legacy `##[command k=v;]data` anywhere in a line; it decodes `%25 %0D %0A` in data and
  also `%3A %2C` in property values. Step outputs go to `$GITHUB_OUTPUT` as `key=value` lines, or
  `key<<DELIMITER` … `DELIMITER` for values with line breaks.

Names and paths are data from strangers, so every line that carries one goes through `log_line`
(whatever CI we think we run under: a container step may not see `TF_BUILD`, but its output
still reaches the agent), and command arguments through the system's own escaping.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_AZURE_COMMAND = re.compile(r"##vso\[", re.IGNORECASE)
_LEGACY_COMMAND = re.compile(r"##\[")
_LEADING_COMMAND = re.compile(r"^(\s*):(?=:)")
_OUTPUT_NAME = re.compile(r"[^A-Za-z0-9_-]")


def log_line(text: str) -> str:
    """`text` safe to print as (part of) a log line: no line breaks or control characters, and no
    CI command in it or at its start. The markers are broken visibly (`##vso%5B`, `##%5B`, `%3A:`)."""
    text = _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", text)
    text = _AZURE_COMMAND.sub(lambda m: m.group()[:-1] + "%5B", text)
    text = _LEGACY_COMMAND.sub("##%5B", text)
    return _LEADING_COMMAND.sub(r"\1%3A", text)


# -- Azure Pipelines ------------------------------------------------------------------------


def azure_escape(value: str) -> str:
    """A property value or data of a `##vso[…]` command, as the Azure agent unescapes it."""
    return (value.replace("%", "%AZP25").replace(";", "%3B").replace("\r", "%0D").replace("\n", "%0A")
            .replace("]", "%5D"))


def azure_command(command: str, properties: Mapping[str, str], data: str) -> str:
    """`##vso[command k=v;…]data` with every value and the data escaped (`command` is ours)."""
    props = ";".join(f"{key}={azure_escape(value)}" for key, value in properties.items())
    return f"##vso[{command}{' ' + props if props else ''}]{azure_escape(data)}"


def azure_set_variable(name: str, value: str) -> str:
    return azure_command("task.setvariable", {"variable": name}, value)


def azure_warning(message: str) -> str:
    return azure_command("task.logissue", {"type": "warning"}, log_line(message))


# -- GitHub Actions -------------------------------------------------------------------------


def github_escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(value: str) -> str:
    return github_escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github_command(command: str, properties: Mapping[str, str], data: str) -> str:
    """`::command k=v,…::data` with every value and the data escaped (`command` is ours)."""
    props = ",".join(f"{key}={github_escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{github_escape_data(data)}"


def github_warning(message: str) -> str:
    return github_command("warning", {}, log_line(message))


def github_output_name(ref: str) -> str:
    """An output name made of letters, digits, `_` and `-` only."""
    return _OUTPUT_NAME.sub("_", ref)


def github_file_entry(key: str, value: str) -> str:
    """One `$GITHUB_OUTPUT`/`$GITHUB_ENV` entry: `key=value`, or a random-delimited block when
    the value holds a line break (a fixed delimiter could be ended early by the value)."""
    if _OUTPUT_NAME.search(key) or not key:
        raise ValueError("output names are letters, digits, '_' and '-'")
    if "\n" not in value and "\r" not in value:
        return f"{key}={value}\n"
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in value:  # never, short of a forged uuid: checked as @actions/core does
        raise ValueError("the value contains the delimiter")
    return f"{key}<<{delimiter}\n{value}\n{delimiter}\n"


# -- whichever CI runs the job -----------------------------------------------------------------


def warning_line(message: str, env: Mapping[str, str]) -> str:
    """A warning as the job's CI system shows one (an annotation), else a plain `warning:` line."""
    if env.get("TF_BUILD"):
        return azure_warning(message)
    if env.get("GITHUB_ACTIONS"):
        return github_warning(message)
    return f"warning: {log_line(message)}"
