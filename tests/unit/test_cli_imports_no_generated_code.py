"""The CLI (and the web console) speak the Python client's own types: no module under
`securefiles/cli` or `securefiles/web` imports generated code (`*_pb2`, `*_pb2_grpc`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "securefiles"

# Modules that still import generated code, to be moved over; the list only shrinks (a module that no
# longer needs its entry fails the test too, so the entry is taken out). Empty: it stays empty.
NOT_YET: set[str] = set()


def generated_imports(path: Path) -> set[str]:
    """Every `*_pb2` / `*_pb2_grpc` module `path` imports, however it is spelled."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module or ''}.{alias.name}" for alias in node.names] + [node.module or ""]
        else:
            continue
        found |= {name for name in names if any(part.endswith(("_pb2", "_pb2_grpc")) for part in name.split("."))}
    return found


def _modules() -> dict[str, set[str]]:
    return {str(path.relative_to(PACKAGE)): generated_imports(path)
            for folder in ("cli", "web") for path in sorted((PACKAGE / folder).rglob("*.py"))}


def test_no_cli_or_web_module_imports_generated_code() -> None:
    offending = {module: sorted(names) for module, names in _modules().items() if names and module not in NOT_YET}
    assert offending == {}


def test_the_list_of_modules_still_to_move_only_shrinks() -> None:
    clean = {module for module, names in _modules().items() if not names}
    assert NOT_YET & clean == set(), "these no longer import generated code: take them off NOT_YET"


@pytest.mark.parametrize("source", [
    "from securefiles.storage.v1 import storage_pb2",
    "import securefiles.kms.v1.kms_pb2",
    "from securefiles.kms.v1.kms_pb2 import KeyVersion",
    "from grpc_health.v1 import health_pb2_grpc as stubs",
    "from google.protobuf import struct_pb2",
])
def test_every_spelling_of_a_generated_import_is_seen(tmp_path: Path, source: str) -> None:
    module = tmp_path / "module.py"
    module.write_text(f"def f():\n    {source}\n")
    assert generated_imports(module)


# The client's flat methods return generated messages (the area clients call them); the console calls
# the area clients (`c.files.get`, not `c.get_file`). Its client is always named `c` or `client`.
def _flat_methods() -> set[str]:
    from securefiles.client.api import SecureFilesClient

    return {name for klass in SecureFilesClient.__mro__ for name, member in vars(klass).items()
            if callable(member) and not isinstance(member, classmethod | staticmethod) and not name.startswith("_")
            } - {"close", "file_resource"}


def flat_calls(path: Path) -> set[str]:
    """`c.<flat method>` / `client.<flat method>` in `path`."""
    methods = _flat_methods()
    return {f"{node.value.id}.{node.attr}" for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in ("c", "client") and node.attr in methods}


def test_the_console_calls_the_area_clients_not_the_flat_methods() -> None:
    offending = {str(path.relative_to(PACKAGE)): sorted(found) for path in sorted((PACKAGE / "web").rglob("*.py"))
                 if (found := flat_calls(path))}
    assert offending == {}


def test_a_flat_call_is_seen(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("f = lambda c: (c.get_file('x'), c.files.get('x'), c.login.sign_in('t'))\n")
    assert flat_calls(module) == {"c.get_file"}
