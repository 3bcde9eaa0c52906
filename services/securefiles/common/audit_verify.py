"""Walking an audit chain from its first entry to its head, block by block, in constant memory.

Archived blocks come first (their rows as sealed, decompressed one block at a time), then the
entries still in `audit_events`, read one block at a time as `block_rows_sql` renders them. A
block whose seal matches is accepted whole: its rows are byte for byte what the writer wrote,
which was a correct chain; only its links to the blocks around it are checked. Any other block
(no seal yet, a seal that does not match, rows missing) is checked entry by entry: every hash
recomputed, every link followed. So a seal can make verification faster but never lets a change
through, and a broken chain is reported at the same entry, with the same problem, either way.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import zlib
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from securefiles.common.audit_records import (
    SEAL_BLOCK,
    AuditEntry,
    Head,
    Verification,
    audit_archive,
    audit_events,
    audit_head,
    audit_seals,
    block_rows_sql,
    row_links,
    seal_of,
)
from securefiles.common.db import read_transaction


class _Broken(Exception):
    def __init__(self, verification: Verification) -> None:
        self.verification = verification


def entry_of_row(row: str) -> AuditEntry:
    """An entry from its block rendering (sequence, then hex-encoded columns)."""
    sequence, *fields = row.split(":")
    time, service, principal, action, resource, decision, reason, request_id, details, previous, hash_ = (
        bytes.fromhex(f).decode() for f in fields)
    return AuditEntry(int(sequence), dt.datetime.fromisoformat(time).replace(tzinfo=dt.UTC), service, principal,
                      action, resource, decision, reason, request_id, json.loads(details), previous, hash_)


class ChainWalk:
    """The state of one walk: the next sequence expected and the hash it must link to."""

    def __init__(self, key: bytes | None, witnessed: Head | None) -> None:
        self._key = key
        self._witnessed = witnessed
        self.expected = 1
        self.previous_hash = ""
        self.checked = 0
        self.sealed = 0  # entries accepted by their block's seal

    def block(self, first: int, last: int, block: str, seal: str | None) -> None:
        """Take one block (its rows, one per line); raises `_Broken` with the first problem."""
        size = last - first + 1
        if seal is not None and block.count("\n") == size - 1 and seal_of(self._key, first, last, block) == seal:
            sequence, previous, _ = row_links(block[:block.index("\n")] if size > 1 else block)
            _, _, last_hash = row_links(block[block.rindex("\n") + 1:] if size > 1 else block)
            witnessed = self._witnessed
            replaced = (witnessed is not None and first <= witnessed.sequence <= last
                        and row_links(block.split("\n")[witnessed.sequence - first])[2] != witnessed.hash)
            if sequence == self.expected == first and previous == self.previous_hash and not replaced:
                self.checked += size
                self.sealed += size
                self.expected, self.previous_hash = last + 1, last_hash
                return
        for row in block.split("\n") if block else ():
            self.entry(entry_of_row(row))

    def entry(self, entry: AuditEntry) -> None:
        self.checked += 1
        witnessed = self._witnessed
        if witnessed is not None and entry.sequence == witnessed.sequence and entry.hash != witnessed.hash:
            self._fail(entry.sequence, "entry replaced after another service witnessed it")
        if entry.sequence != self.expected:
            self._fail(self.expected, "entry missing")
        if entry.computed_hash(self._key) != entry.hash:
            self._fail(entry.sequence, "entry edited")
        if entry.previous_hash != self.previous_hash:
            self._fail(entry.sequence, "entries reordered or replaced")
        self.previous_hash, self.expected = entry.hash, self.expected + 1

    def _fail(self, sequence: int, problem: str) -> None:
        raise _Broken(Verification(False, self.checked, sequence, problem))


def _archived(conn: Connection) -> Iterator[tuple[int, int, str, str]]:
    query = select(audit_archive.c.first_sequence, audit_archive.c.last_sequence, audit_archive.c.seal,
                   audit_archive.c.rows).order_by(audit_archive.c.first_sequence)
    for first, last, seal, rows in conn.execution_options(stream_results=True, max_row_buffer=4).execute(query):
        yield first, last, seal, zlib.decompress(rows).decode()


def _block_reader(conn: Connection) -> Callable[[int, int], str]:
    """A block as `block_rows_sql` renders it."""
    statement = text(block_rows_sql(conn.dialect.name))

    def read(first: int, last: int) -> str:
        return conn.execute(statement, {"first": first, "last": last}).scalar() or ""

    return read


def _blocks_ahead(engine: Engine, first: int, until: int) -> Iterator[tuple[int, int, str]]:
    """The blocks from `first` to the one holding `until`, read by a thread of their own one block
    ahead of the walk (the database renders a block while the walk hashes the one before; at most
    three blocks in memory)."""
    ahead: queue.Queue[tuple[int, int, str] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            with read_transaction(engine) as conn:
                read = _block_reader(conn)
                start = first
                while start <= until and not stop.is_set():
                    last = (start - 1) // SEAL_BLOCK * SEAL_BLOCK + SEAL_BLOCK  # blocks end at multiples of it
                    ahead.put((start, last, read(start, last)))
                    start = last + 1
            ahead.put(None)
        except BaseException as error:  # handed to the walk, which raises it
            ahead.put(error)

    reader = threading.Thread(target=produce, name="audit-verify-reader", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting to hand over a block
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass


def verify_chain(engine: Engine, key: bytes | None, witnessed: Head | None = None) -> Verification:
    """Every entry from the first to the head: hashes recompute, links hold, the head matches."""
    walk = ChainWalk(key, witnessed)
    seal_of_block = select(audit_seals.c.seal).where(audit_seals.c.first_sequence == bindparam("first"))
    with read_transaction(engine) as conn:
        try:
            for first, last, seal, block in _archived(conn):
                walk.block(first, last, block, seal)
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
            newest = conn.execute(select(func.max(audit_events.c.sequence))).scalar() or 0
            for first, last, block in _blocks_ahead(engine, walk.expected, max(newest, head.sequence if head else 0)):
                sealed = conn.execute(seal_of_block, {"first": first}).scalar() if first % SEAL_BLOCK == 1 else None
                walk.block(first, last, block, sealed)
        except _Broken as broken:
            return broken.verification
    head_sequence, head_hash = (head.sequence, head.hash) if head else (0, "")
    if head_sequence != walk.expected - 1 or head_hash != walk.previous_hash:
        return Verification(False, walk.checked, walk.expected, "latest entries missing")
    return Verification(True, walk.checked)
