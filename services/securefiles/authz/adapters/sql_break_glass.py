"""Break-glass access requests in SQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Integer, String, Table, func, select, update
from sqlalchemy.exc import IntegrityError

from securefiles.authz.adapters.sql_repository import metadata
from securefiles.authz.domain.break_glass import AccessRequest, GrantState
from securefiles.common.db import read_transaction, write_transaction

access_requests = Table(
    "access_requests", metadata,
    Column("request_id", Integer, primary_key=True, autoincrement=False),
    Column("project", String(63), nullable=False),
    Column("requester", String(160), nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("ttl_seconds", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("approver", String(160), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=True),
    Column("expire_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(160), nullable=False),
)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _request(m: Any) -> AccessRequest:
    return AccessRequest(
        request_id=m["request_id"], project=m["project"], requester=m["requester"], reason=m["reason"],
        ttl_seconds=m["ttl_seconds"], state=GrantState(m["state"]), created_at=_aware(m["created_at"]),  # type: ignore[arg-type]
        approver=m["approver"], granted_at=_aware(m["granted_at"]), expire_at=_aware(m["expire_at"]),
        revoked_by=m["revoked_by"],
    )


def _values(r: AccessRequest) -> dict[str, Any]:
    return {"request_id": r.request_id, "project": r.project, "requester": r.requester, "reason": r.reason,
            "ttl_seconds": r.ttl_seconds, "state": r.state.value, "created_at": r.created_at, "approver": r.approver,
            "granted_at": r.granted_at, "expire_at": r.expire_at, "revoked_by": r.revoked_by}


class SqlAccessRequestRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_access_request(self, request: AccessRequest) -> AccessRequest:
        for _attempt in range(5):
            try:
                with write_transaction(self._engine) as conn:
                    latest = conn.execute(select(func.max(access_requests.c.request_id))).scalar()
                    created = AccessRequest(**{**request.__dict__, "request_id": (latest or 0) + 1})
                    conn.execute(access_requests.insert().values(**_values(created)))
                    return created
            except IntegrityError:
                continue
        raise RuntimeError("could not allocate an access request id")

    def get_access_request(self, request_id: int) -> AccessRequest | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(access_requests).where(access_requests.c.request_id == request_id)).first()
        return _request(row._mapping) if row else None

    def list_access_requests(self) -> list[AccessRequest]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(access_requests).order_by(access_requests.c.request_id)).all()
        return [_request(r._mapping) for r in rows]

    def save_access_request(self, request: AccessRequest) -> None:
        values = _values(request)
        with write_transaction(self._engine) as conn:
            conn.execute(update(access_requests).where(access_requests.c.request_id == request.request_id)
                         .values(**{k: v for k, v in values.items() if k != "request_id"}))

    def active_grants(self, requester: str, project: str) -> list[AccessRequest]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(access_requests).where(
                access_requests.c.requester == requester, access_requests.c.project == project,
                access_requests.c.state == GrantState.GRANTED.value)).all()
        return [_request(r._mapping) for r in rows]
