"""The compose deployment end to end: golden path, regions, restarts under traffic, no leaked secrets.

The tests share one stack (see conftest.py) and run in file order; the last one takes it down.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from securefiles.common.errors import PermissionDenied, SecureFilesError
from tests.conftest import unique
from tests.e2e.conftest import DEPLOY, SERVICES, Stack, leftovers
from tests.walkthrough import run_block, shell_block

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


# -- (1) golden path ------------------------------------------------------------------------


def test_golden_path_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    status = stack.cli("status", "--output", "json")
    assert status.code == 0, status.stderr
    assert status.json() == {s: "SERVING" for s in ("authz", "kms-eu", "kms-us", "storage")}
    in_network = stack.cli_in_network("status")
    assert in_network.code == 0, in_network.stdout + in_network.stderr

    content = os.urandom(2 * 1024 * 1024 + 123)  # three 1 MiB segments
    source = tmp_path / "signing.p12"
    source.write_bytes(content)
    name, pipeline = unique("signing") + ".p12", unique("ios-release")

    uploaded = stack.cli("files", "upload", str(source), "--name", name, "--property", "team=ios", "--output", "json")
    assert uploaded.code == 0, uploaded.stderr
    info = uploaded.json()
    assert info["sha256"] == hashlib.sha256(content).hexdigest() and info["sizeBytes"] == len(content)

    assert stack.cli("pipelines", "create", pipeline).code == 0
    authorized = stack.cli("pipelines", "authorize", name, pipeline)
    assert authorized.code == 0, authorized.stderr
    started = stack.cli("runs", "start", pipeline, "--branch", "refs/heads/main", "--output", "json")
    assert started.code == 0, started.stderr
    run = started.json()
    job = {"SECUREFILES_JOB_TOKEN": run["jobToken"]}

    # Uploaded through storage-1, downloaded through storage-2: the replicas share the database.
    dest = tmp_path / "job-temp"
    downloaded = stack.cli("agent", "download", name, "--dest", str(dest), storage="storage-2", env=job)
    assert downloaded.code == 0, downloaded.stderr
    assert (dest / name).read_bytes() == content

    assert stack.cli("runs", "complete", run["run"]["name"]).code == 0
    denied = stack.cli("agent", "download", name, "--dest", str(tmp_path / "after"), env=job)
    assert denied.code == 3, denied.stderr


def test_the_deploy_readme_walkthrough_from_the_host_runs_verbatim(stack: Stack, tmp_path: Path) -> None:
    """deploy/README.md's host walkthrough, word for word, in a directory laid out like a
    checkout whose deploy/secrets is this stack's (secrets-init wrote host-client.toml there)."""
    checkout = tmp_path / "checkout"
    (checkout / "deploy").mkdir(parents=True)
    (checkout / "deploy" / "secrets").symlink_to(stack.secrets)
    env = {k: v for k, v in stack.client_env().items() if not k.startswith("SECUREFILES_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = run_block(shell_block(DEPLOY / "README.md", "compose-host"), checkout, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SERVING" in result.stdout and "UNREACHABLE" not in result.stdout
    assert "identical" in result.stdout.splitlines()
    assert "denied after the run (exit 3)" in result.stdout
    assert "TOKEN_REVOKED" in result.stderr
    assert "removed 1 file(s) from job-temp" in result.stdout
    assert not (checkout / "job-temp" / "signing.p12").exists()


def test_probes_and_metrics_on_the_published_operations_ports(stack: Stack) -> None:
    """After the golden path: every service ready (storage naming authz and both kms), and the
    download it served counted under gRPC's metric names."""
    expected = {"authz": {"database"}, "kms-eu": {"database", "authz", "primary_key"},
                "kms-us": {"database", "authz", "primary_key"},
                "storage-1": {"database", "authz", "kms-eu", "kms-us"},
                "storage-2": {"database", "authz", "kms-eu", "kms-us"}}
    for service in SERVICES:
        base = f"http://127.0.0.1:{stack.http_ports[service]}"
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        ready = httpx.get(base + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"] == dict.fromkeys(expected[service], "ok")
    metrics = httpx.get(f"http://127.0.0.1:{stack.http_ports['storage-2']}/metrics", timeout=10).text
    assert 'grpc_method="DownloadSecureFile"' in metrics and "grpc_server_handled_total" in metrics


# -- (2) two regions --------------------------------------------------------------------------


def _data_keys(stack: Stack, region: str) -> dict[str, int]:
    listed = stack.cli("keys", "list", "--region", region, "--output", "json")
    assert listed.code == 0, listed.stderr
    return {version["name"]: version["dataKeys"] for version in listed.json()}


def test_the_web_console_answers_over_https_with_its_own_ca(stack: Stack) -> None:
    """The console runs in the stack (healthy, published); with no sign-in configured it says so."""
    context = ssl.create_default_context(cafile=str(stack.secrets / "web" / "ca.pem"))
    with httpx.Client(base_url=f"https://localhost:{stack.ports['web']}", verify=context, timeout=30) as http:
        assert http.get("/healthz").text == "ok"
        page = http.get("/signin")
    assert page.status_code == 503 and "Sign-in is not configured" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_two_regions_are_isolated(stack: Stack, tmp_path: Path) -> None:
    in_eu, in_us = unique("x-eu"), unique("y-us")
    for project, region in ((in_eu, "eu"), (in_us, "us")):
        created = stack.cli("projects", "create", project, "--region", region)
        assert created.code == 0, created.stderr

    before = {region: _data_keys(stack, region) for region in ("eu", "us")}
    key_versions = {}
    for project, region in ((in_eu, "eu"), (in_us, "us")):
        source = tmp_path / f"{region}.p12"
        source.write_bytes(os.urandom(4096))
        uploaded = stack.cli("--project", project, "files", "upload", str(source), "--output", "json")
        assert uploaded.code == 0, uploaded.stderr
        shown = stack.cli("--project", project, "files", "show", f"{region}.p12", "--output", "json")
        assert shown.code == 0, shown.stderr
        key_versions[region] = shown.json()["keyVersion"]
        assert key_versions[region].startswith(f"regions/{region}/"), key_versions[region]
    after = {region: _data_keys(stack, region) for region in ("eu", "us")}

    for region, other in (("eu", "us"), ("us", "eu")):
        # a region lists only its own key versions, and counts only its own projects' data keys
        assert all(name.startswith(f"regions/{region}/") for name in after[region]), after[region]
        assert key_versions[other] not in after[region]
        assert sum(after[region].values()) == sum(before[region].values()) + 1, (before, after)
        assert after[region][key_versions[region]] == before[region].get(key_versions[region], 0) + 1

    # each project's file is usable by its own jobs only
    for project, region in ((in_eu, "eu"), (in_us, "us")):
        pipeline = unique("deploy")
        assert stack.cli("--project", project, "pipelines", "create", pipeline).code == 0
        assert stack.cli("--project", project, "pipelines", "authorize", f"{region}.p12", pipeline).code == 0
        run = stack.cli("--project", project, "runs", "start", pipeline, "--branch", "refs/heads/main",
                        "--output", "json")
        assert run.code == 0, run.stderr
        job = {"SECUREFILES_JOB_TOKEN": run.json()["jobToken"]}
        dest = tmp_path / f"job-{region}"
        got = stack.cli("--project", project, "agent", "download", f"{region}.p12", "--dest", str(dest), env=job)
        assert got.code == 0, got.stderr
        assert (dest / f"{region}.p12").read_bytes() == (tmp_path / f"{region}.p12").read_bytes()
        other_project = in_us if project == in_eu else in_eu
        other_region = "us" if region == "eu" else "eu"
        crossed = stack.cli("--project", other_project, "agent", "download", f"{other_region}.p12",
                            "--dest", str(tmp_path / "crossed"), env=job)
        assert crossed.code == 2 and "WRONG_PROJECT" in crossed.stderr  # the agent keeps to the job's project
        with stack.client(project=other_project, token=job["SECUREFILES_JOB_TOKEN"]) as forced, \
                pytest.raises(PermissionDenied) as refused:  # and the services refuse it anyway
            forced.download_secure_file(f"{other_region}.p12", tmp_path / "crossed")
        assert refused.value.reason == "WRONG_PROJECT"


# -- (3) restarts under traffic ---------------------------------------------------------------


def _reason(error: Exception) -> str:
    return error.reason if isinstance(error, SecureFilesError) else f"{type(error).__name__}: {error}"


@dataclass
class Traffic:
    """Uploads and job downloads in a loop, alternating the storage replicas; bounded in count and time."""

    stack: Stack
    pipeline: str
    job_token: str
    max_ops: int = 1000
    max_seconds: float = 240
    uploaded: dict[str, bytes] = field(default_factory=dict)  # uploads that reported success
    attempted: dict[str, bytes] = field(default_factory=dict)  # uploads that reported an error
    corrupt: list[str] = field(default_factory=list)  # downloads that "succeeded" with other bytes
    errors: list[str] = field(default_factory=list)
    downloads_ok: int = 0
    events: list[tuple[float, str, bool]] = field(default_factory=list)  # (monotonic time, what, ok)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def successes(self) -> int:
        with self.lock:
            return len(self.uploaded) + self.downloads_ok

    def run(self) -> None:
        rng = random.Random(7)
        replicas = ("storage-1", "storage-2")
        admins = {r: self.stack.client(storage=r) for r in replicas}
        jobs = {r: self.stack.client(token=self.job_token, storage=r) for r in replicas}
        deadline = time.monotonic() + self.max_seconds
        try:
            for op in range(self.max_ops):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                replica = replicas[op % 2]
                name = f"load-{op:04d}-{unique('f')}.bin"
                size = 1024 * 1024 + rng.randrange(4096) if op % 5 == 0 else rng.randrange(1, 64 * 1024)
                content = rng.randbytes(size)
                try:
                    admins[replica].upload_file(content, name=name)
                    with self.lock:
                        self.uploaded[name] = content
                        self.events.append((time.monotonic(), "upload", True))
                    # (a failure here only costs this loop a download; the check afterwards re-authorizes)
                    admins[replica].set_pipeline_permission(name, self.pipeline, True)
                except Exception as error:  # any error the client reports is an allowed failure
                    if name in self.uploaded:
                        with self.lock:
                            self.errors.append(f"authorize via {replica}: {_reason(error)}")
                        continue
                    with self.lock:
                        self.attempted[name] = content
                        self.errors.append(f"upload via {replica}: {_reason(error)}")
                        self.events.append((time.monotonic(), "upload", False))
                    time.sleep(0.2)  # failures come back fast: do not spin
                with self.lock:
                    done = list(self.uploaded.items())
                if done:
                    target, expected = rng.choice(done)
                    self._download(jobs[replicas[(op + 1) % 2]], target, expected, f"via {replicas[(op + 1) % 2]}")
                time.sleep(0.05)
        finally:
            for client in (*admins.values(), *jobs.values()):
                client.close()

    def _download(self, job: object, name: str, expected: bytes, where: str) -> None:
        with tempfile.TemporaryDirectory() as dest:
            try:
                got = job.download_secure_file(name, Path(dest), retry_count=1).path.read_bytes()  # type: ignore[attr-defined]
            except Exception as error:
                with self.lock:
                    self.errors.append(f"download {where}: {_reason(error)}")
                    self.events.append((time.monotonic(), "download", False))
                return
        with self.lock:
            self.events.append((time.monotonic(), "download", True))
            if got == expected:
                self.downloads_ok += 1
            else:
                self.corrupt.append(name)


@pytest.fixture
def traffic(stack: Stack) -> Iterator[Traffic]:
    pipeline = unique("load")
    with stack.client() as admin:
        admin.create_pipeline(pipeline)
        token = admin.start_run(pipeline, "refs/heads/main").job_token
    load = Traffic(stack, pipeline, token)
    thread = threading.Thread(target=load.run, name="e2e-traffic", daemon=True)
    thread.start()
    yield load
    load.stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the traffic loop did not stop"


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_restart_storage_replica_and_kms_under_traffic(stack: Stack, traffic: Traffic, tmp_path: Path) -> None:
    _wait_for(lambda: traffic.successes() >= 6, 90, "traffic to get going")

    disrupted = time.monotonic()
    stack.compose_cmd("restart", "storage-1")
    stack.compose_cmd("stop", "kms-eu")
    stopped = time.monotonic()

    def ran_into_the_missing_kms() -> bool:
        with traffic.lock:
            return any(t > stopped and not ok for t, _, ok in traffic.events)

    _wait_for(ran_into_the_missing_kms, 60, "traffic to run into the missing kms-eu")
    stack.compose_cmd("start", "kms-eu")
    stack.wait_healthy(SERVICES, timeout=120)
    healthy = time.monotonic()

    after_restart = traffic.successes()
    _wait_for(lambda: traffic.successes() >= after_restart + 10, 120, "traffic to recover after the restarts")
    traffic.stop.set()
    _wait_for(lambda: not any(t.name == "e2e-traffic" and t.is_alive() for t in threading.enumerate()), 120,
              "the traffic loop to stop")

    assert traffic.corrupt == [], f"downloads returned wrong bytes: {traffic.corrupt}"
    assert len(traffic.uploaded) >= 10, (len(traffic.uploaded), traffic.errors)
    failures = [t for t, _, ok in traffic.events if not ok]
    print(f"\ntraffic: {len(traffic.uploaded)} uploads ok, {len(traffic.attempted)} failed, "
          f"{traffic.downloads_ok} downloads ok; disruption to healthy {healthy - disrupted:.1f} s, "
          f"last failure {max(failures, default=disrupted) - healthy:+.1f} s after healthy; "
          f"errors: {sorted(set(traffic.errors))}")

    # Every upload that reported success is there, with its bytes, through either replica.
    with stack.client() as admin:
        pipeline = unique("verify")
        admin.create_pipeline(pipeline)
        for name in [*traffic.uploaded, *traffic.attempted]:
            try:
                admin.set_pipeline_permission(name, pipeline, True)
            except SecureFilesError as error:
                assert name in traffic.attempted, f"{name} was uploaded but is gone: {error.reason}"
        token = admin.start_run(pipeline, "refs/heads/main").job_token
    for index, replica in enumerate(("storage-1", "storage-2")):
        with stack.client(token=token, storage=replica) as job:
            for name, content in [*traffic.uploaded.items()][index::2]:
                got = job.download_secure_file(name, tmp_path / replica, retry_count=8).path
                assert got.read_bytes() == content, name
                got.unlink()
            # An upload whose client saw an error may or may not exist; if it does, it is whole.
            for name, content in traffic.attempted.items():
                try:
                    got = job.download_secure_file(name, tmp_path / replica, retry_count=2).path
                except SecureFilesError as error:
                    assert error.reason in ("NOT_FOUND", "SECURE_FILE_NOT_FOUND", "PIPELINE_NOT_AUTHORIZED") \
                        or error.code in ("NOT_FOUND", "PERMISSION_DENIED"), (name, error.code, error.reason)
                    continue
                assert got.read_bytes() == content, name
                got.unlink()


# -- (4) no secret material outside the mounted secrets -------------------------------------


def _variants(raw: bytes) -> list[bytes]:
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"=")]


def secret_needles(secrets_dir: Path) -> dict[str, list[bytes]]:
    """The generated root keys and signing key in every encoding they could leak in."""
    needles = {}
    for region in ("eu", "us"):
        text = (secrets_dir / f"kms-{region}-root-key").read_bytes().strip()
        needles[f"kms-{region}-root-key"] = [text, *_variants(base64.b64decode(text))]
    pem = (secrets_dir / "authz-signing-key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    body = b"".join(pem.strip().splitlines()[1:-1])
    needles["authz-signing-key"] = [body, *_variants(der), *_variants(raw)]
    return needles


def _scan_stream(command: list[str], needles: dict[str, list[bytes]], ok: tuple[int, ...] = (0,)) -> set[str]:
    """Names of the needles found in a command's stdout (read in overlapping chunks); the command
    must exit with one of `ok`."""
    longest = max(len(n) for group in needles.values() for n in group)
    found: set[str] = set()
    tail = b""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(8 * 1024 * 1024):
            window = tail + chunk
            for label, group in needles.items():
                if label not in found and any(needle in window for needle in group):
                    found.add(label)
            tail = window[-longest:]
    assert process.returncode in ok, f"{' '.join(command)} exited {process.returncode}"
    return found


def test_no_secret_material_in_containers_or_logs(stack: Stack) -> None:
    needles = secret_needles(stack.secrets)
    containers = {c["Name"]: c for c in stack.containers()}
    assert {c["Service"] for c in containers.values()} >= {"postgres", "secrets-init", *SERVICES}

    # The scan finds what it looks for: the services do see their keys, as the mounted secrets.
    for service, secret, label in (("kms-eu", "kms-eu-root-key", "kms-eu-root-key"),
                                   ("kms-us", "kms-us-root-key", "kms-us-root-key"),
                                   ("authz", "authz-signing-key.pem", "authz-signing-key")):
        command = ["docker", "exec", f"{stack.project}-{service}-1", "cat", f"/run/secrets/{secret}"]
        assert _scan_stream(command, needles) == {label}

    hits: dict[str, set[str]] = {}
    for name, container in sorted(containers.items()):
        # The container's filesystem (image and writable layer; not the bind-mounted secrets) ...
        hits[f"{name} (export)"] = _scan_stream(["docker", "export", name], needles)
        if container["State"] == "running":
            # ... and what export does not show: tmpfs /tmp, and PostgreSQL's data (all four databases, WAL).
            extra = "/var/lib/postgresql/data" if container["Service"] == "postgres" else "/tmp"
            # GNU tar exits 1 when a file changed while it was read (PostgreSQL writes on): still
            # read whole; 2 is a real failure.
            hits[f"{name} ({extra})"] = _scan_stream(["docker", "exec", name, "tar", "-cf", "-", "-C", extra, "."],
                                                     needles, ok=(0, 1))
    # Configuration (environment, mounts, labels) of every container.
    hits["docker inspect"] = _scan_stream(["docker", "inspect", *containers], needles)
    logs = stack.logs().encode()
    hits["docker compose logs"] = {label for label, group in needles.items() if any(n in logs for n in group)}

    assert {where: found for where, found in hits.items() if found} == {}


# -- the end --------------------------------------------------------------------------------


def test_down_removes_containers_volumes_and_networks(stack: Stack) -> None:
    assert stack.containers()
    stack.down()
    assert leftovers(stack.project) == {"containers": [], "volumes": [], "networks": []}
