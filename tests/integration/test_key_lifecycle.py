"""Key lifecycle an operator can trust: regions, rotation, rewrap, disable, destroy, audit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from securefiles.cli.up import ensure_postgres_database
from securefiles.client import DataLoss, FailedPrecondition
from securefiles.client.config import load_config
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.rich_status import error_info_of
from securefiles.common.tls import channel_credentials, channel_options, kms_server_name
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from tests.conftest import LocalSystem, blob_files, job_token_for, stored_blob_keys, unique


def _keys(system: LocalSystem, *args: str) -> object:
    result = system.cli("keys", *args, "--output", "json")
    assert result.code == 0, result.stderr
    return result.json()


def _counts(system: LocalSystem) -> dict[int, int]:
    return {v["version"]: v["dataKeys"] for v in _keys(system, "list")}


def _upload_many(system: LocalSystem, count: int, project: str = "default") -> dict[str, bytes]:
    files = {}
    with system.client(project=project) as admin:
        for index in range(count):
            name = f"file-{index}-{unique('')}"
            files[name] = os.urandom(1024 + index)
            admin.upload_file(files[name], name=name)
    return files


def _download_all(system: LocalSystem, files: dict[str, bytes], dest: Path, project: str = "default") -> None:
    token = job_token_for(system, *files, project=project)
    with system.client(token=token, project=project) as job:
        for name, content in files.items():
            assert job.download_secure_file(name, dest, retry_count=0).path.read_bytes() == content


def test_two_regions_never_share_keys(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.start("eu,us")
    with fresh_system.client() as admin:
        admin.create_project("in-eu", "eu")
        admin.create_project("in-us", "us")
    with fresh_system.client(project="in-eu") as eu_admin:
        eu_file = eu_admin.upload_file(b"eu secret", name="eu.p12")
    with fresh_system.client(project="in-us") as us_admin:
        us_file = us_admin.upload_file(b"us secret", name="us.p12")
    assert eu_file.key_version.startswith("regions/eu/") and us_file.key_version.startswith("regions/us/")
    _download_all(fresh_system, {"eu.p12": b"eu secret"}, tmp_path / "eu", project="in-eu")
    _download_all(fresh_system, {"us.p12": b"us secret"}, tmp_path / "us", project="in-us")

    ((eu_wrapped,),) = fresh_system.query("storage", "SELECT wrapped_key FROM file_versions WHERE file_id = :f",
                                          f=eu_file.secure_file_id)
    us_kms = kms_pb2_grpc.KeyManagementServiceStub(fresh_system.channel("kms", identity="storage", region="us"))
    context = {"project": "in-eu", "secure_file_id": eu_file.secure_file_id, "version": "1"}
    for key_ring in ("regions/us", "regions/eu"):
        with pytest.raises(grpc.RpcError) as error:
            us_kms.DecryptDataKey(kms_pb2.DecryptDataKeyRequest(
                name=key_ring, wrapped_key=eu_wrapped, encryption_context=context), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info_of(error.value).reason == "WRONG_REGION"

    secrets = fresh_system.state_dir / "secrets"
    assert (secrets / "kms-eu-root-key").read_bytes() != (secrets / "kms-us-root-key").read_bytes()
    material = {region: [bytes(row[0]) for row in fresh_system.query(f"kms-{region}", "SELECT sealed_material "
                                                                     "FROM key_versions")] for region in ("eu", "us")}
    assert material["eu"] and material["us"]
    for region, other in (("eu", "us"), ("us", "eu")):
        # Every row of the other region's database, as bytes: no sealed version appears there.
        rows = fresh_system.query(f"kms-{other}", "SELECT sealed_material FROM key_versions")
        other_bytes = b"".join(bytes(r[0]) for r in rows)
        if not fresh_system.database_url:
            other_bytes += b"".join(p.read_bytes() for p in (fresh_system.state_dir / "data").glob(f"kms-{other}.db*"))
        for sealed in material[region]:
            assert sealed not in other_bytes
            assert sealed[12:44] not in other_bytes  # not even a fragment of the ciphertext

    # Not even a TLS key: each region's kms has its own certificate naming the region, and a
    # client that expects one region's kms (storage, the CLI) refuses the other's.
    pki = fresh_system.state_dir / "pki"
    assert (pki / "kms-eu-key.pem").read_bytes() != (pki / "kms-us-key.pem").read_bytes()
    config = load_config(fresh_system.env())
    for expected, actual in (("us", "eu"), ("eu", "us"), ("eu", "eu")):
        options = channel_options(config.kms[actual], kms_server_name(expected))
        with grpc.secure_channel(config.kms[actual], channel_credentials(fresh_system.tls("storage")),
                                 options=options) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            if expected == actual:
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
                    health_pb2.HealthCheckResponse.SERVING
            else:
                with pytest.raises(grpc.RpcError) as refused:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake failed


def test_rotate_rewrap_disable_destroy_keeps_every_file(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.start()
    files = _upload_many(fresh_system, 12)
    assert _counts(fresh_system) == {1: 12}
    rotated = _keys(fresh_system, "rotate", "--reason", "quarterly")
    assert rotated["version"] == 2

    report = _keys(fresh_system, "rewrap")
    assert report["before"] == [{"keyVersion": "regions/eu/keyVersions/1", "dataKeys": 12}]
    assert report["after"] == [{"keyVersion": "regions/eu/keyVersions/2", "dataKeys": 12}]
    assert report["rewrapped"] == 12 and report["failed"] == 0
    assert _counts(fresh_system) == {2: 12, 1: 0}

    assert _keys(fresh_system, "disable", "1")["state"] == "STATE_DISABLED"
    _download_all(fresh_system, files, tmp_path / "after-disable")
    destroyed = _keys(fresh_system, "destroy", "1")  # no data key left: no --force needed
    assert destroyed["state"] == "STATE_DESTROYED"
    _download_all(fresh_system, files, tmp_path / "after-destroy")
    assert fresh_system.query("kms-eu", "SELECT sealed_material FROM key_versions WHERE version = 1") == [(None,)]

    events = fresh_system.cli("audit", "list", "--output", "json").json()
    kms_actions = {(e["action"], e["resource"]) for e in events if e["service"] == "kms-eu"}
    assert ("RotateKey", "regions/eu/keyVersions/2") in kms_actions
    assert ("DisableKeyVersion", "regions/eu/keyVersions/1") in kms_actions
    assert ("DestroyKeyVersion", "regions/eu/keyVersions/1") in kms_actions
    assert ("RotateKeyOnDeploy", "regions/eu/keyVersions/1") in kms_actions
    assert any(e["action"] == "RewrapDataKeys" and e["service"] == "storage" for e in events)
    assert all(e["principal"] == "user:admin" for e in events
               if e["action"] in ("RotateKey", "DisableKeyVersion", "DestroyKeyVersion"))
    verified = fresh_system.cli("audit", "verify", "--output", "json")
    assert verified.code == 0 and all(v["intact"] for v in verified.json().values())


def test_disable_before_rewrap_blocks_downloads_until_enabled(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.start()
    files = _upload_many(fresh_system, 2)
    name = next(iter(files))
    token = job_token_for(fresh_system, *files)
    _keys(fresh_system, "rotate")
    _keys(fresh_system, "disable", "1")
    with fresh_system.client(token=token) as job, pytest.raises(FailedPrecondition) as error:
        job.download_secure_file(name, tmp_path / "blocked", retry_count=0)
    assert error.value.reason == "KEY_VERSION_DISABLED"
    assert not (tmp_path / "blocked").exists() or list((tmp_path / "blocked").iterdir()) == []
    cli = fresh_system.cli("agent", "download", name, "--dest", str(tmp_path / "cli"), "--retry-count", "0",
                           env={"SECUREFILES_JOB_TOKEN": token})
    assert cli.code == 1 and "KEY_VERSION_DISABLED" in cli.stderr

    # Rewrap cannot move keys it cannot unwrap, and says so.
    rewrap = fresh_system.cli("keys", "rewrap", "--output", "json")
    assert rewrap.code == 1 and rewrap.json()["failed"] == 2

    _keys(fresh_system, "enable", "1")
    with fresh_system.client(token=token) as job:
        assert job.download_secure_file(name, tmp_path / "ok", retry_count=0).path.read_bytes() == files[name]


def test_destroy_in_use_needs_force_and_typed_confirmation(fresh_system: LocalSystem, tmp_path) -> None:
    fresh_system.start()
    files = _upload_many(fresh_system, 1)
    name = next(iter(files))
    token = job_token_for(fresh_system, name)
    _keys(fresh_system, "rotate")
    refused = fresh_system.cli("keys", "destroy", "1")
    assert refused.code == 1 and "KEY_VERSION_IN_USE" in refused.stderr
    wrong = fresh_system.cli("keys", "destroy", "1", "--force", input_text="yes\n")
    assert wrong.code == 2 and "NOT_CONFIRMED" in wrong.stderr
    assert {v["version"]: v["state"] for v in _keys(fresh_system, "list")}[1] == "STATE_ENABLED"

    forced = fresh_system.cli("keys", "destroy", "1", "--force", input_text="regions/eu/keyVersions/1\n")
    assert forced.code == 0, forced.stderr
    dest = tmp_path / "dest"
    with fresh_system.client(token=token) as job, pytest.raises(DataLoss) as error:
        job.download_secure_file(name, dest, retry_count=0)
    assert error.value.reason == "KEY_DESTROYED"
    assert list(dest.iterdir()) == []


def test_downloads_never_fail_while_keys_rotate_and_rewrap(fresh_system: LocalSystem, tmp_path) -> None:
    # What this proves is that rotation and rewrap never break a download, not the per-caller
    # rate limit: 16 agents on one job token would pass the default 200 requests/s on a fast moment.
    fresh_system.extra_env.update({"SECUREFILES_REQUESTS_PER_SECOND": "100000", "SECUREFILES_REQUEST_BURST": "100000"})
    fresh_system.start()
    files = _upload_many(fresh_system, 6)
    token = job_token_for(fresh_system, *files)
    stop = threading.Event()
    failures: list[str] = []
    rounds = [0] * 16  # full passes over every file, per agent
    progressed = threading.Condition()

    def agent(index: int) -> None:
        with fresh_system.client(token=token) as job:
            while not stop.is_set():
                for name, content in files.items():
                    try:
                        got = job.download_secure_file(name, tmp_path / f"agent-{index}", retry_count=0)
                        if got.path.read_bytes() != content:
                            failures.append(f"{name}: bytes differ")
                    except Exception as error:
                        failures.append(f"{name}: {error!r}")
                with progressed:
                    rounds[index] += 1
                    progressed.notify_all()

    def every_agent_completes_a_round_after_now() -> None:
        with progressed:
            target = [r + 1 for r in rounds]
            assert progressed.wait_for(lambda: all(r >= t for r, t in zip(rounds, target, strict=True)),
                                       timeout=120), "agents stopped making progress"

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            _keys(fresh_system, "rotate")
            # Every agent downloads every file while the new version is primary and the old keys wrap...
            every_agent_completes_a_round_after_now()
            _keys(fresh_system, "rewrap")
            # ...and again once every data key has moved.
            every_agent_completes_a_round_after_now()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert _counts(fresh_system)[4] == len(files)


def test_concurrent_rotation_on_deploy_creates_one_version(tmp_path) -> None:
    pki = tmp_path / "pki"
    ca = ensure_ca(pki)
    kms_id = ensure_identity(pki, "kms")
    root = tmp_path / "root-key"
    root.write_bytes(os.urandom(32))
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL")
    database = (ensure_postgres_database(server, f"sf_{uuid.uuid4().hex[:8]}_kms_race") if server
                else f"sqlite:///{tmp_path / 'kms.db'}")

    def start_replicas(deployment: str) -> None:
        processes = []
        for replica in range(3):
            env = {**os.environ, "SECUREFILES_LISTEN": "127.0.0.1:0", "SECUREFILES_TLS_CA_FILE": str(ca),
                   "SECUREFILES_TLS_CERT_FILE": str(kms_id.cert), "SECUREFILES_TLS_KEY_FILE": str(kms_id.key),
                   "SECUREFILES_DATABASE_URL": database, "SECUREFILES_REGION": "eu",
                   "SECUREFILES_KMS_ROOT_KEY_FILE": str(root), "SECUREFILES_DEPLOYMENT_ID": deployment,
                   "SECUREFILES_AUTHZ_ENDPOINT": "127.0.0.1:1",
                   "SECUREFILES_PORT_FILE": str(tmp_path / f"{deployment}-{replica}.port")}
            processes.append(subprocess.Popen([sys.executable, "-m", "securefiles", "serve", "kms"], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        try:
            deadline = time.monotonic() + 60
            while not all((tmp_path / f"{deployment}-{r}.port").exists() for r in range(3)):
                assert all(p.poll() is None for p in processes), [p.stderr.read() for p in processes if p.stderr]
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)

    def versions() -> list[tuple[int, str, str | None]]:
        engine = create_engine(database)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version, state, deployment_id FROM key_versions ORDER BY version"))
            found = [tuple(row) for row in rows]
        engine.dispose()
        return found

    start_replicas("release-1")
    assert versions() == [(1, "PRIMARY", "release-1")]
    start_replicas("release-2")
    assert versions() == [(1, "ENABLED", "release-1"), (2, "PRIMARY", "release-2")]
    start_replicas("release-2")
    assert len(versions()) == 2


def test_delete_crypto_shreds_keys_and_ciphertext(system: LocalSystem) -> None:
    name = unique("shred")
    with system.client() as admin:
        created = admin.upload_file(b"to be shredded", name=name)
        admin.delete_file(name)
    assert system.query("storage", "SELECT count(*) FROM file_versions WHERE file_id = :f",
                        f=created.secure_file_id) == [(0,)]
    assert not any(created.secure_file_id in key for key in blob_files(system))
    assert not any(created.secure_file_id in key for key in stored_blob_keys(system))
