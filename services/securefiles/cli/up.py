"""`securefiles up`: the whole system on one machine, on embedded defaults.

Generates (once) a development CA with one certificate per service and one for clients,
the authz signing key and a root key per region; starts authz, one kms per region and
storage as separate processes on loopback; waits until each reports SERVING; writes the
client configuration with a bootstrap administrator token; starts the web console (HTTPS,
its own port); stops everything on Ctrl-C.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from securefiles.cli.default_config import point_default_config
from securefiles.client.config import ClientConfig
from securefiles.client.health import is_serving
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.files import write_private_file
from securefiles.common.tls import TlsFiles, channel_options, client_channel_credentials, kms_server_name
from securefiles.common.tokens import BOOTSTRAP_ISSUER, TokenIssuer, generate_signing_key_pem, load_signing_key

DEFAULT_PORT_BASE = 7700
# Each service's internal (mutual TLS) port is this far above its public one.
INTERNAL_PORT_OFFSET = 50
# The web console's port is this far above the base (it has no internal port).
WEB_PORT_OFFSET = 30
# And its operations port (plain HTTP: /healthz, /readyz, /metrics) this far (7780…: clear of
# the ports compose publishes, 7800… and 7900…).
HTTP_PORT_OFFSET = 80
ADMIN_TOKEN_TTL = 30 * 24 * 3600
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# A service that crashes is restarted, unless it crashed this often within the window.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


class LaunchError(RuntimeError):
    """A service did not come up."""


@dataclass
class UpOptions:
    state_dir: Path
    port_base: int = DEFAULT_PORT_BASE
    regions: tuple[str, ...] = ("eu",)
    reflection: bool = False
    admin: str = "user:admin"
    write_default_config: bool = True
    database_url: str = ""  # a PostgreSQL server: one database per service is created on it
    database_prefix: str = "securefiles_"
    blob_store: str = "directory"


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    service: str = ""
    identity: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    internal_port: int = 0
    http_port: int = 0
    restarts: list[float] = field(default_factory=list)


@dataclass
class LocalSystem:
    """The processes of a local deployment and the files they share."""

    options: UpOptions
    processes: list[ServiceProcess] = field(default_factory=list)
    web_url: str = ""

    @property
    def state(self) -> Path:
        return self.options.state_dir

    def _dir(self, name: str) -> Path:
        path = self.state / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def prepare(self) -> None:
        """Create the state directory, certificates and secrets (first start only)."""
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        pki = self._dir("pki")
        ensure_ca(pki)
        for identity in ("storage", "authz"):
            ensure_identity(pki, identity)
        for region in self.options.regions:
            # A certificate (and key) of its own per region, naming the region: storage and the
            # CLI check that name, so one region's kms cannot stand in for another's.
            ensure_identity(pki, f"kms-{region}", (kms_server_name(region),), service="kms")
        secrets = self._dir("secrets")
        signing = secrets / "authz-signing-key.pem"
        if not signing.exists():
            write_private_file(signing, generate_signing_key_pem())
        for region in self.options.regions:
            root = secrets / f"kms-{region}-root-key"
            if not root.exists():
                write_private_file(root, base64.b64encode(os.urandom(32)) + b"\n")
        for name in ("storage", "authz", *(f"kms-{r}" for r in self.options.regions)):
            audit_key = secrets / f"{name}-audit-key"
            if not audit_key.exists():
                write_private_file(audit_key, base64.b64encode(os.urandom(32)) + b"\n")
        # The console's HTTPS certificate comes from a CA of its own: the services' CA must never
        # vouch for it, or it could pass for a service on their internal (mutual TLS) ports.
        web_pki = self._dir("pki/web")
        ensure_ca(web_pki, "Securefiles development web console CA")
        ensure_identity(web_pki, "web")
        for name in ("data", "logs", "run"):
            self._dir(name)
        (self.state / "client.toml").unlink(missing_ok=True)

    def tls(self, identity: str) -> TlsFiles:
        pki = self.state / "pki"
        return TlsFiles(ca=pki / "ca.pem", cert=pki / f"{identity}.pem", key=pki / f"{identity}-key.pem")

    def _port(self, offset: int) -> int:
        return 0 if self.options.port_base == 0 else self.options.port_base + offset

    def _ports(self, offset: int) -> tuple[int, int, int]:
        """(public, internal, operations) ports of the service at `offset`."""
        return self._port(offset), self._port(offset + INTERNAL_PORT_OFFSET), self._port(offset + HTTP_PORT_OFFSET)

    def database_url(self, name: str) -> str:
        """SQLite under the state dir, or a database of its own on the PostgreSQL server."""
        if not self.options.database_url:
            return f"sqlite:///{self.state / 'data' / (name + '.db')}"
        return ensure_postgres_database(self.options.database_url,
                                        f"{self.options.database_prefix}{name}".replace("-", "_"))

    def _env(self, name: str, identity: str, ports: tuple[int, int, int], extra: dict[str, str]) -> dict[str, str]:
        tls = self.tls(identity)
        env = dict(os.environ)
        env.update({
            "SECUREFILES_LISTEN": f"127.0.0.1:{ports[0]}",
            "SECUREFILES_INTERNAL_LISTEN": f"127.0.0.1:{ports[1]}",
            "SECUREFILES_INTERNAL_PORT_FILE": str(self.state / "run" / f"{name}.internal-port"),
            "SECUREFILES_HTTP_LISTEN": f"127.0.0.1:{ports[2]}",
            "SECUREFILES_HTTP_PORT_FILE": str(self.state / "run" / f"{name}.http-port"),
            "SECUREFILES_TLS_CA_FILE": str(tls.ca),
            "SECUREFILES_TLS_CERT_FILE": str(tls.cert),
            "SECUREFILES_TLS_KEY_FILE": str(tls.key),
            "SECUREFILES_DATABASE_URL": self.database_url(name),
            "SECUREFILES_PORT_FILE": str(self.state / "run" / f"{name}.port"),
            "SECUREFILES_REFLECTION": "true" if self.options.reflection else "false",
            "SECUREFILES_PARENT_PID": str(os.getpid()),
            "SECUREFILES_AUDIT_KEY_FILE": str(self.state / "secrets" / f"{name}-audit-key"),
        })
        env.update(extra)
        return env

    def _web_env(self, port: int, extra: dict[str, str]) -> dict[str, str]:
        """The console gets the services' public endpoints and CA, never a token or a client key."""
        web_pki = self.state / "pki" / "web"
        env = {k: v for k, v in os.environ.items() if k not in ("SECUREFILES_TOKEN", "SECUREFILES_CONFIG")}
        env.update({
            "SECUREFILES_WEB_LISTEN": f"127.0.0.1:{port}",
            "SECUREFILES_WEB_TLS_CERT_FILE": str(web_pki / "web.pem"),
            "SECUREFILES_WEB_TLS_KEY_FILE": str(web_pki / "web-key.pem"),
            "SECUREFILES_PORT_FILE": str(self.state / "run" / "web.port"),
            "SECUREFILES_PARENT_PID": str(os.getpid()),
            "SECUREFILES_CONFIG": str(self.state / "web-services.toml"),
        })
        env.update(extra)
        return env

    def _spawn(self, name: str, service: str, identity: str, ports: tuple[int, int, int], extra: dict[str, str]
               ) -> subprocess.Popen[bytes]:
        for suffix in ("port", "internal-port", "http-port"):
            (self.state / "run" / f"{name}.{suffix}").unlink(missing_ok=True)
        log = open(self.state / "logs" / f"{name}.log", "ab")
        command, env = (["web"], self._web_env(ports[0], extra)) if service == "web" else (
            ["serve", service], self._env(name, identity, ports, extra))
        process = subprocess.Popen(
            [sys.executable, "-m", "securefiles", *command],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        write_private_file(self.state / "run" / f"{name}.pid", str(process.pid).encode())
        return process

    def _start(self, name: str, service: str, identity: str, ports: tuple[int, int, int], extra: dict[str, str]
               ) -> ServiceProcess:
        process = self._spawn(name, service, identity, ports, extra)
        child = ServiceProcess(name, process, self.state / "logs" / f"{name}.log", service, identity, extra)
        self.processes.append(child)
        self._wait_ready(child)
        return child

    def restart(self, child: ServiceProcess) -> None:
        """Bring a crashed service back on the same ports (its peers and clients keep their address)."""
        child.process = self._spawn(child.name, child.service, child.identity,
                                    (child.port, child.internal_port, child.http_port), child.extra)
        child.restarts.append(time.monotonic())
        self._wait_ready(child)

    def _wait_ready(self, child: ServiceProcess) -> None:
        """Wait for the port files (the public one is written last) and SERVING on the public port."""
        port_file = self.state / "run" / f"{child.name}.port"
        deadline = time.monotonic() + START_TIMEOUT
        port = 0
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise LaunchError(f"{child.name} exited with status {child.process.returncode}; "
                                  f"see {child.log_path}:\n{_tail(child.log_path)}")
            if not port and port_file.exists():
                text = port_file.read_text().strip()
                port = int(text) if text.isdigit() else 0
            if port and child.service == "web" and self._web_serving(port):
                child.port = port
                return
            if port and child.service != "web" and self._serving(port):
                child.port = port
                child.internal_port = int((self.state / "run" / f"{child.name}.internal-port").read_text())
                child.http_port = int((self.state / "run" / f"{child.name}.http-port").read_text())
                return
            time.sleep(0.05)
        raise LaunchError(f"{child.name} did not become healthy within {START_TIMEOUT:.0f}s; see {child.log_path}")

    def _serving(self, port: int) -> bool:
        target = f"127.0.0.1:{port}"
        credentials = client_channel_credentials(self.state / "pki" / "ca.pem")
        with grpc.secure_channel(target, credentials, channel_options(target)) as ch:
            return is_serving(ch, timeout=1)

    def _web_serving(self, port: int) -> bool:
        context = ssl.create_default_context(cafile=str(self.state / "pki" / "web" / "ca.pem"))
        try:
            with httpx.Client(verify=context, timeout=1.0) as http:
                return http.get(f"https://localhost:{port}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def start_web(self, config: ClientConfig) -> str:
        """The console, a client of the services' public ports; returns its address."""
        services = ClientConfig(storage=config.storage, authz=config.authz, kms=config.kms, ca_file=config.ca_file)
        services.write(self.state / "web-services.toml")
        web = self._start("web", "web", "web", (self._port(WEB_PORT_OFFSET), 0, 0), {})
        return f"https://localhost:{web.port}"

    def check_ports_free(self) -> None:
        """Say which port is taken (by another instance, usually) before any service tries it."""
        if self.options.port_base == 0:
            return
        for offset in range(2 + len(self.options.regions)):
            for port in self._ports(offset):
                with socket.socket() as probe:
                    # Like the services' own sockets: a port left in TIME_WAIT counts as free.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        probe.bind(("127.0.0.1", port))
                    except OSError:
                        raise LaunchError(
                            f"port {port} is in use (another `securefiles up` or `make run`?); stop it, or "
                            f"choose other ports: securefiles up --port-base N (make run PORT_BASE=N), "
                            f"or --port-base 0 for any free ones") from None

    def start(self) -> ClientConfig:
        """Start authz, the kms of each region, then storage; write the client config."""
        self.check_ports_free()
        secrets = self.state / "secrets"
        regions = self.options.regions
        authz = self._start("authz", "authz", "authz", self._ports(0), {
            "SECUREFILES_SIGNING_KEY_FILE": str(secrets / "authz-signing-key.pem"),
            "SECUREFILES_REGIONS": ",".join(regions),
            "SECUREFILES_BOOTSTRAP_ADMIN": self.options.admin,
            # Zero-setup development mode: administrators may mint people's tokens, and the
            # bootstrap administrator may start runs by hand (orchestrator).
            "SECUREFILES_DEV_MODE": os.environ.get("SECUREFILES_DEV_MODE", "true"),
        })
        # Services call each other on the internal (mutual TLS) ports; clients use the public ones.
        authz_internal = f"127.0.0.1:{authz.internal_port}"
        kms: dict[str, str] = {}
        kms_internal: dict[str, str] = {}
        for index, region in enumerate(regions):
            child = self._start(f"kms-{region}", "kms", f"kms-{region}", self._ports(2 + index), {
                "SECUREFILES_REGION": region,
                "SECUREFILES_KMS_ROOT_KEY_FILE": str(secrets / f"kms-{region}-root-key"),
                "SECUREFILES_AUTHZ_ENDPOINT": authz_internal,
            })
            kms[region] = f"127.0.0.1:{child.port}"
            kms_internal[region] = f"127.0.0.1:{child.internal_port}"
        storage = self._start("storage", "storage", "storage", self._ports(1), {
            "SECUREFILES_BLOB_DIR": str(self.state / "data" / "blobs"),
            "SECUREFILES_BLOB_STORE": self.options.blob_store,
            "SECUREFILES_AUTHZ_ENDPOINT": authz_internal,
            "SECUREFILES_KMS_ENDPOINTS": ",".join(f"{r}={t}" for r, t in kms_internal.items()),
        })
        issuer = TokenIssuer(load_signing_key((secrets / "authz-signing-key.pem").read_bytes()))
        token, _ = issuer.issue(self.options.admin, ADMIN_TOKEN_TTL, kind="user", issued_by=BOOTSTRAP_ISSUER)
        config = ClientConfig(
            storage=f"127.0.0.1:{storage.port}", authz=f"127.0.0.1:{authz.port}", kms=kms,
            ca_file=(self.state / "pki" / "ca.pem").resolve(), token=token,
        )
        config.write(self.state / "client.toml")
        self.web_url = self.start_web(config)
        return config

    def first_exited(self) -> ServiceProcess | None:
        return next((p for p in self.processes if p.process.poll() is not None), None)

    def stop(self) -> None:
        """SIGTERM every service (storage first), then SIGKILL what lingers."""
        for child in reversed(self.processes):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in reversed(self.processes):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            # Nothing in run/ may name a process or port that is gone.
            for suffix in ("pid", "port", "internal-port", "http-port"):
                (self.state / "run" / f"{child.name}.{suffix}").unlink(missing_ok=True)


def ensure_postgres_database(server_url: str, database: str) -> str:
    """Create `database` on the server if missing; return its URL."""
    from sqlalchemy import create_engine, make_url, text

    url = make_url(server_url)
    admin = create_engine(url.set(database=url.database or "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_up(options: UpOptions) -> int:
    """Run in the foreground until interrupted; 0 on a clean stop."""
    system = LocalSystem(options)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        system.prepare()
        config = system.start()
    except (LaunchError, OSError) as error:
        system.stop()
        print(f"securefiles: error: {error}", file=sys.stderr)
        return 1
    print(f"storage  {config.storage}\nauthz    {config.authz}", flush=True)
    for region, target in config.kms.items():
        print(f"kms-{region:<4} {target}", flush=True)
    print(f"web      {system.web_url}  (the console; sign-in needs SECUREFILES_OIDC_LOGIN_ISSUER and _CLIENT_ID)",
          flush=True)
    operations = " ".join(f"{p.name}=http://127.0.0.1:{p.http_port}" for p in system.processes if p.http_port)
    print(f"http     {operations}  (/healthz /readyz /metrics)", flush=True)
    config_path = (system.state / "client.toml").resolve()
    print(f"client config: {config_path}", flush=True)
    if options.write_default_config:
        print(f"default client config: {point_default_config(config_path)}", flush=True)
    print(f"logs: {system.state / 'logs'}", flush=True)
    print("securefiles is up (Ctrl-C to stop)", flush=True)
    exit_code = 0
    while not stopping:
        exited = system.first_exited()
        if exited is not None:
            print(f"securefiles: {exited.name} exited with status {exited.process.returncode}; restarting "
                  f"(see {exited.log_path})", file=sys.stderr, flush=True)
            recent = [t for t in exited.restarts if time.monotonic() - t < RESTART_WINDOW]
            try:
                if len(recent) >= MAX_RESTARTS:
                    raise LaunchError(f"{exited.name} keeps crashing")
                system.restart(exited)
                print(f"securefiles: {exited.name} restarted", flush=True)
            except (LaunchError, OSError) as error:
                print(f"securefiles: error: {error}", file=sys.stderr, flush=True)
                exit_code = 1
                break
        time.sleep(0.2)
    system.stop()
    print("securefiles stopped", flush=True)
    return exit_code
