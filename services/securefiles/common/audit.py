"""Append-only, hash-chained audit log kept by every service in its own database.

Each entry carries the SHA-256 of the previous one, so an edited, deleted or reordered
entry breaks the chain (`verify`). A single head row is locked while appending, so
writers on several replicas (PostgreSQL) or processes (SQLite) keep one chain.
If an entry cannot be written the caller's operation fails (Vault's rule). Each complete
block of entries is sealed as it is written (see audit_records.py), which makes `verify` fast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from securefiles.common.audit_records import (
    ALLOW,
    DENY,
    FAIL,
    SEAL_BLOCK,
    AuditEntry,
    Head,
    Verification,
    audit_archive,
    audit_events,
    audit_head,
    audit_seals,
    audit_witnesses,
    block_rows_sql,
    entry_of,
    metadata,
    seal_of,
)
from securefiles.common.audit_verify import verify_chain
from securefiles.common.call_context import EntryFields
from securefiles.common.clock import Clock, utcnow
from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.group_commit import DEFAULT_MAX_BATCH, GroupCommit
from securefiles.common.metrics import AUDIT_APPEND, DECISIONS

__all__ = ["ALLOW", "DENY", "FAIL", "AuditEntry", "AuditLog", "Head", "Verification", "audit_archive",
           "audit_events", "audit_head", "audit_seals", "audit_witnesses", "metadata"]

log = logging.getLogger("securefiles.audit")

# Built once: the audit append runs on every audited RPC.
_LOCK_HEAD = select(audit_head.c.sequence, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_INSERT_EVENT = audit_events.insert()
_INSERT_HEAD = audit_head.insert()
_UPDATE_HEAD = update(audit_head).where(audit_head.c.id == 1).values(
    sequence=bindparam("new_sequence"), hash=bindparam("new_hash"))
_INSERT_SEAL = audit_seals.insert()


def seal_complete_blocks(conn: Connection, key: bytes | None, before: int, after: int) -> None:
    """Seal every block that the entries `before`+1..`after` (just written, in this transaction)
    completed."""
    first_end = (before // SEAL_BLOCK + 1) * SEAL_BLOCK
    if first_end > after:
        return  # most appends complete no block: build no statement
    block_sql = text(block_rows_sql(conn.dialect.name))
    for last in range(first_end, after + 1, SEAL_BLOCK):
        first = last - SEAL_BLOCK + 1
        block = conn.execute(block_sql, {"first": first, "last": last}).scalar() or ""
        conn.execute(_INSERT_SEAL, {"first_sequence": first, "last_sequence": last,
                                    "seal": seal_of(key, first, last, block)})


def _measure(batch: list[_Fields], entries: list[AuditEntry]) -> None:
    """Count and time entries just made durable (before their callers are answered)."""
    durable = time.perf_counter()
    for fields, entry in zip(batch, entries, strict=True):
        AUDIT_APPEND.observe(durable - fields.queued_at)
        DECISIONS.labels(entry.action, entry.decision, entry.reason).inc()


def _locked_head(conn: Connection) -> tuple[int, str]:
    """The chain's head (sequence, hash), locked until the transaction ends; made if missing."""
    head = conn.execute(_LOCK_HEAD).first()
    if head is None:
        try:
            with conn.begin_nested():  # two replicas may both be making the first entry
                conn.execute(_INSERT_HEAD, {"id": 1, "sequence": 0, "hash": ""})
        except IntegrityError:
            pass  # the other one did: its row is locked below once it has committed
        head = conn.execute(_LOCK_HEAD).first()
        assert head is not None
    return int(head.sequence), str(head.hash)


@dataclass(frozen=True)
class _Fields:
    """What a caller says about one entry; the writer numbers, times and chains it."""

    principal: str
    action: str
    resource: str
    decision: str
    reason: str
    request_id: str
    details: dict[str, str]
    queued_at: float = 0.0  # time.perf_counter() when submitted (not part of the entry)

    def said(self) -> dict[str, Any]:
        """The entry's fields the caller gave."""
        return {k: v for k, v in self.__dict__.items() if k != "queued_at"}


class AuditLog:
    """One service's chain. Appends go through one writer thread (`GroupCommit`): callers on the
    event loop await `append`, callers in threads block on `record`; either way an entry is
    durable before the call returns. Entries that queue up while one transaction commits share
    the next (up to `max_batch`): one head-row lock and one commit (one fsync on PostgreSQL) for
    many callers."""

    def __init__(self, engine: Engine, service: str, clock: Clock = utcnow,
                 key: bytes | None = None, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._engine = engine
        self.service = service
        self._clock = clock
        self._key = key
        self._commits: GroupCommit[_Fields, AuditEntry] = GroupCommit(
            self._append_batch, name=f"audit-{service}", max_batch=max_batch)

    def submit(
        self, principal: str, action: str, resource: str, decision: str, reason: str = "", request_id: str = "",
        details: Mapping[str, str] | None = None,
    ) -> Future[AuditEntry]:
        """Queue one entry; the future resolves once it is durable, or fails with why it is not.
        Every entry written is counted (`securefiles_decisions_total`) and timed from here until it
        is durable (`securefiles_audit_append_seconds`) before its caller hears, however it waits."""
        return self._commits.submit(_Fields(
            principal[:512], action[:128], resource[:1024], decision, reason[:256], request_id[:64],
            {k: str(v)[:512] for k, v in (details or {}).items()}, time.perf_counter()))

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Stop the writer thread once queued entries are written (the service is stopping)."""
        self._commits.close()

    def record(
        self, principal: str, action: str, resource: str, decision: str, reason: str = "", request_id: str = "",
        details: Mapping[str, str] | None = None,
    ) -> AuditEntry:
        """Append one entry and wait until it is durable; raises if it cannot be written. Blocks:
        for threads and start-up code (the event loop awaits `append`)."""
        return self.submit(principal, action, resource, decision, reason, request_id, details).result()

    async def append(
        self, principal: str, action: str, resource: str, decision: str, reason: str = "", request_id: str = "",
        details: Mapping[str, str] | None = None,
    ) -> AuditEntry:
        """`record` for the event loop: the loop serves other calls while the entry is written."""
        return await asyncio.wrap_future(self.submit(principal, action, resource, decision, reason, request_id,
                                                     details))

    @property
    def transactions(self) -> int:
        """How many transactions have written entries so far (entries per transaction = group commit)."""
        return self._commits.batches

    def append_in(self, conn: Connection, calls: Sequence[EntryFields], decision: str = ALLOW
                  ) -> Callable[[], None]:
        """Chain entries in the caller's own transaction (a change and its entry commit together);
        returns what to call once that transaction has committed (counts and times them)."""
        batch = [_Fields(e.principal[:512], e.action[:128], e.resource[:1024], decision, "", e.request_id[:64],
                         {k: str(v)[:512] for k, v in e.details.items()}, time.perf_counter()) for e in calls]
        entries = self._chain(conn, batch)
        return lambda: _measure(batch, entries)

    def _append_batch(self, batch: list[_Fields]) -> list[AuditEntry]:
        with write_transaction(self._engine) as conn:
            entries = self._chain(conn, batch)
        _measure(batch, entries)
        return entries

    def _chain(self, conn: Connection, batch: list[_Fields]) -> list[AuditEntry]:
        """The entries of `batch`, chained in order after the head, which this transaction locks
        until it commits: group commits and changes' own transactions (any replica) take turns."""
        sequence, previous = _locked_head(conn)
        entries = []
        for fields in batch:
            entry = AuditEntry(sequence=sequence + 1, time=self._clock(), service=self.service,
                               previous_hash=previous, **fields.said())
            entry = AuditEntry(**{**entry.__dict__, "hash": entry.computed_hash(self._key)})
            entries.append(entry)
            sequence, previous = entry.sequence, entry.hash
        rows = [{**e.__dict__, "details": json.dumps(e.details, sort_keys=True)} for e in entries]
        conn.execute(_INSERT_EVENT, rows)
        conn.execute(_UPDATE_HEAD, {"new_sequence": sequence, "new_hash": previous})
        seal_complete_blocks(conn, self._key, entries[0].sequence - 1, sequence)
        return entries

    def list(self, after: int, limit: int, resource_prefix: str = "", principal: str = "") -> list[AuditEntry]:
        query = select(audit_events).where(audit_events.c.sequence > after)
        if resource_prefix:
            query = query.where(audit_events.c.resource.startswith(resource_prefix, autoescape=True))
        if principal:
            query = query.where(audit_events.c.principal == principal)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(audit_events.c.sequence).limit(limit)).all()
        return [entry_of(r._mapping) for r in rows]

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
            with write_transaction(self._engine) as conn:
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

    def archive(self, before: dt.datetime, max_blocks: int = 100) -> int:
        """Move sealed blocks whose newest entry is older than `before` from `audit_events` to
        `audit_archive`, oldest first, one block per transaction; how many entries moved. A block
        whose rows no longer match its seal stays where it is (`verify` reports it)."""
        archived = 0
        for _ in range(max_blocks):
            try:
                with write_transaction(self._engine) as conn:
                    moved = self._archive_oldest_block(conn, before)
            except IntegrityError:
                continue  # another replica archived this block meanwhile
            if not moved:
                return archived
            archived += moved
        return archived

    def _archive_oldest_block(self, conn: Connection, before: dt.datetime) -> int:
        seal = conn.execute(select(audit_seals).order_by(audit_seals.c.first_sequence).limit(1)).first()
        if seal is None:
            return 0
        first, last = seal.first_sequence, seal.last_sequence
        newest = conn.execute(select(audit_events.c.time).where(audit_events.c.sequence == last)).scalar()
        if newest is None or (newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)) >= before:
            return 0
        block = conn.execute(text(block_rows_sql(conn.dialect.name)), {"first": first, "last": last}).scalar() or ""
        if seal_of(self._key, first, last, block) != seal.seal:
            log.error("an audit block does not match its seal; it is not archived", extra={"first": first})
            return 0
        conn.execute(audit_archive.insert(), {"first_sequence": first, "last_sequence": last, "seal": seal.seal,
                                              "rows": zlib.compress(block.encode()), "archived_at": self._clock()})
        conn.execute(delete(audit_events).where(audit_events.c.sequence.between(first, last)))
        conn.execute(delete(audit_seals).where(audit_seals.c.first_sequence == first))
        return int(last - first + 1)

    def verify(self, witnessed: Head | None = None) -> Verification:
        """Walk the chain: every hash recomputes, links to its predecessor, and ends at the head;
        and the head another service witnessed is still in it, with the same hash."""
        result = verify_chain(self._engine, self._key, witnessed)
        if not result.intact or witnessed is None or witnessed.sequence <= 0:
            return result
        if result.checked < witnessed.sequence:
            missing = witnessed.sequence - result.checked
            return Verification(False, result.checked, result.checked + 1,
                                f"latest entries missing: {missing} witnessed elsewhere are unaccounted for",
                                unaccounted=missing)
        return result
