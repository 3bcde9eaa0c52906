"""Issued tokens in SQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, DateTime, Engine, String, Table, or_, select, update

from securefiles.authz.adapters.sql_repository import _aware, metadata
from securefiles.authz.domain.token_registry import IssuedToken
from securefiles.common.db import read_transaction, write_transaction

issued_tokens = Table(
    "issued_tokens", metadata,
    Column("token_id", String(64), primary_key=True),
    Column("subject", String(160), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("issued_by", String(600), nullable=False, index=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expire_at", DateTime(timezone=True), nullable=False, index=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(160), nullable=False, server_default=""),
)


def _token(m: Any) -> IssuedToken:
    return IssuedToken(m["token_id"], m["subject"], m["kind"], m["issued_by"], _aware(m["issued_at"]),  # type: ignore[arg-type]
                       _aware(m["expire_at"]), _aware(m["revoked_at"]), m["revoked_by"] or "")  # type: ignore[arg-type]


class SqlTokenRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_token(self, token: IssuedToken) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(issued_tokens.insert().values(
                token_id=token.token_id, subject=token.subject, kind=token.kind, issued_by=token.issued_by[:600],
                issued_at=token.issued_at, expire_at=token.expire_at, revoked_at=None, revoked_by=""))

    def get_token(self, token_id: str) -> IssuedToken | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(issued_tokens).where(issued_tokens.c.token_id == token_id)).first()
        return _token(row._mapping) if row else None

    def list_tokens(self, subject: str | None, related_to: str | None, live_at: dt.datetime | None,
                    limit: int) -> list[IssuedToken]:
        query = select(issued_tokens)
        if subject is not None:
            query = query.where(issued_tokens.c.subject == subject)
        if related_to is not None:
            query = query.where(or_(issued_tokens.c.subject == related_to, issued_tokens.c.issued_by == related_to))
        if live_at is not None:
            query = query.where(issued_tokens.c.expire_at > live_at, issued_tokens.c.revoked_at.is_(None))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(issued_tokens.c.issued_at.desc()).limit(limit)).all()
        return [_token(r._mapping) for r in rows]

    def revoke_token(self, token_id: str, at: dt.datetime, by: str) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(update(issued_tokens).where(issued_tokens.c.token_id == token_id,
                                                     issued_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=at, revoked_by=by))

    def revoked_ids(self, now: dt.datetime) -> set[str]:
        with read_transaction(self._engine) as conn:
            return set(conn.execute(select(issued_tokens.c.token_id).where(
                issued_tokens.c.revoked_at.is_not(None), issued_tokens.c.expire_at > now)).scalars())
