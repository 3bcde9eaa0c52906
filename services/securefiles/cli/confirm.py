"""Typed confirmation before something that cannot be undone."""

from __future__ import annotations

import sys

from securefiles.cli.output import terminal_safe
from securefiles.common.errors import InvalidArgument


def confirm_typed(expected: str, consequence: str) -> None:
    """Say what will happen and make the person type `expected`; anything else changes nothing."""
    shown = terminal_safe(expected)
    sys.stderr.write(f"{terminal_safe(consequence)}\nType {shown} to confirm: ")
    sys.stderr.flush()
    if sys.stdin.readline().rstrip("\r\n") != expected:
        raise InvalidArgument("confirmation did not match; nothing was changed", reason="NOT_CONFIRMED")


def require_yes_or_terminal(yes: bool, what: str) -> bool:
    """True when the person must still confirm at the terminal; without a terminal, --yes is required."""
    if yes:
        return False
    if not sys.stdin.isatty():
        raise InvalidArgument(f"{what} cannot be undone: pass --yes (stdin is not a terminal to confirm on)",
                              reason="CONFIRMATION_REQUIRED")
    return True
