"""Block seals make `audit verify` fast without letting a change through: a sealed block whose
seal matches is accepted whole; an edited, deleted or re-sealed one is checked entry by entry
and reported where it breaks, exactly as an unsealed chain is."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text, update

from securefiles.common.audit import ALLOW, AuditEntry, AuditLog, audit_events, metadata
from securefiles.common.audit_records import SEAL_BLOCK, canonical_body, compact_details
from securefiles.common.db import make_engine

KEY = b"k" * 32
HOSTILE = ["", "a\"b\\c", "line\nbreak", "\x00nul", "é ü ☃ 𝄞", "</script>", "\x1f\x1e:", "'; DROP"]
# A lone surrogate never reaches the log (gRPC strings are UTF-8), but JSON can encode it.
UNENCODABLE = "\ud800lone"


def _reference_body(entry: AuditEntry) -> bytes:
    """The hashed body as the first version of the audit log built it."""
    body = {
        "sequence": entry.sequence, "time": entry.time.astimezone(dt.UTC).isoformat(), "service": entry.service,
        "principal": entry.principal, "action": entry.action, "resource": entry.resource,
        "decision": entry.decision, "reason": entry.reason, "request_id": entry.request_id,
        "details": entry.details, "previous_hash": entry.previous_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def test_the_fast_canonical_body_is_the_reference_one_byte_for_byte() -> None:
    rng = random.Random(17)
    for sequence in range(1, 500):
        pick = lambda: rng.choice([*HOSTILE, UNENCODABLE]) + str(rng.random())  # noqa: E731
        time = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=rng.choice([0, 1, 999_999]))
        entry = AuditEntry(sequence, time, pick(), pick(), pick(), pick(), pick(), pick(), pick(),
                           {pick(): pick() for _ in range(rng.randint(0, 3))}, pick())
        fast = canonical_body(entry.sequence, entry.time.isoformat(), entry.service, entry.principal, entry.action,
                              entry.resource, entry.decision, entry.reason, entry.request_id,
                              compact_details(entry.details), entry.previous_hash)
        assert fast == _reference_body(entry)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[AuditLog, Engine]]:
    """A log of 2.5 blocks of entries with hostile values, written by the service's writer, on
    SQLite (or, with SECUREFILES_TEST_DATABASE_URL, a fresh PostgreSQL database)."""
    server = os.environ.get("SECUREFILES_TEST_DATABASE_URL", "")
    name = f"sf_seals_{uuid.uuid4().hex[:8]}"
    if server:
        with create_engine(server, isolation_level="AUTOCOMMIT").connect() as admin:
            admin.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url, metadata)
    log = AuditLog(engine, "storage", key=KEY)
    values = [v for v in HOSTILE if not (server and "\x00" in v)]  # PostgreSQL text holds no NUL
    futures = [log.submit(f"user:{values[i % len(values)]}", "Upload", f"projects/p/secureFiles/{i}", ALLOW,
                          details={"name": values[(i + 3) % len(values)]}) for i in range(SEAL_BLOCK * 5 // 2)]
    for future in futures:
        future.result(timeout=60)
    yield log, engine
    engine.dispose()
    if server:
        with create_engine(server, isolation_level="AUTOCOMMIT").connect() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _sql(engine: Engine, statement: str, **params: object) -> list[tuple]:
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return [tuple(row) for row in result] if result.returns_rows else []


def test_complete_blocks_are_sealed_as_written_and_verify_intact(chain: tuple[AuditLog, Path]) -> None:
    log, engine = chain
    assert _sql(engine, "SELECT first_sequence, last_sequence FROM audit_seals ORDER BY 1") == [
        (1, SEAL_BLOCK), (SEAL_BLOCK + 1, 2 * SEAL_BLOCK)]
    result = log.verify()
    assert result.intact and result.checked == SEAL_BLOCK * 5 // 2


@pytest.mark.parametrize("column", ["reason", "principal", "details", "time"])
def test_an_edit_inside_a_sealed_block_is_found_where_it_is(chain: tuple[AuditLog, Path], column: str) -> None:
    log, engine = chain
    value = dt.datetime(2027, 1, 1, tzinfo=dt.UTC) if column == "time" else "{}" if column == "details" else "edited"
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.sequence == 700).values(**{column: value}))
    result = log.verify()
    assert (result.intact, result.first_bad_sequence, result.problem) == (False, 700, "entry edited")


def test_a_row_deleted_from_a_sealed_block_is_missing(chain: tuple[AuditLog, Path]) -> None:
    log, engine = chain
    _sql(engine, "DELETE FROM audit_events WHERE sequence = 1500")
    result = log.verify()
    assert (result.intact, result.first_bad_sequence, result.problem) == (False, 1500, "entry missing")


def test_seals_only_speed_things_up(chain: tuple[AuditLog, Path]) -> None:
    """Without its seal, or with a seal forged without the key, a block is checked entry by entry:
    intact stays intact, and an edit is still found."""
    log, engine = chain
    _sql(engine, "DELETE FROM audit_seals WHERE first_sequence = 1")
    _sql(engine, "UPDATE audit_seals SET seal = :s WHERE first_sequence = :f", s="0" * 64, f=SEAL_BLOCK + 1)
    assert log.verify().intact
    _sql(engine, "UPDATE audit_events SET resource = 'moved' WHERE sequence = 1100")
    result = log.verify()
    assert (result.intact, result.first_bad_sequence, result.problem) == (False, 1100, "entry edited")


def test_old_blocks_move_to_the_archive_and_the_chain_still_verifies(tmp_path: Path) -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    ticks = iter(range(10**6))
    log = AuditLog(make_engine(f"sqlite:///{tmp_path / 'audit.db'}", metadata), "storage", key=KEY,
                   clock=lambda: start + dt.timedelta(minutes=next(ticks)))
    for future in [log.submit("user:a", "Upload", f"projects/p/secureFiles/{i}", ALLOW) for i in range(2600)]:
        future.result(timeout=60)
    # Entries 1..2048 (two sealed blocks) are older than the cut; the third block is not complete.
    assert log.archive(before=start + dt.timedelta(minutes=2100)) == 2 * SEAL_BLOCK
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    assert _sql(engine, "SELECT min(sequence), count(*) FROM audit_events") == [(2 * SEAL_BLOCK + 1, 2600 - 2048)]
    assert [e.sequence for e in log.list(0, 2)] == [2 * SEAL_BLOCK + 1, 2 * SEAL_BLOCK + 2]
    result = log.verify()
    assert result.intact and result.checked == 2600

    # An archived block that was changed is checked entry by entry, and the change is found.
    rows = _sql(engine, "SELECT rows FROM audit_archive WHERE first_sequence = :f", f=SEAL_BLOCK + 1)[0][0]
    lines = zlib.decompress(rows).decode().split("\n")
    sequence, *fields = lines[5].split(":")
    fields[6] = b"edited".hex()  # the reason
    lines[5] = ":".join([sequence, *fields])
    _sql(engine, "UPDATE audit_archive SET rows = :r WHERE first_sequence = :f",
         r=zlib.compress("\n".join(lines).encode()), f=SEAL_BLOCK + 1)
    result = log.verify()
    assert (result.intact, result.first_bad_sequence, result.problem) == (False, SEAL_BLOCK + 6, "entry edited")
