"""Append-only, hash-chained audit log kept by every service in its own database.

Each entry carries the SHA-256 of the previous one, so an edited, deleted or reordered
entry breaks the chain (`verify`). A single head row is locked while appending, so
writers on several replicas (PostgreSQL) or processes (SQLite) keep one chain.
If an entry cannot be written the caller's operation fails (Vault's rule).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, Text, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from securefiles.common.clock import Clock, utcnow
from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.metrics import AUDIT_APPEND, DECISIONS

metadata = MetaData()

audit_events = Table(
    "audit_events", metadata,
    Column("sequence", Integer, primary_key=True, autoincrement=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("service", String(64), nullable=False),
    Column("principal", String(512), nullable=False),
    Column("action", String(128), nullable=False),
    Column("resource", String(1024), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("details", Text, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sequence", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Other services' chain heads, as this service saw them: a chain cannot prove its own tail (whoever
# can write its database can cut it and reset the head), so each head is witnessed elsewhere.
audit_witnesses = Table(
    "audit_witnesses", metadata,
    Column("service", String(64), primary_key=True),
    Column("sequence", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("witnessed_at", DateTime(timezone=True), nullable=False),
)

ALLOW, DENY, FAIL = "ALLOW", "DENY", "FAIL"

# Built once: the audit append runs on every audited RPC.
_LOCK_HEAD = select(audit_head.c.sequence, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_INSERT_EVENT = audit_events.insert()
_INSERT_HEAD = audit_head.insert()
_UPDATE_HEAD = update(audit_head).where(audit_head.c.id == 1).values(
    sequence=bindparam("new_sequence"), hash=bindparam("new_hash"))


@dataclass(frozen=True)
class AuditEntry:
    sequence: int
    time: dt.datetime
    service: str
    principal: str
    action: str
    resource: str
    decision: str
    reason: str
    request_id: str
    details: dict[str, str] = field(default_factory=dict)
    previous_hash: str = ""
    hash: str = ""

    def computed_hash(self, key: bytes | None = None) -> str:
        """SHA-256 of the entry, or HMAC-SHA256 under the service's audit key: without the key,
        someone who can write the database cannot recompute a consistent chain."""
        body = {
            "sequence": self.sequence, "time": self.time.astimezone(dt.UTC).isoformat(),
            "service": self.service, "principal": self.principal, "action": self.action,
            "resource": self.resource, "decision": self.decision, "reason": self.reason,
            "request_id": self.request_id, "details": self.details, "previous_hash": self.previous_hash,
        }
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        if key:
            return hmac.new(key, encoded, hashlib.sha256).hexdigest()
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class Verification:
    intact: bool
    checked: int
    first_bad_sequence: int = 0
    problem: str = ""
    unaccounted: int = 0


@dataclass(frozen=True)
class Head:
    service: str
    sequence: int
    hash: str
    witnessed_at: dt.datetime | None = None


def _entry(m: Mapping[Any, Any]) -> AuditEntry:
    time = m["time"]
    assert isinstance(time, dt.datetime)
    return AuditEntry(
        sequence=int(m["sequence"]), time=time if time.tzinfo else time.replace(tzinfo=dt.UTC),
        service=str(m["service"]), principal=str(m["principal"]), action=str(m["action"]),
        resource=str(m["resource"]), decision=str(m["decision"]), reason=str(m["reason"]),
        request_id=str(m["request_id"]), details=json.loads(str(m["details"])),
        previous_hash=str(m["previous_hash"]), hash=str(m["hash"]),
    )


class AuditLog:
    """One service's chain."""

    def __init__(self, engine: Engine, service: str, clock: Clock = utcnow,
                 key: bytes | None = None) -> None:
        self._engine = engine
        self.service = service
        self._clock = clock
        self._key = key

    @property
    def engine(self) -> Engine:
        return self._engine

    def record(
        self, principal: str, action: str, resource: str, decision: str, reason: str = "", request_id: str = "",
        details: Mapping[str, str] | None = None,
    ) -> AuditEntry:
        """Append one entry; raises if it cannot be written."""
        with AUDIT_APPEND.time():
            for _attempt in range(5):
                try:
                    entry = self._append(principal, action, resource, decision, reason, request_id, details)
                except IntegrityError:
                    continue  # another replica created the head row first; take the lock and retry
                DECISIONS.labels(entry.action, decision, reason[:256]).inc()
                return entry
        raise RuntimeError("audit chain is contended; entry not written")

    def _append(
        self, principal: str, action: str, resource: str, decision: str, reason: str, request_id: str,
        details: Mapping[str, str] | None,
    ) -> AuditEntry:
        with write_transaction(self._engine, is_audit_entry=True) as conn:
            head = conn.execute(_LOCK_HEAD).first()
            sequence, previous = (head.sequence, head.hash) if head else (0, "")
            entry = AuditEntry(
                sequence=sequence + 1, time=self._clock(), service=self.service, principal=principal[:512],
                action=action[:128], resource=resource[:1024], decision=decision, reason=reason[:256],
                request_id=request_id[:64], details={k: str(v)[:512] for k, v in (details or {}).items()},
                previous_hash=previous,
            )
            entry = AuditEntry(**{**entry.__dict__, "hash": entry.computed_hash(self._key)})
            conn.execute(_INSERT_EVENT, {**entry.__dict__, "details": json.dumps(entry.details, sort_keys=True)})
            if head is None:
                conn.execute(_INSERT_HEAD, {"id": 1, "sequence": entry.sequence, "hash": entry.hash})
            else:
                conn.execute(_UPDATE_HEAD, {"new_sequence": entry.sequence, "new_hash": entry.hash})
        return entry

    def list(self, after: int, limit: int, resource_prefix: str = "", principal: str = "") -> list[AuditEntry]:
        query = select(audit_events).where(audit_events.c.sequence > after)
        if resource_prefix:
            query = query.where(audit_events.c.resource.startswith(resource_prefix, autoescape=True))
        if principal:
            query = query.where(audit_events.c.principal == principal)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(audit_events.c.sequence).limit(limit)).all()
        return [_entry(r._mapping) for r in rows]

    def head(self) -> Head:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        return Head(self.service, row.sequence if row else 0, row.hash if row else "")

    def witness(self, head: Head) -> None:
        """Record another chain's head (once per sequence; an unchanged head adds nothing)."""
        if head.sequence <= 0 or head.service == self.service:
            return
        latest = self.latest_witness(head.service)
        if latest is not None and latest.sequence >= head.sequence:
            return
        try:
            with write_transaction(self._engine, is_audit_entry=True) as conn:
                conn.execute(audit_witnesses.insert().values(
                    service=head.service[:64], sequence=head.sequence, hash=head.hash[:64], witnessed_at=self._clock()))
        except IntegrityError:
            pass  # witnessed already (two rounds at once)

    def latest_witness(self, service: str) -> Head | None:
        query = select(audit_witnesses).where(audit_witnesses.c.service == service).order_by(
            audit_witnesses.c.sequence.desc()).limit(1)
        with read_transaction(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        at = row.witnessed_at
        return Head(service, row.sequence, row.hash, at if at.tzinfo else at.replace(tzinfo=dt.UTC))

    def verify(self, witnessed: Head | None = None) -> Verification:
        """Walk the chain: every hash recomputes, links to its predecessor, and ends at the head;
        and the head another service witnessed is still in it, with the same hash."""
        result = self._verify_chain(witnessed)
        if not result.intact or witnessed is None or witnessed.sequence <= 0:
            return result
        if result.checked < witnessed.sequence:
            missing = witnessed.sequence - result.checked
            return Verification(False, result.checked, result.checked + 1,
                                f"latest entries missing: {missing} witnessed elsewhere are unaccounted for",
                                unaccounted=missing)
        return result

    def _verify_chain(self, witnessed: Head | None) -> Verification:
        previous_hash, expected_sequence, checked = "", 1, 0
        with read_transaction(self._engine) as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
            for row in conn.execute(select(audit_events).order_by(audit_events.c.sequence)):
                entry = _entry(row._mapping)
                checked += 1
                if witnessed is not None and entry.sequence == witnessed.sequence and entry.hash != witnessed.hash:
                    return Verification(False, checked, entry.sequence, "entry replaced after another service "
                                                                        "witnessed it")
                if entry.sequence != expected_sequence:
                    return Verification(False, checked, expected_sequence, "entry missing")
                if entry.computed_hash(self._key) != entry.hash:
                    return Verification(False, checked, entry.sequence, "entry edited")
                if entry.previous_hash != previous_hash:
                    return Verification(False, checked, entry.sequence, "entries reordered or replaced")
                previous_hash, expected_sequence = entry.hash, expected_sequence + 1
        head_sequence, head_hash = (head.sequence, head.hash) if head else (0, "")
        if head_sequence != expected_sequence - 1 or head_hash != previous_hash:
            return Verification(False, checked, expected_sequence, "latest entries missing")
        return Verification(True, checked)
