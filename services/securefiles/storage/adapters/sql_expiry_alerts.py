"""Expiry alerts in SQL: the files expiring soon and the alerts already sent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, and_, or_, select, text, tuple_
from sqlalchemy.exc import IntegrityError

from securefiles.common.db import read_transaction, write_transaction
from securefiles.storage.adapters.sql_files import _current_join, _file, expiry_alerts, file_versions, secure_files
from securefiles.storage.domain.model import SecureFile

# PostgreSQL advisory lock held by the replica running an expiry pass (the migrations use 7701-7703).
_LEAD_LOCK = 7_711


class SqlExpiryAlerts:
    """`ExpiryAlertRepository` on the storage database (every project)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lead: Connection | None = None

    def try_lead(self) -> bool:
        """On PostgreSQL, a session advisory lock on a connection kept for the pass; SQLite is
        one host's file, written by one storage process."""
        if self._engine.dialect.name != "postgresql":
            return True
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _LEAD_LOCK}).scalar():
            conn.close()
            return False
        self._lead = conn
        return True

    def stop_leading(self) -> None:
        if self._lead is not None:
            try:
                self._lead.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LEAD_LOCK})
            finally:
                self._lead.close()
                self._lead = None

    def expiring(self, before: dt.datetime, after: tuple[dt.datetime, str] | None, limit: int
                 ) -> list[tuple[SecureFile, frozenset[int]]]:
        expires = file_versions.c.expires_at
        query = _current_join().where(expires.is_not(None), expires < before)
        if after is not None:
            query = query.where(or_(expires > after[0], and_(expires == after[0], secure_files.c.file_id > after[1])))
        query = query.order_by(expires, secure_files.c.file_id).limit(limit)
        with read_transaction(self._engine) as conn:
            files = [_file(row._mapping) for row in conn.execute(query)]
            keys = [(f.file_id, f.current.version) for f in files]
            sent: dict[tuple[str, int], set[int]] = {}
            if keys:
                rows = conn.execute(select(expiry_alerts.c.file_id, expiry_alerts.c.version,
                                           expiry_alerts.c.threshold_days)
                                    .where(tuple_(expiry_alerts.c.file_id, expiry_alerts.c.version).in_(keys)))
                for file_id, version, days in rows:
                    sent.setdefault((file_id, version), set()).add(days)
        return [(f, frozenset(sent.get((f.file_id, f.current.version), ()))) for f in files]

    def mark_sent(self, file_id: str, version: int, threshold_days: int, now: dt.datetime) -> None:
        try:
            with write_transaction(self._engine) as conn:
                conn.execute(expiry_alerts.insert().values(file_id=file_id, version=version,
                                                           threshold_days=threshold_days, sent_at=now))
        except IntegrityError:
            pass  # another replica recorded it (or the file was deleted meanwhile)
