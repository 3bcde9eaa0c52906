"""Integration tests run against systems whose services run in the test process
(tests/in_process.py), except in modules marked `processes`: those look at what only separate
processes have (pids, signals, restarts, `up`'s output, per-process logs or metrics, a PKCS#11
library or credentials read from the environment) and get `securefiles up`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LocalSystem
from tests.in_process import InProcessSystem


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "processes: the module needs the services as `securefiles up` processes")


def _processes(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("processes") is not None


@pytest.fixture(scope="session")
def in_process_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessSystem]:
    base = tmp_path_factory.mktemp("in-process")
    running = InProcessSystem(state_dir=base / "state", home=base / "home")
    running.start()
    yield running
    running.stop()
    running.drop_databases()


@pytest.fixture(scope="module")
def system(request: pytest.FixtureRequest) -> LocalSystem:
    """The session's system: in process, or `securefiles up`'s for modules marked `processes`."""
    running: LocalSystem = request.getfixturevalue("up_system" if _processes(request) else "in_process_system")
    return running


@pytest.fixture
def fresh_system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalSystem]:
    """A system of its own, for tests that reconfigure or restart it (the whole system: stop, start)."""
    kind = LocalSystem if _processes(request) else InProcessSystem
    running = kind(state_dir=tmp_path / "state", home=tmp_path / "home")
    yield running
    running.stop()
    running.drop_databases()
