"""What the CLI prints for people reaches a terminal: text from the server (names, parsed
certificate subjects) is shown escaped, never acted on as an escape sequence."""

from __future__ import annotations

import pytest

from securefiles.cli.output import print_table

HOSTILE = "CN=evil\x1b]0;pwned\x07\x1b[2J\u202etxt.exe"


def test_table_cells_from_the_server_are_shown_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["NAME", "SUBJECT"], [["cert.pem", HOSTILE]])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "CN=evil\\x1b]0;pwned\\x07\\x1b[2J\\u202etxt.exe" in out
