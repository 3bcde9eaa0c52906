"""Key versions in SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from securefiles.common.db import read_transaction, write_transaction
from securefiles.kms.domain.key_ring import KeyState, KeyVersionRecord, Sealer

metadata = MetaData()

key_versions = Table(
    "key_versions",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("sealed_material", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("reason", String(1024), nullable=False, default=""),
    Column("deployment_id", String(256), nullable=True),
    UniqueConstraint("region", "deployment_id", name="uq_key_versions_deployment"),
)

# At most one PRIMARY per region, enforced by the database as well.
Index(
    "uq_key_versions_one_primary", key_versions.c.region, unique=True,
    sqlite_where=key_versions.c.state == "PRIMARY", postgresql_where=key_versions.c.state == "PRIMARY",
)


# Built once: read on every data-key call.
_GET_VERSION = select(key_versions).where(
    key_versions.c.region == bindparam("region"), key_versions.c.version == bindparam("version"))
_GET_PRIMARY = select(key_versions).where(
    key_versions.c.region == bindparam("region"), key_versions.c.state == KeyState.PRIMARY.value)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _record(row: object) -> KeyVersionRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return KeyVersionRecord(
        region=m["region"], version=m["version"], state=KeyState(m["state"]),
        sealed_material=m["sealed_material"], created_at=_aware(m["created_at"]),
        created_by=m["created_by"], reason=m["reason"], deployment_id=m["deployment_id"],
    )


class SqlKeyVersionStore:
    """KeyVersionStore on SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_versions(self, region: str) -> list[KeyVersionRecord]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(key_versions).where(key_versions.c.region == region).order_by(key_versions.c.version.desc())
            )
            return [_record(r) for r in rows]

    def versions_page(self, region: str, before: int | None, limit: int) -> list[KeyVersionRecord]:
        query = select(key_versions).where(key_versions.c.region == region)
        if before is not None:
            query = query.where(key_versions.c.version < before)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query.order_by(key_versions.c.version.desc()).limit(limit))
            return [_record(r) for r in rows]

    def count_by_state(self, region: str) -> dict[KeyState, int]:
        # Counted by the database: a ring gains a version on every deploy, and a scrape should not
        # read them all (with their sealed material).
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(key_versions.c.state, func.count()).where(key_versions.c.region == region)
                                .group_by(key_versions.c.state))
            return {KeyState(state): count for state, count in rows}

    def get_version(self, region: str, version: int) -> KeyVersionRecord | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(_GET_VERSION, {"region": region, "version": version}).first()
            return _record(row) if row else None

    def primary(self, region: str) -> KeyVersionRecord | None:
        with read_transaction(self._engine) as conn:
            row = conn.execute(_GET_PRIMARY, {"region": region}).first()
            return _record(row) if row else None

    def add_primary(
        self, region: str, seal: Sealer, created_by: str, reason: str, deployment_id: str | None,
        now: dt.datetime,
    ) -> tuple[KeyVersionRecord, bool]:
        for _attempt in range(5):
            try:
                return self._add_primary_once(region, seal, created_by, reason, deployment_id, now)
            except IntegrityError:
                # Another replica took the version number or the deployment id first.
                continue
        raise RuntimeError("could not add a key version after repeated conflicts")

    def _add_primary_once(
        self, region: str, seal: Sealer, created_by: str, reason: str, deployment_id: str | None,
        now: dt.datetime,
    ) -> tuple[KeyVersionRecord, bool]:
        with write_transaction(self._engine) as conn:
            if deployment_id is not None:
                row = conn.execute(
                    select(key_versions).where(
                        key_versions.c.region == region, key_versions.c.deployment_id == deployment_id
                    )
                ).first()
                if row is not None:
                    return _record(row), False
            latest = conn.execute(
                select(func.max(key_versions.c.version)).where(key_versions.c.region == region)
            ).scalar()
            version = (latest or 0) + 1
            conn.execute(
                update(key_versions)
                .where(key_versions.c.region == region, key_versions.c.state == KeyState.PRIMARY.value)
                .values(state=KeyState.ENABLED.value)
            )
            values = {
                "region": region, "version": version, "state": KeyState.PRIMARY.value,
                "sealed_material": seal(version), "created_at": now, "created_by": created_by,
                "reason": reason, "deployment_id": deployment_id,
            }
            conn.execute(key_versions.insert().values(**values))
            return _record(_Row(values)), True

    def set_state(self, region: str, version: int, state: KeyState, erase_material: bool) -> KeyVersionRecord:
        with write_transaction(self._engine) as conn:
            values: dict[str, object] = {"state": state.value}
            if erase_material:
                values["sealed_material"] = None
            conn.execute(
                update(key_versions)
                .where(key_versions.c.region == region, key_versions.c.version == version)
                .values(**values)
            )
            row = conn.execute(
                select(key_versions).where(key_versions.c.region == region, key_versions.c.version == version)
            ).one()
            return _record(row)


class _Row:
    def __init__(self, mapping: dict[str, object]) -> None:
        self._mapping = mapping
