"""The README walkthroughs as tests run them: verbatim, with bash, as a newcomer would."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shell_block(document: Path, name: str) -> str:
    """The ```sh block right after `<!-- walkthrough: NAME ... -->` in `document`."""
    text = document.read_text()
    match = re.search(rf"<!-- walkthrough: {re.escape(name)}\b[^>]*-->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert match, f"{document.name} has no walkthrough block named {name!r}"
    return match.group(1)


def run_block(block: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the block with bash, stopping at the first command that fails (as `set -e` does)."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
