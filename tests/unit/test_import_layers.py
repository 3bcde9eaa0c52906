"""Arrows point down: `common/` knows no service, and a service's domain imports no gRPC, no SQL
and no generated code (the adapters translate)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from securefiles.authz.v1 import authz_pb2
from securefiles.storage.adapters.authz_client import PERMISSIONS
from securefiles.storage.domain.ports import Access

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "securefiles"
SERVICES = ("storage", "kms", "authz", "audit", "cli", "client", "web")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _sources(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*.py")) if "_pb2" not in p.name]


def test_common_imports_no_service_nor_any_generated_code_of_ours() -> None:
    upward = {f"{path.relative_to(PACKAGE)}: {name}"
              for path in _sources(PACKAGE / "common") for name in imports_of(path)
              if name.startswith(tuple(f"securefiles.{s}" for s in SERVICES))}
    assert upward == set()


@pytest.mark.parametrize("service", ["storage", "kms", "authz"])
def test_a_domain_imports_no_grpc_no_sql_and_no_generated_code(service: str) -> None:
    forbidden = ("grpc", "sqlalchemy", "google.protobuf", f"securefiles.{service}.v1", "securefiles.audit",
                 f"securefiles.{service}.adapters", f"securefiles.{service}.api")
    found = {f"{path.relative_to(PACKAGE)}: {name}"
             for path in _sources(PACKAGE / service / "domain") for name in imports_of(path)
             if name == forbidden[0] or name.startswith(forbidden)}
    assert found == set()


def test_storage_asks_authz_in_its_own_words_and_the_adapter_translates_each() -> None:
    assert set(PERMISSIONS) == set(Access)
    assert {access.name: authz_pb2.Permission.Name(number) for access, number in PERMISSIONS.items()} == {
        access.name: f"PERMISSION_{access.name}" for access in Access}
