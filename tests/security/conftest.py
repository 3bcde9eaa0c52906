"""A system of a test module's own, configured by the module's `SYSTEM_ENV`.

Like `fresh_system`, but started once per module: a start costs 4 s on SQLite and 10-20 s on
PostgreSQL, and several security tests need the same special configuration (tight abuse
limits) or a database they may tamper with. Tests on it restore what they change.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LocalSystem


@pytest.fixture(scope="module")
def own_system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    base = tmp_path_factory.mktemp("own-system")
    running = LocalSystem(state_dir=base / "state", home=base / "home")
    running.extra_env.update(getattr(request.module, "SYSTEM_ENV", {}))
    try:
        running.start()
        yield running
    finally:
        running.stop()
        running.drop_databases()
