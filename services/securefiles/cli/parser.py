"""The `securefiles` argument parser: options anywhere on the line, errors in our words.

argparse does the parsing; this module gives every command the global options (`--project`,
`--output`), a help text with an example, the exit codes and the environment it reads, a
group's help when its command is missing, and one-line errors that name no argparse internals.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeAlias

from securefiles.cli.help_text import epilog_for, is_client_command

OUTPUT_CHOICES = ("table", "json")
# The parser that parsed last (the deepest command): its --help is the one to point at.
_parsing: list[str] = []


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr with exit 2, in plain words."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]  # one signature for typeshed's three overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        _parsing.append(self.prog)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        prog = _parsing[-1] if _parsing else self.prog
        print(f"securefiles: error: {plain_message(message)} (see '{prog} --help')", file=sys.stderr)
        sys.exit(2)


# What `add_subparsers` gives on a CommandParser: where each command module registers its commands.
Subcommands: TypeAlias = "argparse._SubParsersAction[CommandParser]"

_REWRITES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"argument (?:COMMAND|command|action): invalid choice: '([^']*)' \(choose from (.*)\)"),
     lambda m: f"unknown command {m[1]!r}; choose from {_choices(m[2])}"),
    (re.compile(r"argument ([^:]+): invalid choice: '([^']*)' \(choose from (.*)\)"),
     lambda m: f"{_argument(m[1])}: {m[2]!r} is not one of {_choices(m[3])}"),
    (re.compile(r"argument ([^:]+): invalid int value: '([^']*)'"),
     lambda m: f"{_argument(m[1])}: {m[2]!r} is not a whole number"),
    (re.compile(r"argument ([^:]+): expected one argument"),
     lambda m: f"{_argument(m[1])} needs a value"),
    (re.compile(r"the following arguments are required: (.*)"),
     lambda m: f"missing {', '.join(_argument(a) for a in m[1].split(', '))}"),
    (re.compile(r"unrecognized arguments: (.*)"),
     lambda m: f"unexpected {m[1]!r}"),
    (re.compile(r"argument ([^:]+): (.*)"),
     lambda m: f"{_argument(m[1])}: {m[2]}"),
)


def _choices(text: str) -> str:
    return ", ".join(c.strip().strip("'") for c in text.split(","))


def _argument(name: str) -> str:
    """`--name/-n` or `-o/--output` as the long option; positional `path` as PATH."""
    options = name.split("/")
    long = [o for o in options if o.startswith("--")]
    if long:
        return long[0]
    return name if name.startswith("-") else name.upper()


def plain_message(message: str) -> str:
    for pattern, rewrite in _REWRITES:
        match = pattern.fullmatch(message)
        if match:
            return rewrite(match)
    return message


def _show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands directly under `parser` (none for a leaf)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) of the tree, groups before their commands."""
    yield path, parser
    for name, child in subcommands(parser).items():
        yield from walk(child, (*path, name))


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings]


def finish(root: argparse.ArgumentParser) -> None:
    """Give every command the global options and its help; groups show their help when bare."""
    for path, parser in walk(root):
        if subcommands(parser):
            parser.set_defaults(handler=_show_help(parser))
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    action.required = False
                    action.metavar = "COMMAND"
            continue
        if not path:
            continue
        parser.epilog = epilog_for(path)
        if not is_client_command(path):
            continue
        known = option_strings(parser)
        if "--project" not in known:
            # SUPPRESS: given after the command it wins; not given, the global one stays.
            parser.add_argument("--project", default=argparse.SUPPRESS,
                                help="project to act on (default: the client config's, else 'default')")
        if "--output" not in known:
            parser.add_argument("--output", "-o", choices=OUTPUT_CHOICES, default=argparse.SUPPRESS,
                                help="table (default) or json")
