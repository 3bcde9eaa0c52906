"""What the audit chain stores: its tables, an entry and how it is hashed, and block seals.

An entry's hash is HMAC-SHA256 (SHA-256 without a key) of its canonical JSON body, which
includes the previous entry's hash. Every complete block of `SEAL_BLOCK` entries is also
sealed: an HMAC over the block exactly as the database stores it (every column of every row,
each field length-prefixed, as `block_rows_sql` renders it). A seal is what lets `audit verify`
read a long chain at the speed of the table instead of recomputing every entry's HMAC in Python;
a block without a seal, or whose seal does not match, is verified entry by entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text

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

# One row per complete block of SEAL_BLOCK entries in `audit_events`.
audit_seals = Table(
    "audit_seals", metadata,
    Column("first_sequence", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", Integer, nullable=False),
    Column("seal", String(64), nullable=False),
)

# Sealed blocks moved out of `audit_events` once old (retention): the block's rows exactly as
# sealed, compressed. The chain stays verifiable from its first entry: archived blocks, then the
# entries still in `audit_events`.
audit_archive = Table(
    "audit_archive", metadata,
    Column("first_sequence", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", Integer, nullable=False),
    Column("seal", String(64), nullable=False),
    Column("rows", LargeBinary, nullable=False),  # zlib of the block's rows, one per line
    Column("archived_at", DateTime(timezone=True), nullable=False),
)

ALLOW, DENY, FAIL = "ALLOW", "DENY", "FAIL"
SEAL_BLOCK = 1024


def canonical_body(sequence: int, time: str, service: str, principal: str, action: str, resource: str,
                   decision: str, reason: str, request_id: str, details: str, previous_hash: str) -> bytes:
    """The bytes an entry's hash covers: `json.dumps` of its fields with sorted keys and no spaces,
    built directly (`time` in ISO 8601 UTC, `details` as compact sorted JSON)."""
    return (f'{{"action":{_quoted(action)},"decision":{_quoted(decision)},"details":{details},'
            f'"previous_hash":{_quoted(previous_hash)},"principal":{_quoted(principal)},"reason":{_quoted(reason)},'
            f'"request_id":{_quoted(request_id)},"resource":{_quoted(resource)},"sequence":{int(sequence)},'
            f'"service":{_quoted(service)},"time":{_quoted(time)}}}').encode()


def digest(key: bytes | None, data: bytes) -> str:
    """HMAC-SHA256 under the service's audit key (plain SHA-256 without one)."""
    return hmac.digest(key, data, "sha256").hex() if key else hashlib.sha256(data).hexdigest()


def compact_details(details: Mapping[str, str]) -> str:
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"))


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
        return digest(key, canonical_body(
            self.sequence, self.time.astimezone(dt.UTC).isoformat(), self.service, self.principal, self.action,
            self.resource, self.decision, self.reason, self.request_id, compact_details(self.details),
            self.previous_hash))


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


def entry_of(m: Mapping[Any, Any]) -> AuditEntry:
    time = m["time"]
    assert isinstance(time, dt.datetime)
    return AuditEntry(
        sequence=int(m["sequence"]), time=time if time.tzinfo else time.replace(tzinfo=dt.UTC),
        service=str(m["service"]), principal=str(m["principal"]), action=str(m["action"]),
        resource=str(m["resource"]), decision=str(m["decision"]), reason=str(m["reason"]),
        request_id=str(m["request_id"]), details=json.loads(str(m["details"])),
        previous_hash=str(m["previous_hash"]), hash=str(m["hash"]),
    )


# -- block seals ---------------------------------------------------------------------------

_TEXT_FIELDS = ("service", "principal", "action", "resource", "decision", "reason", "request_id", "details",
                "previous_hash", "hash")
# The time as each database keeps it: SQLite stores text; PostgreSQL's rendering is pinned to UTC.
# Every text field hex-encoded (its UTF-8 bytes, NUL and separators included): no two different
# rows render the same.
_TIME = {"sqlite": '"time"', "postgresql": """to_char("time" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"""}
_HEX = {"sqlite": "hex({})", "postgresql": "encode(convert_to({}, 'UTF8'), 'hex')"}


def block_rows_sql(dialect: str) -> str:
    """A block's entries (`:first`..`:last`) as one text, one line per entry in sequence order: the
    sequence, then every other column hex-encoded, separated by ':'. One value per block, so that
    the database renders it in one step."""
    fields = " || ':' || ".join(_HEX[dialect].format(expression) for expression in (_TIME[dialect], *_TEXT_FIELDS))
    line = f"CAST(sequence AS TEXT) || ':' || {fields}"
    # Built from this module's constants only; the block's bounds are bound parameters.
    if dialect == "postgresql":
        return (f"SELECT string_agg({line}, chr(10) ORDER BY sequence) FROM audit_events "  # noqa: S608
                "WHERE sequence BETWEEN :first AND :last")
    return (f"SELECT group_concat(line, char(10)) FROM (SELECT {line} AS line FROM audit_events "  # noqa: S608
            "WHERE sequence BETWEEN :first AND :last ORDER BY sequence)")


def seal_of(key: bytes | None, first: int, last: int, block: str) -> str:
    return digest(key, f"securefiles.audit.seal.v1\n{first}\n{last}\n{block}".encode())


def row_links(row: str) -> tuple[int, str, str]:
    """(sequence, previous_hash, hash) of one row as `block_rows_sql` renders it."""
    fields = row.split(":")
    return int(fields[0]), bytes.fromhex(fields[-2]).decode(), bytes.fromhex(fields[-1]).decode()


def block_of(sequence: int) -> tuple[int, int]:
    """(first, last) sequence of the block `sequence` belongs to."""
    first = (sequence - 1) // SEAL_BLOCK * SEAL_BLOCK + 1
    return first, first + SEAL_BLOCK - 1
