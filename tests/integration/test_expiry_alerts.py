"""Expiry alerts: files expiring within 30, 7 and 1 days are announced once per version and
threshold, by a signed webhook and a log line, and audited."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, make_url, select, text

from securefiles.cli.up import ensure_postgres_database
from securefiles.common.audit import AuditLog, audit_events
from securefiles.common.db import make_engine
from securefiles.common.db_threads import DatabaseThreads
from securefiles.common.migrations import upgrade
from securefiles.common.unit_of_work import UnitsOfWork
from securefiles.storage.adapters.expiry_webhook import WebhookNotifier
from securefiles.storage.adapters.sql_expiry_alerts import SqlExpiryAlerts
from securefiles.storage.adapters.sql_files import SqlFileRepository
from securefiles.storage.domain.expiry_alerts import ExpiryAlert, ExpiryAlerts
from securefiles.storage.domain.model import FileVersion, SecureFile
from tests.conftest import LocalSystem, unique
from tests.webhook_receiver import Received, webhook_receiver

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes

SECRET = b"s" * 40
START = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def _verified(request: Received, secret: bytes = SECRET) -> dict:
    """The alert, once its signature checks out."""
    timestamp = request.headers["x-securefiles-timestamp"]
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-securefiles-signature"], expected)
    assert abs(int(timestamp) - time.time()) < 300
    return json.loads(request.body)


class Files:
    """ExpiryAlertRepository in memory."""

    def __init__(self) -> None:
        self.files: dict[str, SecureFile] = {}
        self.sent: set[tuple[str, int, int]] = set()

    def put(self, file_id: str, version: int, expires_at: dt.datetime | None, name: str = "cert.pem") -> None:
        current = FileVersion(version, 10, "0" * 64, f"{file_id}/v{version}", b"k", "eu", 1, START, "user:a",
                              {}, expires_at)
        self.files[file_id] = SecureFile(file_id, "default", name, {}, "user:a", START, START, current)

    def expiring(self, before, after, limit):
        rows = sorted((f for f in self.files.values() if f.current.expires_at and f.current.expires_at < before),
                      key=lambda f: (f.current.expires_at, f.file_id))
        if after is not None:
            rows = [f for f in rows if (f.current.expires_at, f.file_id) > after]
        return [(f, frozenset(t for (i, v, t) in self.sent if i == f.file_id and v == f.current.version))
                for f in rows[:limit]]

    def mark_sent(self, file_id, version, threshold_days, now):
        self.sent.add((file_id, version, threshold_days))

    def try_lead(self):
        return True

    def stop_leading(self):
        pass


class Entries:
    """Units of work in memory: the entries their changes named, in order; with `refuse`, an entry
    cannot be written (the unit fails before the change)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str | None, dict[str, object]]] = []
        self.refuse = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Entries]:
        yield self

    def audit(self, resource: str | None = None, **details: object) -> None:
        if self.refuse:
            raise RuntimeError("audit log unavailable")
        self.entries.append((resource, details))


def test_each_threshold_is_announced_once_by_a_signed_webhook_and_audited() -> None:
    now = [START]
    files = Files()
    files.put("f-1", 1, START + dt.timedelta(days=40), name='evil "name"\n##vso[task.setvariable]')
    files.put("f-2", 1, START + dt.timedelta(days=5))  # first seen inside 7 days: the 7-day alert only
    files.put("f-3", 1, None)  # no expiry: never announced
    audited = Entries()

    with webhook_receiver() as receiver:
        async def scenario() -> list[list[tuple[str, int]]]:
            notifier = WebhookNotifier(receiver.url, SECRET)
            alerts = ExpiryAlerts(files, notifier, audited, lambda: now[0], page=1)  # page: keyset walk
            runs = []
            for day in (0, 0, 11, 11.5, 34, 39.5, 39.9, 45):
                now[0] = START + dt.timedelta(days=day)
                runs.append([(a.resource.rsplit("/", 1)[1], a.threshold_days) for a in await alerts.run_once()])
            await notifier.close()
            return runs

        runs = asyncio.run(scenario())
        received = [_verified(r) for r in receiver.snapshot()]

    # f-2 expired meanwhile: its 1-day alert comes once, at the next run.
    assert runs == [[("f-2", 7)], [], [("f-2", 1), ("f-1", 30)], [], [("f-1", 7)], [("f-1", 1)], [], []]
    assert [(r["secure_file"].rsplit("/", 1)[1], r["threshold_days"]) for r in received] == [
        ("f-2", 7), ("f-2", 1), ("f-1", 30), ("f-1", 7), ("f-1", 1)]
    assert received[1]["expired"] is True and received[1]["days_left"] == -6.0
    assert received[2]["display_name"] == 'evil "name"\n##vso[task.setvariable]'  # JSON carries it intact
    assert received[2]["event"] == "secure_file.expiring" and received[2]["id"] == "f-1/v1/30d"
    assert received[2]["days_left"] == 29.0 and received[2]["expired"] is False
    assert [(resource, facts["threshold_days"]) for resource, facts in audited.entries] == [
        (r["secure_file"], r["threshold_days"]) for r in received]

    # A renewed version is announced afresh.
    files.put("f-1", 2, START + dt.timedelta(days=60))
    now[0] = START + dt.timedelta(days=31)
    with webhook_receiver() as receiver:
        sent = asyncio.run(_one_run(files, receiver.url, audited, now[0]))
    assert [(a.resource, a.version, a.threshold_days) for a in sent] == [("projects/default/secureFiles/f-1", 2, 30)]


async def _one_run(files: Files, url: str, audited: Entries, at: dt.datetime) -> list[ExpiryAlert]:
    notifier = WebhookNotifier(url, SECRET)
    try:
        return await ExpiryAlerts(files, notifier, audited, lambda: at).run_once()
    finally:
        await notifier.close()


def test_an_undelivered_or_unaudited_alert_is_not_recorded_and_is_sent_again() -> None:
    files = Files()
    files.put("f-1", 1, START + dt.timedelta(days=3))
    audited = Entries()
    with webhook_receiver() as receiver:
        receiver.status = 503
        assert asyncio.run(_one_run(files, receiver.url, audited, START)) == []
        assert files.sent == set() and audited.entries == []

        receiver.status = 200
        audited.refuse = True
        assert asyncio.run(_one_run(files, receiver.url, audited, START)) == []
        assert files.sent == set()  # no entry, no record: it goes out again
        audited.refuse = False
        sent = asyncio.run(_one_run(files, receiver.url, audited, START))
        assert [a.id for a in sent] == ["f-1/v1/7d"] and files.sent == {("f-1", 1, 7)}
        ids = [_verified(r)["id"] for r in receiver.snapshot()]
    assert ids == ["f-1/v1/7d"] * 3  # the same id each time: receivers deduplicate


def _certificate(not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expiring.example")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(not_after - dt.timedelta(days=365))
                   .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def _expiry_checks(system: LocalSystem) -> float:
    text = httpx.get(system.operations_url("storage") + "/metrics", timeout=10).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "securefiles_expiry_checks_total")


@pytest.mark.slow
def test_a_certificate_expiring_within_a_week_is_announced_once(fresh_system: LocalSystem, tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(SECRET)
    with webhook_receiver() as receiver:
        fresh_system.extra_env.update({"SECUREFILES_EXPIRY_CHECK_SECONDS": "1",
                                       "SECUREFILES_EXPIRY_WEBHOOK_URL": receiver.url,
                                       "SECUREFILES_EXPIRY_WEBHOOK_SECRET_FILE": str(secret_file)})
        fresh_system.start()
        name = unique("expiring") + ".pem"
        with fresh_system.client() as admin:
            uploaded = admin.upload_file(_certificate(dt.datetime.now(dt.UTC) + dt.timedelta(days=5)), name=name)
            admin.upload_file(_certificate(dt.datetime.now(dt.UTC) + dt.timedelta(days=90)), name=unique("later"))

        deadline = time.monotonic() + 30
        while not receiver.snapshot() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Two more runs of the job after the alert: still one delivery.
        runs = _expiry_checks(fresh_system)
        while _expiry_checks(fresh_system) < runs + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _expiry_checks(fresh_system) >= runs + 2
        (request,) = receiver.snapshot()
    alert = _verified(request)
    assert alert["secure_file"] == uploaded.name and alert["display_name"] == name
    assert alert["threshold_days"] == 7 and 4.9 < alert["days_left"] <= 5

    events = fresh_system.cli("audit", "list", "--service", "storage", "--output", "json").json()
    (entry,) = [e for e in events if e["action"] == "ExpiryAlert"]
    assert entry["resource"] == uploaded.name and entry["decision"] == "ALLOW"
    lines = [json.loads(line) for line in (fresh_system.state_dir / "logs" / "storage.log").read_text().splitlines()
             if line.startswith("{")]
    (logged,) = [line for line in lines if line["message"] == "secure file expires soon"]
    assert logged["secure_file"] == uploaded.name and logged["threshold_days"] == 7
    assert name not in json.dumps(lines)  # display names stay out of the logs


def test_replicas_on_one_postgresql_database_take_turns() -> None:
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL")
    if not server:
        pytest.skip("replicas share a PostgreSQL database (SECUREFILES_TEST_DATABASE_URL)")
    url = ensure_postgres_database(server, f"sf_{uuid.uuid4().hex[:8]}_expiry")
    engines = []
    try:
        upgrade("storage", url)
        engines = [make_engine(url), make_engine(url)]
        file_id = str(uuid.uuid4())
        threads = DatabaseThreads(1, "test-files")
        files = SqlFileRepository(engines[0], threads)
        asyncio.run(files.insert(SecureFile(file_id, "default", "cert.pem", {}, "user:a", START, START, FileVersion(
            1, 10, "0" * 64, f"{file_id}/v1", b"k", "eu", 1, START, "user:a", {}, START + dt.timedelta(days=3)))))
        threads.close()
        first, second = SqlExpiryAlerts(engines[0]), SqlExpiryAlerts(engines[1])
        notified: list[str] = []

        class Recording:
            async def notify(self, alert: ExpiryAlert, now: dt.datetime) -> None:
                notified.append(alert.id)

        def run(replica: SqlExpiryAlerts) -> list[ExpiryAlert]:
            return asyncio.run(ExpiryAlerts(replica, Recording(), Entries(), lambda: START).run_once())

        assert first.try_lead()
        assert run(second) == [] and notified == []  # the other replica is in its pass: this one waits its turn
        first.stop_leading()
        assert [a.id for a in run(second)] == [f"{file_id}/v1/7d"] and notified == [f"{file_id}/v1/7d"]
        assert run(first) == [] and len(notified) == 1  # recorded: the next pass, on either, sends nothing
    finally:
        for engine in engines:
            engine.dispose()
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


def test_an_alert_whose_entry_or_record_cannot_be_written_leaves_neither_and_goes_out_again(tmp_path: Path) -> None:
    """The entry and the record that the alert was sent commit in one transaction (SQLite here;
    the unit of work's own tests cover PostgreSQL)."""
    url = f"sqlite:///{tmp_path / 'storage.db'}"
    upgrade("storage", url)
    engine = make_engine(url)
    audit = AuditLog(engine, "storage", key=b"k" * 32)
    try:
        file_id = str(uuid.uuid4())
        threads = DatabaseThreads(1, "test-files")
        asyncio.run(SqlFileRepository(engine, threads).insert(SecureFile(
            file_id, "default", "cert.pem", {}, "user:a", START, START, FileVersion(
                1, 10, "0" * 64, f"{file_id}/v1", b"k", "eu", 1, START, "user:a", {}, START + dt.timedelta(days=3)))))
        threads.close()
        units = UnitsOfWork(engine, audit).for_job("service:storage", "ExpiryAlert", delivered_to="log")
        notified: list[str] = []

        class Recording:
            async def notify(self, alert: ExpiryAlert, now: dt.datetime) -> None:
                notified.append(alert.id)

        def run() -> list[ExpiryAlert]:
            return asyncio.run(ExpiryAlerts(SqlExpiryAlerts(engine), Recording(), units, lambda: START).run_once())

        def recorded() -> tuple[int, list[tuple[str, str, str]]]:
            with engine.connect() as conn:
                sent = conn.execute(text("SELECT count(*) FROM expiry_alerts")).scalar()
                entries = [(e.principal, e.action, e.resource) for e in conn.execute(
                    select(audit_events).where(audit_events.c.action == "ExpiryAlert"))]
            return sent, entries

        with engine.begin() as conn:
            conn.execute(text("CREATE TRIGGER alert_audit_off BEFORE INSERT ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"))
        assert run() == [] and notified == [f"{file_id}/v1/7d"]
        assert recorded() == (0, [])  # no entry, no record
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER alert_audit_off"))
            # The record cannot be written (an error that is not "another replica recorded it").
            conn.execute(text("CREATE TRIGGER alert_record_off BEFORE INSERT ON expiry_alerts "
                              "BEGIN SELECT 1 FROM no_such_table; END"))
        assert run() == [] and len(notified) == 2
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER alert_record_off"))
        assert recorded() == (0, [])
        assert [a.id for a in run()] == [f"{file_id}/v1/7d"] and len(notified) == 3  # sent again, same id
        assert recorded() == (1, [("service:storage", "ExpiryAlert", f"projects/default/secureFiles/{file_id}")])
        assert run() == [] and len(notified) == 3
    finally:
        audit.close()
        engine.dispose()
