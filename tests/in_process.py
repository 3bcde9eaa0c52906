"""The system's services in the test process: each on its own event loop in a thread.

Same state directory, certificates, secrets and settings as `securefiles up` (its `prepare` and
per-service environment build them), so every `LocalSystem` helper works unchanged: the CLI,
the Python client, raw channels, databases, blobs, operations ports. What it leaves out is what
only a process has: pids, restarts after a crash, per-process logs and metrics, and the web
console. Those tests keep `securefiles up` in a subprocess.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.authz import app as authz_app
from securefiles.cli.up import ADMIN_TOKEN_TTL, UpOptions
from securefiles.cli.up import LocalSystem as UpSystem
from securefiles.client.config import ClientConfig
from securefiles.common.metrics import clear_scrape_time
from securefiles.common.tls import channel_options, client_channel_credentials
from securefiles.common.tokens import BOOTSTRAP_ISSUER, TokenIssuer, load_signing_key
from securefiles.kms import app as kms_app
from securefiles.storage import app as storage_app
from tests.conftest import LocalSystem

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# What `up` gives a child process that a server sharing the test process must not get: the
# watchdog of its launcher's pid would see the test process as gone.
_PROCESS_ONLY = ("SECUREFILES_PARENT_PID",)

Serve = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ServiceThread:
    """One service's `serve(settings, stop)` on an event loop of its own, in a thread."""

    def __init__(self, name: str, serve: Serve) -> None:
        self.name = name
        self._serve = serve
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"in-process-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self._started.wait(START_TIMEOUT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
            # Tasks the service left behind (cancelled housekeeping) finish on their loop.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._started.set()
        try:
            await self._serve(self._stop)
        except BaseException as error:  # reported by `wait_ready` and `stop`
            self.error = error

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        if self.alive and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s")


@dataclass
class InProcessSystem(LocalSystem):
    """A `LocalSystem` whose services run in this process (see the module's docstring)."""

    services: list[ServiceThread] = field(default_factory=list)
    regions: tuple[str, ...] = ("eu",)

    def start(self, regions: str = "eu", timeout: float = START_TIMEOUT, *extra_args: str) -> None:
        if extra_args:
            raise ValueError("an in-process system takes no `securefiles up` flags")
        self.regions = tuple(r.strip() for r in regions.split(",") if r.strip())
        up = UpSystem(UpOptions(state_dir=self.state_dir, port_base=0, regions=self.regions,
                                write_default_config=False, database_url=self.database_url,
                                database_prefix=self.database_prefix, blob_store=self.blob_store))
        up.prepare()
        try:
            self._start_services(up, timeout)
        except BaseException:
            self.stop()
            raise

    def _env(self, up: UpSystem, name: str, identity: str, extra: dict[str, str]) -> dict[str, str]:
        """The variables `up` gives the service's process; of the test process's own environment,
        only what `up` set (as `LocalSystem.start` runs `up` without the caller's SECUREFILES_*)."""
        env = up._env(name, identity, (0, 0, 0), extra)
        ours = {k: v for k, v in os.environ.items() if k.startswith("SECUREFILES_")}
        return {k: v for k, v in env.items() if k.startswith("SECUREFILES_") and k not in _PROCESS_ONLY
                and not (k in ours and ours[k] == v and k != "SECUREFILES_DEV_MODE")} | self.extra_env

    def _start_services(self, up: UpSystem, timeout: float) -> None:
        secrets = self.state_dir / "secrets"
        authz = authz_app.AuthzSettings.from_env(self._env(up, "authz", "authz", {
            "SECUREFILES_SIGNING_KEY_FILE": str(secrets / "authz-signing-key.pem"),
            "SECUREFILES_REGIONS": ",".join(self.regions),
            "SECUREFILES_BOOTSTRAP_ADMIN": up.options.admin,
            "SECUREFILES_DEV_MODE": "true",
        }))
        authz_port, authz_internal = self._run("authz", lambda stop: authz_app.serve(authz, stop), timeout)
        kms_public: dict[str, str] = {}
        kms_internal: dict[str, str] = {}
        for region in self.regions:
            name = f"kms-{region}"
            settings = kms_app.KmsSettings.from_env(self._env(up, name, name, {
                "SECUREFILES_REGION": region,
                "SECUREFILES_KMS_ROOT_KEY_FILE": str(secrets / f"kms-{region}-root-key"),
                "SECUREFILES_AUTHZ_ENDPOINT": authz_internal,
            }))
            kms_public[region], kms_internal[region] = self._run(
                name, lambda stop, settings=settings: kms_app.serve(settings, stop), timeout)
        storage = storage_app.StorageSettings.from_env(self._env(up, "storage", "storage", {
            "SECUREFILES_BLOB_DIR": str(self.state_dir / "data" / "blobs"),
            "SECUREFILES_BLOB_STORE": self.blob_store,
            "SECUREFILES_AUTHZ_ENDPOINT": authz_internal,
            "SECUREFILES_KMS_ENDPOINTS": ",".join(f"{r}={t}" for r, t in kms_internal.items()),
        }))
        storage_port, _ = self._run("storage", lambda stop: storage_app.serve(storage, stop), timeout)
        issuer = TokenIssuer(load_signing_key((secrets / "authz-signing-key.pem").read_bytes()))
        token, _ = issuer.issue(up.options.admin, ADMIN_TOKEN_TTL, kind="user", issued_by=BOOTSTRAP_ISSUER)
        ClientConfig(storage=storage_port, authz=authz_port, kms=kms_public,
                     ca_file=(self.state_dir / "pki" / "ca.pem").resolve(), token=token).write(self.config_path)

    def _run(self, name: str, serve: Serve, timeout: float) -> tuple[str, str]:
        """Start a service and wait until it serves: its public and internal `host:port`."""
        run = self.state_dir / "run"
        for suffix in ("port", "internal-port", "http-port"):
            (run / f"{name}.{suffix}").unlink(missing_ok=True)
        service = ServiceThread(name, serve)
        self.services.append(service)
        service.start()
        port_file = run / f"{name}.port"  # written last, after SERVING
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.alive:
                raise RuntimeError(f"{name} did not start: {service.error!r}") from service.error
            if port_file.exists() and _serving(self, int(port_file.read_text())):
                return (f"127.0.0.1:{port_file.read_text().strip()}",
                        f"127.0.0.1:{(run / f'{name}.internal-port').read_text().strip()}")
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not become healthy within {timeout:.0f}s")

    def stop(self) -> None:
        """Storage first, authz last (as `up` stops them); the run/ files go with them."""
        errors = []
        for service in reversed(self.services):
            try:
                service.stop()
            except RuntimeError as error:
                errors.append(error)
            for suffix in ("port", "internal-port", "http-port"):
                (self.state_dir / "run" / f"{service.name}.{suffix}").unlink(missing_ok=True)
        self.services.clear()
        clear_scrape_time()  # their gauges would read databases that are gone
        # gRPC's asyncio poller thread lives while any aio server or channel does; the stopped
        # ones sit in reference cycles until collected.
        gc.collect()
        if errors:
            raise errors[0]

    def pid(self, service: str) -> int:
        raise NotImplementedError("an in-process system has no service processes; use the `securefiles up` system")


def _serving(system: LocalSystem, port: int) -> bool:
    target = f"127.0.0.1:{port}"
    credentials = client_channel_credentials(system.state_dir / "pki" / "ca.pem")
    with grpc.secure_channel(target, credentials, channel_options(target)) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
