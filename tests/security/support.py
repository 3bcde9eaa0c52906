"""Helpers shared by the security tests."""

from __future__ import annotations

from tests.conftest import LocalSystem


def listed(system: LocalSystem, name_pattern: str) -> list[str]:
    """Display names the administrator sees matching `name_pattern`."""
    with system.client() as admin:
        return [f.display_name for f in admin.list_files(name_pattern=name_pattern)]
