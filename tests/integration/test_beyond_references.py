"""What no reference product has: typed metadata with expiry, versioned replacement,
multi-file download, and the client API for custom tasks."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from securefiles.client import FailedPrecondition, NotFound, PermissionDenied, SecureFilesClient
from tests.conftest import LocalSystem, job_token_for, unique, user_token

UTC = dt.UTC


def certificate_pem(common_name: str, not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_after - dt.timedelta(days=365))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# -- typed metadata and expiry --------------------------------------------------------


def test_certificate_metadata_and_expiry_filters(system: LocalSystem, tmp_path) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    soon, expired, later = unique("soon") + ".crt", unique("expired") + ".pem", unique("later") + ".cer"
    for name, not_after in ((soon, now + dt.timedelta(days=10)), (expired, now - dt.timedelta(days=2)),
                            (later, now + dt.timedelta(days=400))):
        path = tmp_path / name
        path.write_bytes(certificate_pem(f"CN for {name}", not_after))
        assert system.cli("files", "upload", str(path)).code == 0

    shown = system.cli("files", "show", soon, "--output", "json").json()
    assert shown["x509"]["subject"] == f"CN=CN for {soon}" and shown["pkcs12"] is None
    assert shown["expireTime"] == (now + dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

    expiring = {f["displayName"]
                for f in system.cli("files", "list", "--expiring-within", "30d", "--output", "json").json()}
    assert soon in expiring and expired in expiring and later not in expiring
    gone = {f["displayName"] for f in system.cli("files", "list", "--expired", "--output", "json").json()}
    assert expired in gone and soon not in gone and later not in gone

    opaque = unique("opaque")
    with system.client() as admin:
        assert admin.upload_file(os.urandom(100), name=opaque).WhichOneof("file_metadata") == "unknown"
    listed = system.cli("files", "list", "--name-pattern", opaque, "--output", "json").json()
    assert listed[0]["unknown"] == {} and listed[0]["x509"] is None and listed[0]["expireTime"] is None


def test_agent_warns_about_expiring_files(system: LocalSystem, tmp_path) -> None:
    name = unique("expiring") + ".crt"
    with system.client() as admin:
        admin.upload_file(certificate_pem("ci", dt.datetime.now(UTC) + dt.timedelta(days=5)), name=name)
    token = job_token_for(system, name)
    github = system.cli("agent", "download", name, "--dest", str(tmp_path / "gh"),
                        env={"SECUREFILES_JOB_TOKEN": token, "GITHUB_ACTIONS": "true"})
    assert github.code == 0, github.stderr
    assert f"::warning::secure file {name} expires on" in github.stderr
    azure = system.cli("agent", "download", name, "--dest", str(tmp_path / "az"),
                       env={"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True"})
    assert f"##vso[task.logissue type=warning]secure file {name} expires on" in azure.stderr


# -- versioned replacement ------------------------------------------------------------


def test_replace_is_off_by_default_like_azure(system: LocalSystem) -> None:
    project = unique("proj")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.upload_file(b"v1", name="signing.p12")
        with pytest.raises(FailedPrecondition) as error:
            admin.replace_file("signing.p12", b"v2")
        assert error.value.reason == "REPLACE_NOT_ALLOWED"
        assert not admin.get_library().allow_replace


def test_only_administrators_change_library_settings(system: LocalSystem) -> None:
    creator = f"user:{unique('creator')}"
    with system.client() as admin:
        admin.assign_role(creator, "creator")
    denied = system.cli("library", "update", "--allow-replace", "true", env={
        "SECUREFILES_TOKEN": user_token(system, creator)})
    assert denied.code == 3


def test_replace_keeps_identity_permissions_and_checks_then_rollback(system: LocalSystem, tmp_path) -> None:
    project = unique("proj")
    with system.client() as admin:
        admin.create_project(project)
    assert system.cli("--project", project, "library", "update", "--allow-replace", "true").code == 0
    with system.client(project=project) as admin:
        original = admin.upload_file(b"version one", name="app.p12")
        admin.create_pipeline("release")
        admin.set_pipeline_permission("app.p12", "release", True)
        reviewer = f"user:{unique('reviewer')}"
        admin.assign_role(reviewer, "reader", file="app.p12")
    assert system.cli("--project", project, "checks", "add", "app.p12", "branch-control", "--allowed",
                      "refs/heads/main").code == 0
    source = tmp_path / "new.p12"
    source.write_bytes(b"version two")
    replaced = system.cli("--project", project, "files", "replace", "app.p12", str(source), "--reason",
                          "certificate renewed", "--output", "json")
    assert replaced.code == 0, replaced.stderr
    info = replaced.json()
    assert info["secureFileId"] == original.secure_file_id and info["version"] == 2
    assert info["sha256"] == hashlib.sha256(b"version two").hexdigest()

    with system.client(project=project) as admin:
        token = admin.start_run("release", "refs/heads/main").job_token
        assert [c.type for c in admin.list_checks("app.p12")] == ["branch-control"]
    with system.client(token=token, project=project) as job:
        assert job.download_secure_file("app.p12", tmp_path / "a").path.read_bytes() == b"version two"
    with system.client(token=user_token(system, reviewer), project=project) as reader:
        assert reader.get_file("app.p12").version == 2

    rolled = system.cli("--project", project, "files", "rollback", "app.p12", "--to-version", "1", "--reason",
                        "new cert breaks signing", "--output", "json")
    assert rolled.code == 0 and rolled.json()["version"] == 1
    with system.client(token=token, project=project) as job:
        assert job.download_secure_file("app.p12", tmp_path / "b").path.read_bytes() == b"version one"

    events = system.cli("audit", "list", "--service", "storage", "--output", "json").json()
    replace_events = [e for e in events if e["action"] == "ReplaceSecureFileContent"
                      and e["resource"] == original.name]
    assert replace_events and replace_events[-1]["details"]["reason"] == "certificate renewed"
    assert replace_events[-1]["principal"] == "user:admin"
    rollbacks = [e for e in events if e["action"] == "RollbackSecureFile" and e["resource"] == original.name]
    assert rollbacks and rollbacks[-1]["details"]["reason"] == "new cert breaks signing"


def test_old_versions_beyond_the_limit_are_crypto_shredded(system: LocalSystem) -> None:
    project = unique("proj")
    with system.client() as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.update_library(allow_replace=True, keep_versions=2)
        created = admin.upload_file(b"v1", name="key.jks")
        for content in (b"v2", b"v3", b"v4"):
            admin.replace_file("key.jks", content)
        kept = admin.list_versions("key.jks")
        assert [(v.version, v.current) for v in kept] == [(4, True), (3, False)]
        with pytest.raises(NotFound):
            admin.rollback_file("key.jks", 1)
    rows = system.query("storage", "SELECT version FROM file_versions WHERE file_id = :f ORDER BY version",
                        f=created.secure_file_id)
    assert rows == [(3,), (4,)]
    from tests.conftest import blob_files

    assert {k for k in blob_files(system) if k.startswith(created.secure_file_id)} == {
        system.blob_key(created.secure_file_id, 3), system.blob_key(created.secure_file_id, 4)}


# -- multi-file download --------------------------------------------------------------


def test_glob_download_and_all_or_nothing(system: LocalSystem, tmp_path) -> None:
    prefix = unique("ios")
    names = [f"{prefix}-dist.p12", f"{prefix}-dev.mobileprovision"]
    other = unique("android") + ".jks"
    with system.client() as admin:
        for name in [*names, other]:
            admin.upload_file(name.encode(), name=name)
    token = job_token_for(system, *names)  # not `other`
    dest = tmp_path / "all"
    ok = system.cli("agent", "download", f"{prefix}-*", "--dest", str(dest), env={"SECUREFILES_JOB_TOKEN": token})
    assert ok.code == 0, ok.stderr
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(names)

    partial = tmp_path / "none"
    failed = system.cli("agent", "download", f"{prefix}-*", other, "--dest", str(partial),
                        env={"SECUREFILES_JOB_TOKEN": token})
    assert failed.code == 3 and "PIPELINE_NOT_AUTHORIZED" in failed.stderr
    assert not partial.exists() or [p for p in partial.iterdir() if not p.name.startswith(".")] == []
    nothing = system.cli("agent", "download", "no-such-*", "--dest", str(partial),
                         env={"SECUREFILES_JOB_TOKEN": token})
    assert nothing.code == 5


def test_named_output_for_github_and_azure(system: LocalSystem, tmp_path) -> None:
    name = unique("signing") + ".p12"
    with system.client() as admin:
        admin.upload_file(b"p12", name=name)
    token = job_token_for(system, name)
    github_output = tmp_path / "github_output"
    github_output.write_text("earlier=1\n")
    result = system.cli("agent", "download", name, "--name", "signingCert", "--dest", str(tmp_path / "gh"),
                        env={"SECUREFILES_JOB_TOKEN": token, "GITHUB_OUTPUT": str(github_output)})
    assert result.code == 0, result.stderr
    assert github_output.read_text() == f"earlier=1\nsigningCert_path={tmp_path / 'gh' / name}\n"
    azure = system.cli("agent", "download", name, "--name", "signingCert", "--dest", str(tmp_path / "az"),
                       env={"SECUREFILES_JOB_TOKEN": token, "TF_BUILD": "True"})
    assert f"##vso[task.setvariable variable=signingCert.secureFilePath]{tmp_path / 'az' / name}" in azure.stdout


# -- the client API, as a task author uses it -----------------------------------------


def test_custom_task_with_the_client_api(system: LocalSystem, tmp_path, monkeypatch) -> None:
    names = [unique("task") + ".pem", unique("task") + ".key"]
    forbidden = unique("forbidden")
    with system.client() as admin:
        for name in [*names, forbidden]:
            admin.upload_file(name.encode() * 3, name=name)
    token = job_token_for(system, *names)
    for key, value in system.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECUREFILES_JOB_TOKEN", token)

    with SecureFilesClient.from_environment(job=True) as client:
        authorized = sorted(f.display_name for f in client.list_authorized_files())
        assert authorized == sorted(names)
        paths = [client.download_secure_file(name, tmp_path).path for name in authorized]
        with pytest.raises(PermissionDenied) as denied:
            client.download_secure_file(forbidden, tmp_path)
    assert denied.value.reason == "PIPELINE_NOT_AUTHORIZED"
    assert [p.read_bytes() for p in paths] == [n.encode() * 3 for n in authorized]
