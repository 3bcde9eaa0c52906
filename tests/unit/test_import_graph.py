"""docs/architecture.md cannot go stale: its import graph is the one scripts/import_graph.py reads
from the source, and the reading sees the arrows that matter."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "import_graph.py"
DOC = REPO / "docs" / "architecture.md"
SERVICES = REPO / "services" / "securefiles"


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_the_architecture_doc_shows_todays_import_graph() -> None:
    result = _script("--check", str(DOC))
    assert result.returncode == 0, result.stderr
    printed = _script().stdout.strip()
    assert printed in DOC.read_text()


def test_the_graph_has_the_layering_and_no_upward_arrow() -> None:
    printed = _script().stdout
    assert "storage_adapters --> authz_peer_py" in printed  # storage asks authz through its adapter
    assert "kms_adapters --> authz_peer_py" in printed
    assert "storage_domain --> common" in printed
    assert "common -->" not in printed  # common/ knows no service and no generated code
    assert "linkStyle" not in printed  # nothing is drawn red


def test_a_stale_graph_is_refused(tmp_path: Path) -> None:
    stale = tmp_path / "architecture.md"
    stale.write_text(DOC.read_text().replace("storage_domain --> common\n", "", 1))
    result = _script("--check", str(stale))
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert _script("--write", str(stale)).returncode == 0
    assert stale.read_text() == DOC.read_text()


def test_an_upward_arrow_is_drawn_red(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when it runs: its own directory first
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    import_graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(import_graph)
    # As before issue #18: common/ imported authz's generated stubs (common/service_clients.py).
    drawn = import_graph.mermaid({("common", "authz/v1"), ("storage/adapters", "common"),
                                  ("storage/domain", "authz/v1")})
    assert "  common --> authz_v1\n" in drawn
    assert "  linkStyle 0,2 stroke:#d00" in drawn  # common's arrow and the domain's, not the adapter's


def _defines(path: Path, dotted: str) -> bool:
    """Whether module `path` defines `Name` or `Class.member` (at its top level / in the class body)."""
    body: list[ast.stmt] = ast.parse(path.read_text()).body
    for part in dotted.split("."):
        found = next((node for node in body if _name_of(node) == part), None)
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


def _name_of(node: ast.stmt) -> str | None:
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def test_every_module_and_function_the_doc_names_exists() -> None:
    # The "Before issue #18" sections name what was; every other `path.py` `Name` pair is today's code.
    sections = re.split(r"^(?=#+ )", DOC.read_text(), flags=re.M)
    today = "".join(s for s in sections if not s.startswith("### Before issue #18"))
    named = re.findall(r"`([a-z_/]+\.py)` `([A-Za-z_][\w.]*)", today)
    assert len(named) > 40  # the download path is there
    missing = [f"{module} {name}" for module, name in named
               if not (SERVICES / module).is_file() or not _defines(SERVICES / module, name)]
    assert missing == []
