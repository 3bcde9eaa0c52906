"""End-to-end tests of the container deployment (deploy/docker-compose.yml) with testcontainers.

They build the image, generate secrets with `docker compose run --rm secrets-init`, bring the
stack up with testcontainers' `DockerCompose` (`up --wait`) and talk to it from the host
through the published ports, as the CLI (a subprocess) and the Python client.

They run only when selected (`make e2e`, `pytest tests/e2e`, `-m e2e` or SECUREFILES_E2E=1)
and a Docker engine with Compose v2 answers; otherwise they are skipped with the reason, so a
plain `pytest` (`make test`) never starts containers. Where the offline base images built by
`offline-docker` exist and BASE_IMAGE / POSTGRES_IMAGE are not set, those are used.
Everything (containers, volumes, networks, the secrets directory) is removed at the end,
also when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from securefiles.client import SecureFilesClient
from securefiles.client.config import load_config
from tests.conftest import CliResult

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
IMAGE = "securefiles:e2e"
OFFLINE_IMAGES = {"BASE_IMAGE": "offline/python:3.11-bookworm", "POSTGRES_IMAGE": "offline/postgres:15"}
SERVICES = ("authz", "kms-eu", "kms-us", "storage-1", "storage-2")
PORT_VARS = {
    "authz": "SECUREFILES_AUTHZ_PORT", "storage-1": "SECUREFILES_STORAGE_1_PORT",
    "storage-2": "SECUREFILES_STORAGE_2_PORT", "kms-eu": "SECUREFILES_KMS_EU_PORT", "kms-us": "SECUREFILES_KMS_US_PORT",
    "web": "SECUREFILES_WEB_PORT",
}
# Operations ports (plain HTTP probes and metrics), published beside the public ones.
HTTP_PORT_VARS = {service: var.replace("_PORT", "_HTTP_PORT") for service, var in PORT_VARS.items()}
COLD_START_KEY = pytest.StashKey[float]()

# The reaper image cannot be pulled here (and DockerCompose does not need it).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs a Docker engine with Compose v2; builds and starts the stack")


def _docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def docker_unavailable_reason() -> str | None:
    """Why the e2e tests cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}")
        if info.returncode != 0:
            return f"no Docker engine reachable ({(info.stderr.strip().splitlines() or ['docker info failed'])[-1]})"
        compose = _docker("compose", "version", "--short")
        if compose.returncode != 0:
            return "Docker Compose v2 (`docker compose`) is not installed"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine reachable ({error})"
    try:
        import testcontainers.compose  # noqa: F401
    except ImportError:
        return "testcontainers is not installed (pip install 'testcontainers>=4.10')"
    return None


def _selected(config: pytest.Config) -> bool:
    """True when the run asked for the e2e tests, not merely collected the whole tree."""
    if os.environ.get("SECUREFILES_E2E", "").lower() in ("1", "true", "yes"):
        return True
    if "e2e" in (config.getoption("markexpr", "") or "").replace("not e2e", ""):
        return True
    base = config.invocation_params.dir
    paths = [(base / arg.split("::", 1)[0]).resolve() for arg in config.args]
    return bool(paths) and all(path.is_relative_to(E2E_DIR) for path in paths)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR)]
    if not ours:
        return
    # One stack, one scenario: the tests run in file order (the last takes the stack down),
    # whatever order pytest-randomly gave the rest.
    slots = [index for index, item in enumerate(items) if item in ours]
    for index, item in zip(slots, sorted(ours, key=lambda item: item.location[:2]), strict=True):
        items[index] = item
    reason = None
    if not _selected(config):
        reason = "e2e tests run only when selected: `make e2e` or `pytest tests/e2e` (they build and start containers)"
    else:
        unavailable = docker_unavailable_reason()
        if unavailable:
            reason = f"e2e tests need Docker: {unavailable}"
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if COLD_START_KEY in config.stash:
        terminalreporter.write_line(
            f"e2e: compose cold start (up --wait, image built, secrets present): {config.stash[COLD_START_KEY]:.1f} s")


# -- the stack ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """The running compose project and ways to talk to it from the host."""

    project: str
    secrets: Path
    home: Path
    ports: dict[str, int]
    compose_env: dict[str, str]
    http_ports: dict[str, int] = field(default_factory=dict)
    compose: object = None  # testcontainers DockerCompose
    cold_start_seconds: float = 0.0
    final_logs: str | None = None  # `docker compose logs` taken just before `down`

    # compose ------------------------------------------------------------------------------

    def compose_cmd(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE_FILE), *args], cwd=DEPLOY, env=self.compose_env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def containers(self) -> list[dict]:
        out = self.compose_cmd("ps", "--all", "--format", "json").stdout
        rows: list[dict] = []
        for line in out.splitlines():
            if line.strip():
                data = json.loads(line)
                rows.extend(data if isinstance(data, list) else [data])
        return rows

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            health = {c["Service"]: (c.get("State"), c.get("Health")) for c in self.containers()}
            if all(health.get(s) == ("running", "healthy") for s in services):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"services not healthy after {timeout}s: {health}")
            time.sleep(1)

    def logs(self) -> str:
        if self.final_logs is not None:
            return self.final_logs
        result = self.compose_cmd("logs", "--no-color", "--timestamps", check=False)
        return result.stdout + result.stderr

    def down(self) -> None:
        """Keep the logs, then `docker compose down --volumes` through testcontainers."""
        self.final_logs = self.logs()
        self.compose.stop(down=True)  # type: ignore[attr-defined]

    def cli_in_network(self, *args: str) -> CliResult:
        """The CLI in the `cli` compose profile (in-network endpoints, the generated client.toml)."""
        result = self.compose_cmd("--profile", "cli", "run", "--rm", "--no-deps", "cli", *args, check=False)
        return CliResult(result.returncode, result.stdout, result.stderr)

    # host-side client ---------------------------------------------------------------------

    def endpoint(self, service: str) -> str:
        return f"localhost:{self.ports[service]}"

    def client_env(self, storage: str = "storage-1", **overrides: str) -> dict[str, str]:
        """Environment of a host CLI: the generated client.toml (token) with host endpoints and files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFILES_")}
        for key in ("TF_BUILD", "GITHUB_OUTPUT", "AGENT_TEMPDIRECTORY", "RUNNER_TEMP", "SYSTEM_ACCESSTOKEN"):
            env.pop(key, None)
        env.update({
            "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "xdg"), "PYTHONUNBUFFERED": "1",
            "SECUREFILES_CONFIG": str(self.secrets / "client.toml"),
            "SECUREFILES_STORAGE_ENDPOINT": self.endpoint(storage),
            "SECUREFILES_AUTHZ_ENDPOINT": self.endpoint("authz"),
            "SECUREFILES_KMS_ENDPOINTS": f"eu={self.endpoint('kms-eu')},us={self.endpoint('kms-us')}",
            "SECUREFILES_CA_FILE": str(self.secrets / "ca.pem"),
        })
        env.update(overrides)
        return env

    def cli(self, *args: str, storage: str = "storage-1", env: dict[str, str] | None = None,
            timeout: float = 120) -> CliResult:
        result = subprocess.run(
            [sys.executable, "-m", "securefiles", *args], env=self.client_env(storage, **(env or {})),
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        return CliResult(result.returncode, result.stdout, result.stderr)

    def client(self, project: str = "default", token: str | None = None, storage: str = "storage-1"
               ) -> SecureFilesClient:
        return SecureFilesClient(load_config(self.client_env(storage)), token=token, project=project)


def _compose_env(project: str, secrets_dir: Path, ports: dict[str, int], http_ports: dict[str, int]
                 ) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECUREFILES_", "COMPOSE_"))}
    for var, image in OFFLINE_IMAGES.items():
        if not env.get(var) and _docker("image", "inspect", image).returncode == 0:
            env[var] = image
    env.update({
        "COMPOSE_PROJECT_NAME": project,
        "SECUREFILES_IMAGE": IMAGE,
        "SECUREFILES_SECRETS_DIR": str(secrets_dir),
        "SECUREFILES_BIND_ADDRESS": "127.0.0.1",
        # Root needs no help to read the secrets; anyone else gets them (and the services) as themselves.
        "SECUREFILES_UID": "10001" if os.getuid() == 0 else str(os.getuid()),
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    })
    env.update({PORT_VARS[service]: str(port) for service, port in ports.items()})
    env.update({HTTP_PORT_VARS[service]: str(port) for service, port in http_ports.items()})
    return env


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from testcontainers.compose import DockerCompose

    project = f"sfe2e{secrets.token_hex(4)}"
    base = tmp_path_factory.mktemp("compose")
    secrets_dir = base / "secrets"
    home = base / "home"
    home.mkdir()
    ports = {service: free_port() for service in (*SERVICES, "web")}
    http_ports = {service: free_port() for service in SERVICES}
    stack = Stack(project=project, secrets=secrets_dir, home=home, ports=ports,
                  compose_env=_compose_env(project, secrets_dir, ports, http_ports), http_ports=http_ports)
    compose = DockerCompose(DEPLOY, compose_file_name=COMPOSE_FILE.name, build=False, wait=True)
    stack.compose = compose
    with pytest.MonkeyPatch.context() as patch:
        # DockerCompose runs `docker compose` with this process's environment.
        for key in [k for k in os.environ if k.startswith(("SECUREFILES_", "COMPOSE_"))]:
            patch.delenv(key)
        for key, value in stack.compose_env.items():
            patch.setenv(key, value)
        try:
            # Always rebuild (layers are cached) so the tests never run a stale image; drop the
            # image this replaces, which would otherwise linger untagged.
            previous = _docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
            stack.compose_cmd("build", timeout=1200)
            if previous and previous != _docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip():
                _docker("image", "rm", previous)
            # The documented first step: secrets must exist before `up` creates the containers.
            stack.compose_cmd("run", "--rm", "secrets-init")
            started = time.monotonic()
            compose.start()  # docker compose up --wait
            stack.cold_start_seconds = time.monotonic() - started
            # Not development mode: the bootstrap administrator starts runs by hand only once it
            # holds the orchestrator role (as deploy/README.md says).
            granted = stack.cli("roles", "assign", "--principal", "user:admin", "--role", "orchestrator",
                                "--organization")
            assert granted.code == 0, granted.stderr
            request.config.stash[COLD_START_KEY] = stack.cold_start_seconds
            yield stack
        finally:
            _save_logs(stack, base, show_tail=request.session.testsfailed > 0)
            _take_down(stack)
            shutil.rmtree(secrets_dir, ignore_errors=True)


def _save_logs(stack: Stack, base: Path, show_tail: bool) -> None:
    try:
        logs = stack.logs()
        (base / "compose.log").write_text(logs)
        if show_tail:
            sys.stderr.write("\ne2e: last compose log lines:\n" + "\n".join(logs.splitlines()[-150:]) + "\n")
        sys.stderr.write(f"\ne2e: compose logs saved to {base / 'compose.log'}\n")
    except Exception as error:  # best effort: never hide the test's own failure
        sys.stderr.write(f"\ne2e: could not save compose logs: {error}\n")


def _take_down(stack: Stack) -> None:
    """`down -v` (testcontainers), then once more with every profile and orphans, to be sure."""
    try:
        stack.down()
    except Exception as error:
        sys.stderr.write(f"\ne2e: DockerCompose.stop failed: {error}\n")
    stack.compose_cmd("--profile", "cli", "down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


def leftovers(project: str) -> dict[str, list[str]]:
    """Containers, volumes and networks that still carry the project's compose label."""
    label = f"label=com.docker.compose.project={project}"
    found = {}
    for kind, args in (("containers", ("ps", "-aq", "--filter", label)),
                       ("volumes", ("volume", "ls", "-q", "--filter", label)),
                       ("networks", ("network", "ls", "-q", "--filter", label))):
        found[kind] = _docker(*args).stdout.split()
    return found
