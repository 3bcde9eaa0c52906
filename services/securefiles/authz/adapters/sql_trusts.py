"""Trusts in SQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Integer, String, Table, Text, UniqueConstraint, delete, select

from securefiles.authz.adapters.sql_repository import _aware, find_named, insert_named, metadata
from securefiles.authz.domain.trusts import Trust
from securefiles.common.db import read_transaction, write_transaction
from securefiles.common.errors import AlreadyExists

trusts = Table(
    "trusts", metadata,
    Column("project", String(63), primary_key=True),
    Column("trust_id", Integer, primary_key=True, autoincrement=False),
    Column("display_name", String(63), nullable=False),
    Column("pipeline_id", Integer, nullable=False),
    Column("issuer", String(512), nullable=False, index=True),
    Column("audience", String(256), nullable=False),
    Column("bound_claims", Text, nullable=False),  # JSON [[claim, glob], ...]
    Column("branch_claim", String(64), nullable=False),
    Column("ref_type_claim", String(64), nullable=False),
    Column("run_claims", Text, nullable=False),  # JSON [claim, ...]
    Column("requester_claim", String(64), nullable=False),
    Column("max_ttl_seconds", Integer, nullable=False),
    Column("static_jwks", Text, nullable=False),
    Column("ca_pem", Text, nullable=False),
    Column("created_by", String(160), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project", "display_name", name="uq_trusts_name"),
)


def _trust(m: Any) -> Trust:
    return Trust(
        project=m["project"], trust_id=m["trust_id"], display_name=m["display_name"], pipeline_id=m["pipeline_id"],
        issuer=m["issuer"], audience=m["audience"],
        bound_claims=tuple((str(c), str(g)) for c, g in json.loads(m["bound_claims"])),
        branch_claim=m["branch_claim"], ref_type_claim=m["ref_type_claim"],
        run_claims=tuple(json.loads(m["run_claims"])), requester_claim=m["requester_claim"],
        max_ttl_seconds=m["max_ttl_seconds"], static_jwks=m["static_jwks"], ca_pem=m["ca_pem"],
        created_by=m["created_by"], created_at=_aware(m["created_at"]),
    )


class SqlTrustRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_trust(self, trust: Trust) -> Trust:
        values = {
            "project": trust.project, "display_name": trust.display_name, "pipeline_id": trust.pipeline_id,
            "issuer": trust.issuer, "audience": trust.audience,
            "bound_claims": json.dumps([list(pair) for pair in trust.bound_claims]),
            "branch_claim": trust.branch_claim, "ref_type_claim": trust.ref_type_claim,
            "run_claims": json.dumps(list(trust.run_claims)), "requester_claim": trust.requester_claim,
            "max_ttl_seconds": trust.max_ttl_seconds, "static_jwks": trust.static_jwks, "ca_pem": trust.ca_pem,
            "created_by": trust.created_by, "created_at": trust.created_at,
        }
        created = insert_named(self._engine, trusts, "trust_id", values,
                               AlreadyExists(f"trust {trust.display_name} already exists", reason="TRUST_EXISTS"))
        return _trust(created)

    def find_trust(self, project: str, id_or_name: str) -> Trust | None:
        row = find_named(self._engine, trusts, "trust_id", project, id_or_name)
        return _trust(row) if row else None

    def list_trusts(self, project: str) -> list[Trust]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(trusts).where(trusts.c.project == project).order_by(trusts.c.trust_id)).all()
        return [_trust(r._mapping) for r in rows]

    def delete_trust(self, project: str, trust_id: int) -> bool:
        with write_transaction(self._engine) as conn:
            result = conn.execute(delete(trusts).where(trusts.c.project == project, trusts.c.trust_id == trust_id))
        return bool(result.rowcount)

    def trusts_of_issuer(self, issuer: str, project: str | None) -> list[Trust]:
        query = select(trusts).where(trusts.c.issuer == issuer)
        if project is not None:
            query = query.where(trusts.c.project == project)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(trusts.c.project, trusts.c.trust_id)).all()
        return [_trust(r._mapping) for r in rows]
