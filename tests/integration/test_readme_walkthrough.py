"""README.md's Quickstart, word for word, against a running system (in a project of its own,
so that its fixed names meet nobody else's)."""

from __future__ import annotations

import sys
from pathlib import Path

from securefiles.authz.v1 import authz_pb2
from tests.conftest import LocalSystem, unique
from tests.walkthrough import REPO, run_block, shell_block


def test_the_quickstart_runs_verbatim(system: LocalSystem, tmp_path: Path) -> None:
    project = unique("quickstart")
    with system.client() as admin:
        admin.create_project(project)
    checkout = tmp_path / "checkout"  # laid out like the checkout: `. .venv/bin/activate` works
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    result = run_block(shell_block(REPO / "README.md", "quickstart"), checkout,
                       system.env(SECUREFILES_PROJECT=project))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "SERVING" in result.stdout and "UNREACHABLE" not in result.stdout
    assert "subject=CN=iOS Distribution: Example" in result.stdout  # a real certificate, parsed
    assert "metadata:     type=pkcs12" in lines
    assert "job-temp/signing.p12" in lines and "identical" in lines
    assert "denied after the run (exit 3)" in lines and "TOKEN_REVOKED" in result.stderr
    assert "removed 1 file(s) from job-temp" in lines
    assert not (checkout / "job-temp" / "signing.p12").exists()
    with system.client(project=project) as admin:
        runs = list(admin.list_runs())
    assert [r.state for r in runs] == [authz_pb2.Run.STATE_COMPLETED]  # the run it started, and completed
