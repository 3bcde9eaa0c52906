"""Shared fixtures: a real system started by `securefiles up` on free loopback ports.

Every service runs as its own process with TLS; tests talk to it through the CLI (as a
subprocess), the Python client, or the generated stubs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from securefiles.client import SecureFilesClient
from securefiles.client.config import load_config
from securefiles.common.tls import (
    TlsFiles,
    channel_credentials,
    channel_options,
    client_channel_credentials,
    kms_server_name,
)

READY_LINE = "securefiles is up"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@dataclass
class LocalSystem:
    """A running `securefiles up` and helpers to drive it."""

    state_dir: Path
    home: Path
    process: subprocess.Popen[str] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    # PostgreSQL (SECUREFILES_TEST_DATABASE_URL) and database blobs (SECUREFILES_TEST_BLOB_STORE=db)
    # run the same suite as the SQLite + directory default.
    database_url: str = field(default_factory=lambda: os.environ.get("SECUREFILES_TEST_DATABASE_URL", ""))
    blob_store: str = field(default_factory=lambda: os.environ.get("SECUREFILES_TEST_BLOB_STORE", "directory"))
    database_prefix: str = field(default_factory=lambda: f"sf_{uuid.uuid4().hex[:8]}_")

    @property
    def config_path(self) -> Path:
        return self.state_dir / "client.toml"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFILES_")}
        for key in ("TF_BUILD", "GITHUB_OUTPUT", "AGENT_TEMPDIRECTORY", "RUNNER_TEMP", "SYSTEM_ACCESSTOKEN"):
            env.pop(key, None)
        env.update({"XDG_CONFIG_HOME": str(self.home / "xdg"), "HOME": str(self.home),
                    "SECUREFILES_CONFIG": str(self.config_path), "PYTHONUNBUFFERED": "1"})
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start(self, regions: str = "eu", timeout: float = 90.0, *extra_args: str) -> None:
        env = self.env()
        env.pop("SECUREFILES_CONFIG")
        flags = list(extra_args) or ["--no-default-config"]
        if self.database_url:
            flags += ["--database-url", self.database_url, "--database-prefix", self.database_prefix]
        flags += ["--blob-store", self.blob_store]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "securefiles", "up", "--state-dir", str(self.state_dir), "--port-base", "0",
             "--regions", regions, *flags],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if READY_LINE in line:
                return
        self.stop()
        raise RuntimeError("securefiles up did not come up:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def pid(self, service: str) -> int:
        """Process id of `storage`, `authz` or `kms-<region>` (as `up` last started it)."""
        return int((self.state_dir / "run" / f"{service}.pid").read_text())

    def signal_service(self, service: str, signum: int) -> int:
        pid = self.pid(service)
        os.kill(pid, signum)
        return pid

    def wait_restarted(self, service: str, old_pid: int, timeout: float = 60.0) -> None:
        """`up` restarts a crashed service on the same port; wait until it serves again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            path = self.state_dir / "run" / f"{service}.pid"
            if path.exists() and path.read_text().strip() not in ("", str(old_pid)) and (
                    self.state_dir / "run" / f"{service}.port").exists():
                status = self.cli("status", "--output", "json")
                if status.code == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"{service} was not restarted within {timeout}s")

    def drop_databases(self) -> None:
        if not self.database_url:
            return
        admin = create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                 {"p": self.database_prefix + "%"}).scalars().all()
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    def engine(self, service: str) -> Engine:
        """The database of `storage`, `authz` or `kms-<region>`."""
        if not self.database_url:
            return create_engine(f"sqlite:///{self.state_dir / 'data' / (service + '.db')}")
        url = make_url(self.database_url)
        return create_engine(url.set(database=f"{self.database_prefix}{service}".replace("-", "_")))

    def query(self, service: str, sql: str, **params: object) -> list[tuple]:
        engine = self.engine(service)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def execute(self, service: str, sql: str, **params: object) -> None:
        engine = self.engine(service)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql), params)
        finally:
            engine.dispose()

    def data_locations(self) -> list[Path]:
        """Every place the system keeps data: the state dir, and the PostgreSQL data directory."""
        locations = [self.state_dir]
        if self.database_url:
            (directory,) = self.query("storage", "SHOW data_directory")[0]
            locations.append(Path(directory))
        return locations

    def blob_key(self, file_id: str, version: int = 1) -> str:
        """The blob key storage keeps a file version's ciphertext under."""
        rows = self.query("storage", "SELECT blob_key FROM file_versions WHERE file_id = :f AND version = :v",
                          f=file_id, v=version)
        return rows[0][0] if rows else f"{file_id}/v{version}"

    def _blob_path(self, key: str) -> Path:
        file_id, name = key.split("/")
        return self.state_dir / "data" / "blobs" / "blobs" / file_id[:2] / file_id / name

    def read_blob(self, file_id: str, version: int = 1) -> bytes:
        key = self.blob_key(file_id, version)
        if self.blob_store == "db":
            rows = self.query("storage", "SELECT data FROM blob_segments WHERE blob_key = :k ORDER BY seq", k=key)
            return b"".join(bytes(r[0]) for r in rows)
        return self._blob_path(key).read_bytes()

    def write_blob(self, file_id: str, data: bytes, version: int = 1) -> None:
        """Overwrite stored ciphertext (tampering and truncation tests)."""
        key = self.blob_key(file_id, version)
        if self.blob_store != "db":
            self._blob_path(key).write_bytes(data)
            return
        rows = self.query("storage", "SELECT seq, length(data) FROM blob_segments WHERE blob_key = :k ORDER BY seq",
                          k=key)
        offset = 0
        for seq, length in rows:
            part = data[offset : offset + length]
            offset += length
            if part:
                self.execute("storage", "UPDATE blob_segments SET data = :d WHERE blob_key = :k AND seq = :s",
                             d=part, k=key, s=seq)
            else:
                self.execute("storage", "DELETE FROM blob_segments WHERE blob_key = :k AND seq = :s", k=key, s=seq)

    def cli(self, *args: str, env: dict[str, str] | None = None, input_text: str | None = None,
            cwd: Path | None = None) -> CliResult:
        """Run the `securefiles` command as a user would."""
        completed = subprocess.run(
            [sys.executable, "-m", "securefiles", *args], env=self.env(**(env or {})), capture_output=True,
            text=True, timeout=120, input=input_text, cwd=cwd,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    def client(self, token: str | None = None, project: str = "default") -> SecureFilesClient:
        return SecureFilesClient(load_config(self.env()), token=token, project=project)

    @property
    def admin_token(self) -> str:
        return load_config(self.env()).token

    def tls(self, identity: str) -> TlsFiles:
        pki = self.state_dir / "pki"
        return TlsFiles(ca=pki / "ca.pem", cert=pki / f"{identity}.pem", key=pki / f"{identity}-key.pem")

    def channel(self, service: str, identity: str = "client", region: str = "eu") -> grpc.Channel:
        """A raw channel to a service. As `client` (an agent or a person): its public port, server
        TLS and no certificate. As a service identity: its internal port, presenting that
        service's certificate."""
        server_name = kms_server_name(region) if service == "kms" else ""
        if identity == "client":
            config = load_config(self.env())
            target = config.kms[region] if service == "kms" else getattr(config, service)
            return grpc.secure_channel(target, client_channel_credentials(self.tls(identity).ca),
                                       options=channel_options(target, server_name))
        target = self.internal_target(service, region)
        return grpc.secure_channel(target, channel_credentials(self.tls(identity)),
                                   options=channel_options(target, server_name))

    def operations_url(self, name: str) -> str:
        """Base URL of the operations port (probes, metrics) of `storage`, `authz` or `kms-<region>`."""
        return f"http://127.0.0.1:{(self.state_dir / 'run' / f'{name}.http-port').read_text().strip()}"

    def internal_target(self, service: str, region: str = "eu") -> str:
        """`host:port` of a service's internal (mutual TLS) port."""
        name = f"kms-{region}" if service == "kms" else service
        return f"127.0.0.1:{(self.state_dir / 'run' / f'{name}.internal-port').read_text().strip()}"


def unique(prefix: str = "f") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def job_token_for(system: LocalSystem, *files: str, project: str = "default", branch: str = "refs/heads/main") -> str:
    """Create a pipeline in `project`, authorize it on `files`, start a run: the job's token."""
    with system.client(project=project) as admin:
        pipeline = unique("pipeline")
        admin.create_pipeline(pipeline)
        for name in files:
            admin.set_pipeline_permission(name, pipeline, True)
        return admin.start_run(pipeline, branch).job_token


def user_token(system: LocalSystem, user: str) -> str:
    with system.client() as admin:
        return admin.issue_token(user).token


def blob_files(system: LocalSystem) -> set[str]:
    """Blobs present in the blob store (`<file id>/v<n>`), partial writes included as `partial/<name>`."""
    if system.blob_store == "db":
        return {row[0] for row in system.query("storage", "SELECT DISTINCT blob_key FROM blob_segments")}
    root = system.state_dir / "data" / "blobs"
    keys = {f"{p.parent.name}/{p.name}" for p in (root / "blobs").glob("*/*/v*")}  # `<file id>/v<n>[-<hex>]`
    keys |= {f"partial/{p.name}" for p in (root / "partial").glob("*")}
    return keys


def stored_blob_keys(system: LocalSystem) -> set[str]:
    """Blob keys the storage database references."""
    return {row[0] for row in system.query("storage", "SELECT blob_key FROM file_versions")}


@pytest.fixture(scope="session")
def system(up_system: LocalSystem) -> LocalSystem:
    """One system for the whole session; tests isolate themselves with unique names. (In
    tests/integration, its services run in the test process: see its conftest.)"""
    return up_system


@pytest.fixture(scope="session")
def up_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """The session's system as `securefiles up` runs it: a process per service."""
    base = tmp_path_factory.mktemp("system")
    running = LocalSystem(state_dir=base / "state", home=base / "home")
    running.start()
    yield running
    running.stop()
    running.drop_databases()


@pytest.fixture
def fresh_system(tmp_path: Path) -> Iterator[LocalSystem]:
    """A system of its own, for tests that restart or reconfigure it."""
    running = LocalSystem(state_dir=tmp_path / "state", home=tmp_path / "home")
    yield running
    running.stop()
    running.drop_databases()
