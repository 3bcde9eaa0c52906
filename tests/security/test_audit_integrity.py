"""The audit log: tampering is detected, events say who did what to which resource, no secret
is ever written into it, and content is never released without an audit entry.

All tests share one system of this module's own (tests/security/conftest.py): each tampering
test breaks one chain, checks `securefiles audit verify`, and restores the rows it touched.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select, update

from securefiles.client.check_spec import build_check
from securefiles.common.audit import AuditEntry, AuditLog, audit_events, audit_head
from securefiles.common.errors import PermissionDenied, Unavailable
from securefiles.common.rich_status import error_info_of
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique, user_token

SERVICES = ("storage", "authz", "kms-eu")


# -- helpers ----------------------------------------------------------------------------


def _verify(system: LocalSystem) -> tuple[int, dict]:
    result = system.cli("audit", "verify", "--output", "json")
    assert result.code in (0, 1), result.stderr
    return result.code, result.json()


def _assert_intact(system: LocalSystem) -> None:
    """Every chain intact, checked on the databases directly (no CLI start, no audit entry of its own)."""
    for service in SERVICES:
        engine = system.engine(service)
        try:
            key = (system.state_dir / "secrets" / f"{service}-audit-key").read_bytes().strip()
            result = AuditLog(engine, service, key=key).verify()
        finally:
            engine.dispose()
        assert result.intact, (service, result)


def _rows(system: LocalSystem, service: str) -> list[dict]:
    engine = system.engine(service)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(audit_events).order_by(audit_events.c.sequence))]
    finally:
        engine.dispose()


def _restore(system: LocalSystem, service: str, originals: list[dict]) -> None:
    """Put rows back exactly as they were (re-inserting deleted ones)."""
    engine = system.engine(service)
    try:
        with engine.begin() as conn:
            for row in originals:
                conn.execute(audit_events.delete().where(audit_events.c.sequence == row["sequence"]))
                conn.execute(audit_events.insert().values(**row))
    finally:
        engine.dispose()


def _snapshot(system: LocalSystem, service: str) -> tuple[list[dict], dict]:
    engine = system.engine(service)
    try:
        with engine.connect() as conn:
            head = dict(conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()._mapping)
    finally:
        engine.dispose()
    return _rows(system, service), head


def _reset(system: LocalSystem, service: str, snapshot: tuple[list[dict], dict]) -> None:
    rows, head = snapshot
    engine = system.engine(service)
    try:
        with engine.begin() as conn:
            conn.execute(audit_events.delete())
            for row in rows:
                conn.execute(audit_events.insert().values(**row))
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(
                sequence=head["sequence"], hash=head["hash"]))
    finally:
        engine.dispose()


def _rechain(system: LocalSystem, service: str) -> None:
    """Recompute every hash and the head from the rows as they are (what an attacker with
    database access can do, since the chain has no secret)."""
    engine = system.engine(service)
    try:
        entries = AuditLog(engine, service).list(0, 10**9)
        previous = ""
        with engine.begin() as conn:
            for entry in entries:
                fixed = AuditEntry(**{**entry.__dict__, "previous_hash": previous, "hash": ""})
                previous = fixed.computed_hash()
                conn.execute(update(audit_events).where(audit_events.c.sequence == entry.sequence).values(
                    previous_hash=fixed.previous_hash, hash=previous))
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(
                sequence=entries[-1].sequence, hash=previous))
    finally:
        engine.dispose()


def _assert_only_broken(report: dict, service: str, first_bad: int, problems: tuple[str, ...]) -> None:
    broken = report[service]
    assert broken["intact"] is False, report
    assert broken["firstBadSequence"] == first_bad, report
    assert broken["problem"] in problems, report
    assert all(report[s]["intact"] for s in SERVICES if s != service), report


@contextmanager
def _audit_refuses_inserts(system: LocalSystem, service: str = "storage") -> Iterator[None]:
    """Make the audit table refuse every insert, as a full disk or a revoked grant would."""
    if system.database_url:
        system.execute(service, "CREATE FUNCTION sf_test_audit_off() RETURNS trigger LANGUAGE plpgsql AS "
                                "$$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$")
        system.execute(service, "CREATE TRIGGER sf_test_audit_off BEFORE INSERT ON audit_events "
                                "FOR EACH ROW EXECUTE FUNCTION sf_test_audit_off()")
    else:
        system.execute(service, "CREATE TRIGGER sf_test_audit_off BEFORE INSERT ON audit_events "
                                "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END")
    try:
        yield
    finally:
        if system.database_url:
            system.execute(service, "DROP TRIGGER IF EXISTS sf_test_audit_off ON audit_events")
            system.execute(service, "DROP FUNCTION IF EXISTS sf_test_audit_off()")
        else:
            system.execute(service, "DROP TRIGGER IF EXISTS sf_test_audit_off")


# -- activity every test can look for ----------------------------------------------------


@dataclass(frozen=True)
class Activity:
    creator: str
    creator_token: str
    job_token: str
    denied_job_token: str
    downloaded: str  # a file: uploaded, downloaded by a job, refused to another job
    downloaded_id: str
    deleted: str  # a file: uploaded, then deleted
    deleted_id: str
    key_version: str
    markers: tuple[bytes, ...]  # file contents and a parse password
    data_key: bytes


@pytest.fixture(scope="module")
def activity(own_system: LocalSystem, tmp_path_factory: pytest.TempPathFactory) -> Activity:
    system = own_system
    creator = f"user:{unique('creator')}"
    with system.client() as admin:
        admin.assign_role(creator, "creator")
    creator_token = user_token(system, creator)
    content = b"AUDIT-CONTENT-MARKER-" + os.urandom(8).hex().encode()
    deleted_content = b"DELETED-CONTENT-MARKER-" + os.urandom(8).hex().encode()
    password = b"PARSE-PASSWORD-MARKER-" + os.urandom(8).hex().encode()
    downloaded, deleted = unique("audited"), unique("shredded")
    with system.client(token=creator_token) as client:
        kept = client.upload_file(content, name=downloaded, parse_password=password)
        gone = client.upload_file(deleted_content, name=deleted)
    job_token = job_token_for(system, downloaded)
    denied_job_token = job_token_for(system)
    dest = tmp_path_factory.mktemp("audit-download")
    with system.client(token=job_token) as job:
        assert job.download_secure_file(downloaded, dest).path.read_bytes() == content
    with system.client(token=denied_job_token) as job, pytest.raises(PermissionDenied) as denied:
        job.download_secure_file(downloaded, dest / "denied", retry_count=0)
    assert denied.value.reason == "PIPELINE_NOT_AUTHORIZED"
    with system.client(token=creator_token) as client:
        client.delete_file(deleted)
    with system.client() as admin:
        rotated = admin.rotate_key(reason="audit test")
    with system.channel("kms", identity="storage") as channel:  # a data key, as storage would get one
        data_key = kms_pb2_grpc.KeyManagementServiceStub(channel).GenerateDataKey(kms_pb2.GenerateDataKeyRequest(
            name="regions/eu", encryption_context={"project": "default", "secure_file_id": "audit-test",
                                                       "version": "1"}), timeout=10).plaintext
    return Activity(creator, creator_token, job_token, denied_job_token, downloaded, kept.name, deleted, gone.name,
                    rotated.name, (content, deleted_content, password), data_key)


@dataclass(frozen=True)
class Listing:
    raw: str
    events: list[dict]


@pytest.fixture(scope="module")
def listing(own_system: LocalSystem, activity: Activity) -> Listing:
    """`securefiles audit list --output json` once the activity happened."""
    listed = own_system.cli("audit", "list", "--output", "json")
    assert listed.code == 0, listed.stderr
    return Listing(listed.stdout, listed.json())


# -- tampering is detected ---------------------------------------------------------------


@pytest.mark.parametrize(("service", "column"), [("storage", "reason"), ("authz", "principal")])
def test_verify_detects_an_edited_entry(own_system: LocalSystem, activity: Activity, service: str,
                                        column: str) -> None:
    _assert_intact(own_system)
    rows = _rows(own_system, service)
    victim = rows[len(rows) // 2]
    new_value = "user:nobody" if column == "principal" else "edited by an attacker"
    own_system.execute(service, f"UPDATE audit_events SET {column} = :v WHERE sequence = :s",
                       v=new_value, s=victim["sequence"])
    try:
        code, report = _verify(own_system)
        assert code == 1
        _assert_only_broken(report, service, victim["sequence"], ("entry edited",))
    finally:
        _restore(own_system, service, [victim])
    _assert_intact(own_system)


def test_verify_detects_a_deleted_entry_in_the_middle(own_system: LocalSystem, activity: Activity) -> None:
    _assert_intact(own_system)
    rows = _rows(own_system, "authz")
    victim = rows[len(rows) // 2]
    own_system.execute("authz", "DELETE FROM audit_events WHERE sequence = :s", s=victim["sequence"])
    try:
        code, report = _verify(own_system)
        assert code == 1
        _assert_only_broken(report, "authz", victim["sequence"], ("entry missing",))
    finally:
        _restore(own_system, "authz", [victim])
    _assert_intact(own_system)


def test_verify_detects_two_swapped_entries(own_system: LocalSystem, activity: Activity) -> None:
    """Contents of two rows exchanged, sequence numbers kept: the order of events is a lie."""
    service = "storage"
    _assert_intact(own_system)
    rows = _rows(own_system, service)
    first, second = rows[1], rows[len(rows) - 2]
    assert first["sequence"] < second["sequence"]
    columns = [c for c in first if c != "sequence"]
    engine = own_system.engine(service)
    try:
        with engine.begin() as conn:
            for target, source in ((first, second), (second, first)):
                conn.execute(update(audit_events).where(audit_events.c.sequence == target["sequence"]).values(
                    **{c: source[c] for c in columns}))
    finally:
        engine.dispose()
    try:
        code, report = _verify(own_system)
        assert code == 1
        _assert_only_broken(report, service, first["sequence"], ("entry edited", "entries reordered or replaced"))
    finally:
        _restore(own_system, service, [first, second])
    _assert_intact(own_system)


def test_verify_detects_deleted_latest_entries(own_system: LocalSystem, activity: Activity) -> None:
    _assert_intact(own_system)
    rows = _rows(own_system, "storage")
    latest = rows[-2:]
    own_system.execute("storage", "DELETE FROM audit_events WHERE sequence >= :s", s=latest[0]["sequence"])
    try:
        code, report = _verify(own_system)
        assert code == 1
        _assert_only_broken(report, "storage", latest[0]["sequence"], ("latest entries missing",))
    finally:
        _restore(own_system, "storage", latest)
    _assert_intact(own_system)


def test_verify_detects_an_edit_with_recomputed_hashes(own_system: LocalSystem, activity: Activity) -> None:
    _assert_intact(own_system)
    snapshot = _snapshot(own_system, "authz")
    victim = snapshot[0][len(snapshot[0]) // 2]
    own_system.execute("authz", "UPDATE audit_events SET principal = 'user:nobody' WHERE sequence = :s",
                       s=victim["sequence"])
    _rechain(own_system, "authz")
    try:
        code, report = _verify(own_system)
        assert code == 1 and report["authz"]["intact"] is False, report
    finally:
        _reset(own_system, "authz", snapshot)  # exactly the chain as it was, whatever the hashing


# -- what the log says -------------------------------------------------------------------


def _find(events: list[dict], **wanted: object) -> list[dict]:
    return [e for e in events if all(e.get(k) == v for k, v in wanted.items())]


def _file_resources(activity_id: str, display_name: str) -> set[str]:
    return {activity_id, activity_id.rsplit("/", 1)[0] + "/" + display_name}


def test_file_and_key_events_say_who_what_which_and_decision(activity: Activity, listing: Listing) -> None:
    events = listing.events
    storage = [e for e in events if e["service"] == "storage"]
    downloaded = _file_resources(activity.downloaded_id, activity.downloaded)
    deleted = _file_resources(activity.deleted_id, activity.deleted)

    (upload,) = [e for e in _find(storage, action="UploadSecureFile", decision="ALLOW", principal=activity.creator)
                 if e["resource"] == activity.downloaded_id]
    assert upload["details"]["display_name"] == activity.downloaded and upload["details"]["size"]

    allowed = [e for e in _find(storage, action="DownloadSecureFile", decision="ALLOW") if e["resource"] in downloaded]
    assert len(allowed) == 1 and allowed[0]["principal"].startswith("job:projects/default/pipelines/")

    denied = [e for e in _find(storage, action="DownloadSecureFile", decision="DENY") if e["resource"] in downloaded]
    assert len(denied) == 1 and denied[0]["reason"] == "PERMISSION_DENIED/PIPELINE_NOT_AUTHORIZED"
    assert denied[0]["principal"].startswith("job:") and denied[0]["principal"] != allowed[0]["principal"]
    authz_denied = _find(events, service="authz", action="AuthorizeUse", decision="DENY",
                         resource=activity.downloaded_id)
    assert [e["reason"] for e in authz_denied] == ["PERMISSION_DENIED/PIPELINE_NOT_AUTHORIZED"]

    deletions = [e for e in _find(storage, action="DeleteSecureFile", decision="ALLOW") if e["resource"] in deleted]
    assert [e["principal"] for e in deletions] == [activity.creator]

    (rotation,) = _find(events, service="kms-eu", action="RotateKey", resource=activity.key_version)
    assert rotation["decision"] == "ALLOW" and rotation["principal"] == "user:admin"
    assert rotation["details"].get("reason") == "audit test"
    data_key_events = _find(events, service="kms-eu", action="GenerateDataKey", principal="service:storage")
    assert any(e["details"].get("context.secure_file_id") == "audit-test" for e in data_key_events)


def test_a_files_audit_trail_can_be_followed_by_its_id(activity: Activity, listing: Listing) -> None:
    """What `audit list --service storage --resource <file id>` shows."""

    def trail(resource: str) -> set[tuple[str, str]]:
        return {(e["action"], e["decision"]) for e in listing.events
                if e["service"] == "storage" and e["resource"].startswith(resource)}

    assert trail(activity.downloaded_id) >= {
        ("UploadSecureFile", "ALLOW"), ("DownloadSecureFile", "ALLOW"), ("DownloadSecureFile", "DENY")}
    assert trail(activity.deleted_id) >= {("UploadSecureFile", "ALLOW"), ("DeleteSecureFile", "ALLOW")}


def _encodings(secret: bytes) -> set[str]:
    return {secret.decode("latin-1"), secret.hex(), base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("=")}


def test_no_secret_is_ever_written_to_the_audit_log(own_system: LocalSystem, activity: Activity,
                                                    listing: Listing) -> None:
    assert len(listing.events) > 20
    text = listing.raw + json.dumps(listing.events)
    for token in (own_system.admin_token, activity.creator_token, activity.job_token, activity.denied_job_token):
        _header, payload, signature = token.split(".")
        assert payload not in text and signature not in text
    for marker in activity.markers:
        assert marker.decode() not in text
    for encoding in _encodings(activity.data_key):
        assert encoding not in text


# -- no audit entry, no content ------------------------------------------------------------


def test_download_fails_closed_when_the_audit_log_cannot_be_written(own_system: LocalSystem, tmp_path: Path) -> None:
    system = own_system
    name, content = unique("audit-off"), b"NEVER-WITHOUT-AUDIT-" + os.urandom(8).hex().encode()
    with system.client() as admin:
        admin.upload_file(content, name=name)
    token = job_token_for(system, name)
    request = storage_pb2.DownloadSecureFileRequest(parent="projects/default", display_name=name)
    dest = tmp_path / "agent-temp"
    with _audit_refuses_inserts(system):
        received = []
        with system.channel("storage") as channel, pytest.raises(grpc.RpcError) as error:
            for message in storage_pb2_grpc.SecureFileServiceStub(channel).DownloadSecureFile(
                    request, metadata=bearer(token), timeout=30):
                received.append(message)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info_of(error.value).reason == "AUDIT_UNAVAILABLE"
        assert received == []  # not even the header left the server

        agent = system.cli("agent", "download", name, "--dest", str(dest), "--retry-count", "0",
                           env={"SECUREFILES_JOB_TOKEN": token})
        assert agent.code == 1 and "AUDIT_UNAVAILABLE" in agent.stderr
        assert not dest.exists() or list(dest.iterdir()) == []

    agent = system.cli("agent", "download", name, "--dest", str(dest), "--retry-count", "0",
                       env={"SECUREFILES_JOB_TOKEN": token})
    assert agent.code == 0, agent.stderr
    assert (dest / name).read_bytes() == content
    _assert_intact(system)


def test_upload_refused_for_lack_of_audit_stores_nothing(own_system: LocalSystem) -> None:
    name = unique("unaudited-upload")
    with _audit_refuses_inserts(own_system), own_system.client() as admin:
        with pytest.raises(Unavailable) as error:
            admin.upload_file(b"should not exist", name=name)
        assert error.value.reason == "AUDIT_UNAVAILABLE"
    with own_system.client() as admin:
        assert [f.display_name for f in admin.list_files(name)] == []


def test_delete_refused_for_lack_of_audit_deletes_nothing(own_system: LocalSystem) -> None:
    name = unique("unaudited-delete")
    with own_system.client() as admin:
        admin.upload_file(b"must survive", name=name)
    with _audit_refuses_inserts(own_system), own_system.client() as admin:
        with pytest.raises(Unavailable) as error:
            admin.delete_file(name)
        assert error.value.reason == "AUDIT_UNAVAILABLE"
    with own_system.client() as admin:
        assert admin.get_file(name).display_name == name


def test_authz_change_refused_for_lack_of_audit_changes_nothing(own_system: LocalSystem) -> None:
    """authz writes a change's entry before the change, not after it is committed."""
    pipeline = unique("unaudited-pipeline")
    with _audit_refuses_inserts(own_system, "authz"), own_system.client() as admin:
        with pytest.raises(Unavailable) as error:
            admin.create_pipeline(pipeline)
        assert error.value.reason == "AUDIT_UNAVAILABLE"
    with own_system.client() as admin:
        assert pipeline not in [p.display_name for p in admin.list_pipelines()]
        admin.create_pipeline(pipeline)  # the same request goes through once the audit does
        assert pipeline in [p.display_name for p in admin.list_pipelines()]


def test_key_disable_refused_for_lack_of_audit_disables_nothing(own_system: LocalSystem) -> None:
    """kms writes a key-state change's entry before the change, not after it is committed."""
    with own_system.client() as admin:
        previous = admin.rotate_key("eu", reason="make a version to disable")
        admin.rotate_key("eu", reason="so that it is no longer primary")
        _region, before = admin.list_key_versions("eu")
        with _audit_refuses_inserts(own_system, "kms-eu"):
            with pytest.raises(Unavailable) as error:
                admin.set_key_version_state(previous.name, "disable", "eu")
            assert error.value.reason == "AUDIT_UNAVAILABLE"
        _region, after = admin.list_key_versions("eu")
    assert [(v.name, v.state) for v in after] == [(v.name, v.state) for v in before]


def test_library_settings_refused_for_lack_of_audit_change_nothing(own_system: LocalSystem) -> None:
    with own_system.client() as admin:
        before = admin.get_library()
        with _audit_refuses_inserts(own_system), pytest.raises(Unavailable) as error:
            admin.update_library(allow_replace=not before.allow_replace, keep_versions=before.keep_versions + 1)
        assert error.value.reason == "AUDIT_UNAVAILABLE"
        after = admin.get_library()
    assert (after.allow_replace, after.keep_versions) == (before.allow_replace, before.keep_versions)


def test_rewrap_refused_for_lack_of_audit_rewraps_nothing(own_system: LocalSystem) -> None:
    with own_system.client() as admin:
        admin.upload_file(b"wrapped by the current primary", name=unique("rewrap-audit"))
        admin.rotate_key("eu", reason="so that a rewrap has work")
        before = admin.count_data_keys("eu")
        with _audit_refuses_inserts(own_system), pytest.raises(Unavailable) as error:
            admin.rewrap_data_keys("eu")
        assert error.value.reason == "AUDIT_UNAVAILABLE"
        assert admin.count_data_keys("eu") == before


# -- a change and its entry commit together (issue #18 item 8) ------------------------------


@contextmanager
def _refuses_inserts(system: LocalSystem, service: str, table: str) -> Iterator[None]:
    """Make a data table refuse every insert: the change fails at its own write."""
    if system.database_url:
        system.execute(service, "CREATE FUNCTION sf_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                                "$$ BEGIN RAISE EXCEPTION 'write refused'; END $$")
        system.execute(service, f"CREATE TRIGGER sf_test_refuse BEFORE INSERT ON {table} "
                                "FOR EACH ROW EXECUTE FUNCTION sf_test_refuse()")
    else:
        system.execute(service, f"CREATE TRIGGER sf_test_refuse BEFORE INSERT ON {table} "
                                "BEGIN SELECT RAISE(ABORT, 'write refused'); END")
    try:
        yield
    finally:
        if system.database_url:
            system.execute(service, f"DROP TRIGGER IF EXISTS sf_test_refuse ON {table}")
            system.execute(service, "DROP FUNCTION IF EXISTS sf_test_refuse()")
        else:
            system.execute(service, "DROP TRIGGER IF EXISTS sf_test_refuse")


def _entries_after(system: LocalSystem, service: str, sequence: int, action: str) -> list[tuple[str, str]]:
    return [(r["decision"], r["resource"]) for r in _rows(system, service)
            if r["sequence"] > sequence and r["action"] == action]


def _last_sequence(system: LocalSystem, service: str) -> int:
    return max((r["sequence"] for r in _rows(system, service)), default=0)


@pytest.mark.parametrize(("service", "table", "action"), [
    ("storage", "secure_files", "UploadSecureFile"),
    ("authz", "pipelines", "CreatePipeline"),
    ("kms-eu", "key_versions", "RotateKey"),
])
def test_a_change_that_fails_at_its_write_leaves_no_allow_entry(own_system: LocalSystem, service: str, table: str,
                                                                action: str) -> None:
    """The entry is in the change's transaction: a change that fails rolls its ALLOW back with it
    (the call's one entry is its FAIL)."""
    before = _last_sequence(own_system, service)
    with _refuses_inserts(own_system, service, table), own_system.client() as admin:
        with pytest.raises(Exception):  # noqa: B017 (whatever the database's refusal maps to)
            {"UploadSecureFile": lambda: admin.upload_file(b"never stored", name=unique("failed-upload")),
             "CreatePipeline": lambda: admin.create_pipeline(unique("failed-pipeline")),
             "RotateKey": lambda: admin.rotate_key("eu", reason="fails at its insert")}[action]()
    assert [decision for decision, _ in _entries_after(own_system, service, before, action)] == ["FAIL"]
    _assert_intact(own_system)


def test_a_check_is_created_with_its_entry_naming_it_or_not_at_all(own_system: LocalSystem) -> None:
    """A creation's entry names what the database numbered and commits with the row: no longer
    written just after the change (where a failed entry left a check nobody had recorded)."""
    name = unique("checked")
    with own_system.client() as admin:
        admin.upload_file(b"guarded", name=name)
        with _audit_refuses_inserts(own_system, "authz"), pytest.raises(Unavailable) as error:
            admin.add_check(name, build_check("branch-control", allowed="refs/heads/main"))
        assert error.value.reason == "AUDIT_UNAVAILABLE"
        assert admin.list_checks(name) == []
        before = _last_sequence(own_system, "authz")
        created = admin.add_check(name, build_check("branch-control", allowed="refs/heads/main"))
        assert [c.name for c in admin.list_checks(name)] == [created.name]
    assert _entries_after(own_system, "authz", before, "CreateCheck") == [("ALLOW", created.name)]


def test_a_rotation_and_a_break_glass_request_are_recorded_with_what_they_made_or_not_made(
        own_system: LocalSystem) -> None:
    with own_system.client() as admin:
        _region, versions = admin.list_key_versions("eu")
        with _audit_refuses_inserts(own_system, "kms-eu"), pytest.raises(Unavailable) as error:
            admin.rotate_key("eu", reason="not without its entry")
        assert error.value.reason == "AUDIT_UNAVAILABLE"
        assert admin.list_key_versions("eu")[1] == versions
        before = _last_sequence(own_system, "kms-eu")
        rotated = admin.rotate_key("eu", reason="with its entry")
        operator = f"user:{unique('op')}"
        admin.assign_role(operator, "operator")
    assert _entries_after(own_system, "kms-eu", before, "RotateKey") == [("ALLOW", rotated.name)]
    with own_system.client(token=user_token(own_system, operator)) as requester:
        requests = requester.list_access_requests()
        with _audit_refuses_inserts(own_system, "authz"), pytest.raises(Unavailable) as error:
            requester.request_access("default", "INC-18: not without its entry", 600)
        assert error.value.reason == "AUDIT_UNAVAILABLE"
        assert requester.list_access_requests() == requests
        before = _last_sequence(own_system, "authz")
        requested = requester.request_access("default", "INC-18: with its entry", 600)
    assert _entries_after(own_system, "authz", before, "RequestAccess") == [("ALLOW", requested.name)]
